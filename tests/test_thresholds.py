"""The shared -w/-c defaults (cli.add_threshold_pair, also the heartbeat's
--latency-* pair), run from the command line of each check that has
defaults: a default -w that an explicit -c makes meaningless (-c 60 below
the default -w 120) is dropped, never shown above -c in perfdata; an
explicit -w is kept; a -c above the default keeps it; an explicit -w alone
above the default -c (it could never warn) is a usage error."""

import os
import time

import pytest

from celery_checks.connect.redis import redis_client
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


@pytest.mark.parametrize("args, warn, crit, latency_warn, latency_crit", [
    ([], "300", "600", "60", "300"),
    (["-c", "200"], "", "200", "60", "300"),
    (["-c", "900"], "300", "900", "60", "300"),
    (["-w", "400", "-c", "200"], "400", "200", "60", "300"),
    # the latency pair follows the same rule: --latency-critical 30 below
    # the default --latency-warning 60 drops it (it showed warn 60, crit 30)
    (["--latency-critical", "30"], "300", "600", "", "30"),
    (["--latency-critical", "120"], "300", "600", "60", "120"),
    (["--latency-warning", "400", "--latency-critical", "200"], "300", "600", "400", "200"),
])
def test_heartbeat_thresholds_in_force(redis_url, args, warn, crit, latency_warn, latency_crit):
    ours = redis_client(redis_url)  # the checks' own client, as the store's writers use
    published = store.record_publish(ours, ["q"], ["id1"], "test")
    store.record_start(ours, "q", published, "id1", "w@h")
    result = run_check("check_celery_heartbeat", "--store", redis_url, "-q", "q", *args)
    result.assert_ok("q healthy")
    assert (result.perfdata["q_age"].warn, result.perfdata["q_age"].crit) == (warn, crit)
    latency = result.perfdata["q_latency"]
    assert (latency.warn, latency.crit) == (latency_warn, latency_crit)


@pytest.mark.parametrize("name, args, line", [
    ("check_celery_pulsefile", ["-w", "400"],
     "-w 400 would never warn: the default -c 300 alerts first; give -c as well"),
    ("check_celery_heartbeat", ["-w", "700"],
     "-w 700 would never warn: the default -c 600 alerts first; give -c as well"),
    ("check_celery_heartbeat", ["--latency-warning", "400"],
     "--latency-warning 400 would never warn: the default --latency-critical 300 alerts "
     "first; give --latency-critical as well"),
])
def test_a_warning_above_the_default_critical_is_a_usage_error(tmp_path, name, args, line):
    """Raising only -w above the default -c left the default -c in force
    below it: every value past -c was CRITICAL, the warning could never be
    the state, and perfdata said warn 400, crit 300."""
    base = ["-f", pulse(tmp_path / "w.pulse", 1)] if name == "check_celery_pulsefile" \
        else ["--store", "redis://127.0.0.1:1/0"]
    result = run_check(name, *base, *args)
    result.assert_unknown()
    assert result.first_line == "%s UNKNOWN - %s" % (
        name.upper().replace("CHECK_", "", 1), line), result.describe("usage error")
    assert result.stdout.splitlines()[1].startswith("usage: ")


@pytest.mark.parametrize("name, default", [
    ("check_celery_pulsefile", "120"), ("check_celery_heartbeat", "300"),
])
def test_help_says_when_the_default_warning_is_dropped(name, default):
    text = " ".join(run_check(name, "--help").stdout.split())
    assert "(default: %s, none when -c is lower)" % default in text
    if name == "check_celery_heartbeat":
        assert "(default: 60, the trigger's interval, none when --latency-critical is lower)" \
            in text
