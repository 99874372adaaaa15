"""check_celery_pulsefile, run as a process against real files."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kit.project import ROOT
from tests.kit.plugin import run_check


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


@pytest.mark.parametrize("age,state", [(59, "OK"), (61, "WARNING"), (119, "WARNING"), (121, "CRITICAL")])
def test_thresholds_on_each_side(tmp_path, age, state):
    path = pulse(tmp_path / "w.pulse", age=age)
    result = check("-f", path, "-w", "60", "-c", "120")
    result.assert_state(state)
    if state != "OK":
        assert "%s is %ds old" % (path, age) in result.first_line
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
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} "
        "& {'celery', 'kombu', 'redis', 'pika', 'amqp', 'billiard'})))\n"
        "sys.argv = ['check_celery_pulsefile', '-f', %r]\n"
        "from celery_checks.pulsefile import main\n"
        "main()\n" % str(path)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert "HEAVY []" in proc.stdout, proc.stdout


def test_exit_code_serves_as_container_probe(tmp_path):
    """HEALTHCHECK / livenessProbe read only the exit code: 0 healthy."""
    path = pulse(tmp_path / "w.pulse")
    assert subprocess.run([sys.executable, "-m", "celery_checks.pulsefile", "-f", str(path), "-c", "60"],
                          capture_output=True, cwd=str(ROOT)).returncode == 0
    pulse(path, age=61)
    assert subprocess.run([sys.executable, "-m", "celery_checks.pulsefile", "-f", str(path), "-c", "60"],
                          capture_output=True, cwd=str(ROOT)).returncode == 2
