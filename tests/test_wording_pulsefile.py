"""check_celery_pulsefile's words for given facts, in-process: literal files
(path, age, content) go through the check's evaluate and present parts; the
exact lines are asserted. tests/test_pulsefile.py runs it on real files."""

import pytest

from celery_checks.pulsefile import check as pulsefile
from tests.kit.plugin import render

pytestmark = pytest.mark.quick


def answer(files, *args, matches=None, verbose=1):
    """``files``: [(path, age, content)]; every pattern matched them all."""
    patterns = [a for path, _age, _content in files for a in ("-f", path)] if "-f" not in args else []
    settings = pulsefile.parse_args(patterns + list(args))
    single = len(settings.patterns) == 1 and not pulsefile.glob.has_magic(settings.patterns[0])
    labels = pulsefile.labels_for([f[0] for f in files], single)
    facts = [pulsefile.PulseFile(path, labels[path], age, 0.0, content, None)
             for path, age, content in files]
    matches = matches or {p: 1 for p in settings.patterns}
    return render(pulsefile.make_check(settings, facts=(facts, matches)), verbose)


RUNNING = {"node": "w1@h", "pid": 42, "state": "running"}


def test_one_fresh_file():
    result = answer([("/run/celery/w1.pulse", 3.2, RUNNING)])
    assert result.stdout.splitlines() == [
        "CELERY_PULSEFILE OK - /run/celery/w1.pulse is 3.2s old",
        "/run/celery/w1.pulse: 3.2s old, node w1@h, pid 42, state running",
        "| age=3.2s;120;300;0",
    ]


def test_the_stale_file_is_named_not_its_neighbour():
    files = [("/run/celery/w1", 1.0, {}), ("/run/celery/w1x", 3600.0, {})]
    result = answer(files, "-f", "/run/celery/w*", matches={"/run/celery/w*": 2})
    assert result.first_line == "CELERY_PULSEFILE CRITICAL - /run/celery/w1x is 3600s old (> 300s)"
    assert [(p.label, p.value) for p in result.perfdata.values()] == [("w1", 1), ("w1x", 3600)]


def test_an_age_never_reads_equal_to_its_threshold():
    result = answer([("/tmp/w.pulse", 3.04, {})], "-f", "/tmp/w.pulse", "-w", "3", "-c", "10")
    assert result.first_line == "CELERY_PULSEFILE WARNING - /tmp/w.pulse is 3.04s old (> 3s)"


def test_missing_file_and_too_few_matches():
    result = answer([], "-f", "/run/celery/w1.pulse", matches={"/run/celery/w1.pulse": 0})
    assert result.first_line == "CELERY_PULSEFILE CRITICAL - /run/celery/w1.pulse is missing"
    result = answer([("/tmp/one.pulse", 1.0, {})], "-f", "/tmp/one.pulse", "--min-files", "2")
    assert result.first_line == ("CELERY_PULSEFILE CRITICAL - /tmp/one.pulse matches 1 file, "
                                 "expected at least 2")
    result = answer([], "-f", "/run/*.pulse", matches={"/run/*.pulse": 0})
    assert result.first_line == "CELERY_PULSEFILE CRITICAL - no file matches /run/*.pulse"


def test_stopped_emitter_is_critical_however_fresh():
    stopped = dict(RUNNING, state="stopped")
    result = answer([("/run/w1.pulse", 0.5, stopped)])
    assert result.first_line == "CELERY_PULSEFILE CRITICAL - /run/w1.pulse says w1@h stopped"


def test_clock_skew_warns():
    settings = pulsefile.parse_args(["-f", "/run/w1.pulse"])
    ahead = pulsefile.PulseFile("/run/w1.pulse", "age", 0.0, 30.0, {}, None)
    result = render(pulsefile.make_check(settings, facts=([ahead], {"/run/w1.pulse": 1})))
    assert result.first_line == ("CELERY_PULSEFILE WARNING - /run/w1.pulse mtime is 30.0s in "
                                 "the future (clock skew?)")


def test_several_files_and_labels_that_sanitise_alike():
    files = [("/run/a=b", 1.0, {}), ("/run/a'b", 2.0, {}), ("/run/c", 4.0, {})]
    result = answer(files, "-f", "/run/*", matches={"/run/*": 3})
    assert result.first_line == "CELERY_PULSEFILE OK - 3 pulse files fresh, oldest c 4.0s"
    # a=b and a'b sanitise alike: their paths label them, suffixed where even those do
    assert list(result.perfdata) == ["/run/a_b", "/run/a_b_2", "c"]


def test_probe_form_with_only_c_has_no_warning():
    result = answer([("/tmp/celery.pulse", 70.0, {})], "-f", "/tmp/celery.pulse", "-c", "60")
    assert result.first_line == "CELERY_PULSEFILE CRITICAL - /tmp/celery.pulse is 70.0s old (> 60s)"
    assert (result.perfdata["age"].warn, result.perfdata["age"].crit) == ("", "60")
