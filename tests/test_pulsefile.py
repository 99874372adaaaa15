"""check_celery_pulsefile, run as a process against real files."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kit.project import ROOT
from tests.kit.plugin import run_check, run_importing


def check(*args, **kw):
    return run_check("check_celery_pulsefile", *args, **kw)


def pulse(path, age=0, content=""):
    path.write_text(content)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_fresh_file_is_ok_with_age_perfdata(tmp_path):
    path = pulse(tmp_path / "w.pulse", age=3)
    result = check("-f", path).assert_ok(str(path), "old")
    age = result.perfdata["age"]
    assert age.uom == "s" and 3 <= age.value < 10
    assert (age.warn, age.crit, age.min) == ("120", "300", "0")
    assert list(result.perfdata) == ["age"]


# 5 s from each limit: a loaded machine may take seconds between making the
# file and the check reading its age.
@pytest.mark.parametrize("age,state", [(55, "OK"), (65, "WARNING"), (115, "WARNING"), (125, "CRITICAL")])
def test_thresholds_on_each_side(tmp_path, age, state):
    path = pulse(tmp_path / "w.pulse", age=age)
    result = check("-f", path, "-w", "60", "-c", "120")
    result.assert_state(state)
    if state != "OK":
        shown = re.search(r"%s is ([\d.]+)s old" % re.escape(str(path)), result.first_line)
        assert shown and age <= float(shown.group(1)) < age + 5, result.first_line
        assert ("> 60s" if state == "WARNING" else "> 120s") in result.first_line
    assert result.perfdata["age"].warn == "60" and result.perfdata["age"].crit == "120"


def test_default_thresholds_are_120_and_300(tmp_path):
    check("-f", pulse(tmp_path / "a", age=130)).assert_warning()
    check("-f", pulse(tmp_path / "b", age=310)).assert_critical()


def test_missing_file_is_critical_naming_it(tmp_path):
    missing = tmp_path / "gone.pulse"
    result = check("-f", missing).assert_critical("%s is missing" % missing)
    assert not result.perfdata


def test_glob_matching_nothing_is_critical(tmp_path):
    check("-f", str(tmp_path / "*.pulse")).assert_critical("no file matches %s/*.pulse" % tmp_path)


def test_glob_matches_several_files_labelled_by_name(tmp_path):
    for name in ("w1.pulse", "w2.pulse", "w3.pulse"):
        pulse(tmp_path / name, age=5)
    pulse(tmp_path / "ignored.txt", age=999)
    result = check("-f", str(tmp_path / "*.pulse")).assert_ok("3 pulse files fresh")
    assert sorted(result.perfdata) == ["w1.pulse", "w2.pulse", "w3.pulse"]


def test_one_stale_file_among_many_names_it(tmp_path):
    pulse(tmp_path / "w1.pulse", age=5)
    pulse(tmp_path / "w2.pulse", age=400)
    result = check("-f", str(tmp_path / "*.pulse")).assert_critical("w2.pulse is 400s old")
    assert result.perfdata["w2.pulse"].value >= 400


def test_min_files_per_pattern(tmp_path):
    pulse(tmp_path / "w1.pulse")
    pulse(tmp_path / "w2.pulse")
    pattern = str(tmp_path / "*.pulse")
    check("-f", pattern, "--min-files", "2").assert_ok()
    check("-f", pattern, "--min-files", "3").assert_critical(
        "%s matches 2 files, expected at least 3" % pattern)


def test_repeated_names_in_different_directories_use_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = pulse(tmp_path / "a" / "w.pulse"), pulse(tmp_path / "b" / "w.pulse")
    result = check("-f", first, "-f", second).assert_ok()
    assert sorted(result.perfdata) == sorted([str(first), str(second)])


def test_future_mtime_is_warning_and_never_negative(tmp_path):
    path = pulse(tmp_path / "w.pulse", age=-600)
    result = check("-f", path).assert_warning("in the future", "clock skew")
    assert result.perfdata["age"].value == 0


def test_small_future_skew_is_tolerated(tmp_path):
    path = pulse(tmp_path / "w.pulse", age=-3)
    result = check("-f", path).assert_ok()
    assert result.perfdata["age"].value == 0
    check("-f", path, "--clock-tolerance", "0").assert_warning("in the future")


def test_json_content_is_shown_in_long_output(tmp_path):
    content = json.dumps({"node": "celery@web1", "pid": 4242, "time": time.time(), "state": "running"})
    path = pulse(tmp_path / "w.pulse", content=content)
    assert check("-f", path).long_output == []  # -v 0: one line
    result = check("-f", path, "-v").assert_ok()
    assert any("node celery@web1" in line and "pid 4242" in line and "state running" in line
               for line in result.long_output), result.long_output


def test_stopped_state_is_critical(tmp_path):
    content = json.dumps({"node": "celery@web1", "pid": 1, "state": "stopped"})
    path = pulse(tmp_path / "w.pulse", content=content)
    check("-f", path).assert_critical("celery@web1 stopped")


@pytest.mark.parametrize("content", [
    "", "not json", "[1, 2]", '{"node": "x"', "\x00\xff\xfe binary", "{" * 100000,
    json.dumps({"node": "a|b\nc", "pid": "x" * 500}),
])
def test_any_content_is_fine(tmp_path, content):
    path = tmp_path / "w.pulse"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    result = check("-f", path, "-v").assert_ok()
    assert all("|" not in line for line in result.long_output)


def test_fifo_is_not_read(tmp_path):
    fifo = tmp_path / "w.pulse"
    os.mkfifo(fifo)
    check("-f", fifo, "-t", "5").assert_ok()


def test_directory_is_unknown(tmp_path):
    check("-f", tmp_path).assert_unknown("is a directory")


def _as_nobody():
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not available to drop root")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.mark.skipif(os.geteuid() != 0 and os.access("/root", os.R_OK), reason="needs to drop privileges")
@pytest.mark.parametrize("form", ["glob", "path"])
def test_permission_denied_is_unknown(form):
    """Root reads everything, so drop to nobody. The checkout (and pytest's
    tmp_path) may sit in a directory nobody cannot enter: copy the package
    into a world-readable temporary directory and run it from there."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="celery-checks-perm-"))
    try:
        base.chmod(0o755)
        shutil.copytree(ROOT / "celery_checks", base / "lib" / "celery_checks",
                        ignore=shutil.ignore_patterns("__pycache__"))
        closed = base / "closed"
        closed.mkdir()
        pulse(closed / "w.pulse")
        closed.chmod(0o000)
        target = str(closed / ("*.pulse" if form == "glob" else "w.pulse"))
        env = dict(os.environ, PYTHONPATH=str(base / "lib"), PYTHONDONTWRITEBYTECODE="1")
        interpreter = sys.executable
        probe = subprocess.run(_as_nobody() + [interpreter, "-c", "import nagiosplugin, celery_checks"],
                               capture_output=True, env=env, cwd="/")
        if probe.returncode != 0:
            interpreter = "/usr/bin/python3"  # Debian's python3-nagiosplugin
        proc = subprocess.run(
            _as_nobody() + [interpreter, "-m", "celery_checks.pulsefile", "-f", target],
            capture_output=True, text=True, env=env, cwd="/",
        )
    finally:
        (base / "closed").chmod(0o755)
        shutil.rmtree(base)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.startswith("CELERY_PULSEFILE UNKNOWN - ")
    assert "Permission denied" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_imports_none_of_celery_redis_pika(tmp_path):
    path = pulse(tmp_path / "w.pulse")
    result, packages = run_importing("check_celery_pulsefile", "-f", path)
    assert result.rc == 0, result.stdout
    assert not packages & {"celery", "kombu", "redis", "hiredis", "pika", "amqp", "billiard"}


