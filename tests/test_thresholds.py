"""The shared -w/-c defaults (cli.make_parser), run from the command line of
each check that has defaults: a default -w that an explicit -c makes
meaningless (-c 60 below the default -w 120) is dropped, never shown above
-c in perfdata; an explicit -w is kept; a -c above the default keeps it."""

import os
import time

import pytest

from celery_checks.store import heartbeats as store
from tests.kit.plugin import run_check


def pulse(path, age):
    path.write_text("")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


@pytest.mark.parametrize("args, age, state, warn, crit", [
    ([], 130, "WARNING", "120", "300"),                     # the defaults
    (["-c", "60"], 90, "CRITICAL", "", "60"),               # the container probe
    (["-c", "60", "-t", "5"], 30, "OK", "", "60"),
    (["-c", "120"], 110, "OK", "", "120"),                  # equal: warning never reached
    (["-c", "200"], 130, "WARNING", "120", "200"),          # above: the default stays
    (["-w", "100", "-c", "60"], 30, "OK", "100", "60"),     # explicit: the user's choice
    (["-w", "30"], 40, "WARNING", "30", "300"),
    (["-c", "60:"], 30, "CRITICAL", "120", "60:"),          # not within -w: kept
    (["-w", "180", "-c", "180"], 150, "OK", "180", "180"),  # README: a probe above 120
    (["-w", "180", "-c", "180"], 190, "CRITICAL", "180", "180"),
])
def test_pulsefile_thresholds_in_force(tmp_path, args, age, state, warn, crit):
    path = pulse(tmp_path / "w.pulse", age)
    result = run_check("check_celery_pulsefile", "-f", path, *args)
    result.assert_state(state)
    assert (result.perfdata["age"].warn, result.perfdata["age"].crit) == (warn, crit)


@pytest.mark.parametrize("args, warn, crit", [
    ([], "300", "600"),
    (["-c", "200"], "", "200"),
    (["-c", "900"], "300", "900"),
    (["-w", "400", "-c", "200"], "400", "200"),
])
def test_heartbeat_thresholds_in_force(redis_url, redis_client, args, warn, crit):
    published = store.record_publish(redis_client, ["q"], ["id1"], "test")
    store.record_start(redis_client, "q", published, "id1", "w@h")
    result = run_check("check_celery_heartbeat", "--store", redis_url, "-q", "q", *args)
    result.assert_ok("q healthy")
    assert (result.perfdata["q_age"].warn, result.perfdata["q_age"].crit) == (warn, crit)


@pytest.mark.parametrize("name, default", [
    ("check_celery_pulsefile", "120"), ("check_celery_heartbeat", "300"),
])
def test_help_says_when_the_default_warning_is_dropped(name, default):
    text = " ".join(run_check(name, "--help").stdout.split())
    assert "(default: %s, none when -c is lower)" % default in text