def test_exit_code_serves_as_container_probe(tmp_path):
    """HEALTHCHECK / livenessProbe read only the exit code: 0 healthy."""
    path = pulse(tmp_path / "w.pulse")
    assert subprocess.run([sys.executable, "-m", "celery_checks.pulsefile", "-f", str(path), "-c", "60"],
                          capture_output=True, cwd=str(ROOT)).returncode == 0
    pulse(path, age=61)
    assert subprocess.run([sys.executable, "-m", "celery_checks.pulsefile", "-f", str(path), "-c", "60"],
                          capture_output=True, cwd=str(ROOT)).returncode == 2


# ------------------------------------------- every item named exactly (#13)

def stale(path):
    """The status line for ``path`` an hour old (3600s or 3601s: the run
    takes its time) against the default -c 300."""
    import re

    return re.compile(r"%s is 360[01]s old \(> 300s\)" % re.escape(str(path)))


def test_stale_file_is_named_not_the_fresh_one_whose_name_prefixes_it(tmp_path):
    """-f '/run/celery/w*' with w1 fresh and w1x an hour old: w1x is stale.
    (A prefix lookup once reported w1, and the healthy worker was restarted.)"""
    pulse(tmp_path / "w1", age=1)
    pulse(tmp_path / "w1x", age=3600)
    result = check("-f", tmp_path / "w*", "-v").assert_critical()
    assert stale(tmp_path / "w1x").fullmatch(result.summary), result.summary
    assert result.perfdata["w1"].value < 60 and result.perfdata["w1x"].value >= 3600
    assert stale(tmp_path / "w1x").fullmatch(result.long_output[0][len("CRITICAL: "):])
    assert len([line for line in result.long_output if line.startswith("CRITICAL")]) == 1


@pytest.mark.parametrize("fresh, old", [
    ("a.pulse", "a.pulse.bak"),
    ("a.pulse.bak", "a.pulse"),
    ("w1", "w10"),
    ("a'b", "a=b"),   # both sanitise to a_b
    ("a=b", "a'b"),
    ("a|b", "a_b"),
])
def test_names_alike_or_prefixing_each_other_are_looked_up_exactly(tmp_path, fresh, old):
    pulse(tmp_path / fresh, age=1)
    pulse(tmp_path / old, age=3600)
    result = check("-f", tmp_path / "*").assert_critical()
    assert stale(tmp_path / old).fullmatch(result.summary), result.summary
    assert len(result.perfdata) == 2  # one label each, none lost to a clash
    ages = sorted(perf.value for perf in result.perfdata.values())
    assert ages[0] < 60 and ages[1] >= 3600


def test_clock_and_state_are_looked_up_exactly(tmp_path):
    pulse(tmp_path / "w1", age=-600)  # mtime in the future: w1, not w1x
    pulse(tmp_path / "w1x", content=json.dumps({"node": "w1x@h", "state": "running"}))
    check("-f", tmp_path / "w*").assert_warning("%s mtime is 600" % (tmp_path / "w1"), "in the future")
    pulse(tmp_path / "w1", content=json.dumps({"node": "w1@h", "state": "running"}))
    pulse(tmp_path / "w1x", content=json.dumps({"node": "w1x@h", "state": "stopped"}))
    result = check("-f", tmp_path / "w*").assert_critical()
    assert result.summary == "%s says w1x@h stopped" % (tmp_path / "w1x")


def test_sanitised_labels_stay_distinct_and_stable(tmp_path):
    for name in ("a'b", "a=b", "a_b"):
        pulse(tmp_path / name, age=5)
    first = check("-f", tmp_path / "*").assert_ok("3 pulse files fresh")
    assert len(first.perfdata) == 3
    assert sorted(check("-f", tmp_path / "*").perfdata) == sorted(first.perfdata)


# --------------------------------------------------- smaller lies (#13, 12)

def test_min_files_on_a_single_existing_path_says_how_many_match(tmp_path):
    path = pulse(tmp_path / "one.pulse")
    result = check("-f", path, "--min-files", "2").assert_critical()
    assert result.summary == "%s matches 1 file, expected at least 2" % path
    pattern = str(tmp_path / "*.pulse")
    check("-f", pattern, "--min-files", "2").assert_critical(
        "%s matches 1 file, expected at least 2" % pattern)


def test_age_and_its_threshold_never_read_alike(tmp_path):
    """3.09 s against -c 3 once read "3s old (> 3s)"."""
    import re

    path = pulse(tmp_path / "w.pulse", age=3.09)
    result = check("-f", path, "-w", "2", "-c", "3", "-v").assert_critical()
    match = re.fullmatch(r"%s is (\d+\.\d+)s old \(> 3s\)" % re.escape(str(path)), result.summary)
    assert match and float(match.group(1)) > 3, result.summary
    assert "%s: %ss old" % (path, match.group(1)) in result.long_output
    assert result.perfdata["age"].value > 3


def test_ok_age_is_worded_against_the_warning(tmp_path):
    """An OK age just below -w must not read as -w itself."""
    import re

    path = pulse(tmp_path / "w.pulse", age=1)
    result = check("-f", path, "-w", "30", "-c", "60").assert_ok()
    assert re.fullmatch(r"%s is \d+\.\d+s old" % re.escape(str(path)), result.summary), result.summary


def test_same_file_through_several_patterns_or_spellings_counts_once(tmp_path, monkeypatch):
    path = pulse(tmp_path / "w.pulse", age=5)
    monkeypatch.chdir(tmp_path)
    for args in (["-f", path, "-f", path],                    # a pattern repeated
                 ["-f", "w.pulse", "-f", path],               # relative and absolute
                 ["-f", tmp_path / "." / "w.pulse", "-f", path],
                 ["-f", tmp_path / "*.pulse", "-f", path]):   # a glob and a path
        result = run_in(tmp_path, *args).assert_ok()
        assert "2 pulse files" not in result.first_line, result.describe(args)
        assert len(result.perfdata) == 1, result.describe(args)
    os.symlink("w.pulse", tmp_path / "alias.pulse")
    result = run_in(tmp_path, "-f", tmp_path / "*.pulse", "--min-files", "2").assert_critical(
        "matches 1 file, expected at least 2")
    assert len(result.perfdata) == 1


def run_in(cwd, *args):
    """The check with ``cwd`` as its working directory."""
    import subprocess as sp

    from tests.kit.plugin import Result, executable

    command = [executable("check_celery_pulsefile")] + [str(a) for a in args]
    started = time.monotonic()
    proc = sp.run(command, capture_output=True, text=True, cwd=str(cwd), timeout=60)
    return Result(command, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def test_relative_path_is_read_from_the_working_directory(tmp_path):
    pulse(tmp_path / "w.pulse", age=400)
    for pattern in ("w.pulse", "*.pulse"):
        result = run_in(tmp_path, "-f", pattern).assert_critical("- w.pulse is 40", "s old (> 300s)")
        assert len(result.perfdata) == 1 and list(result.perfdata.values())[0].value >= 400


def test_tilde_is_the_home_directory(tmp_path):
    """A monitoring core runs no shell that would expand ~."""
    pulse(tmp_path / "w.pulse", age=400)
    env = dict(os.environ, HOME=str(tmp_path))
    for pattern in ("~/w.pulse", "~/*.pulse"):
        check("-f", pattern, env=env).assert_critical("- %s is 40" % (tmp_path / "w.pulse"), "(> 300s)")


def test_trailing_slash_is_a_usage_error_not_a_missing_file(tmp_path):
    path = pulse(tmp_path / "w.pulse")
    result = check("-f", str(path) + "/").assert_unknown("ends with /", "not a directory")
    assert "usage:" in result.stdout and "missing" not in result.first_line
    check("-f", "").assert_unknown("-f needs a path")


def test_glob_matching_only_a_directory_is_no_pulse_file(tmp_path):
    (tmp_path / "sub.pulse").mkdir()
    pulse(tmp_path / "w.pulse")
    result = check("-f", tmp_path / "*.pulse").assert_ok()
    assert list(result.perfdata) == ["w.pulse"]
    check("-f", tmp_path / "sub*").assert_critical("no file matches %s" % (tmp_path / "sub*"))
