"""The benchmark still runs and leaves nothing behind (no timing asserted:
speed is what bench/run.py reports, not what a test decides)."""

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.kit.project import ROOT
from tests.kit.waiting import port_open, wait_for

BENCH = [sys.executable, str(ROOT / "bench" / "run.py")]


def test_bench_runs_pulsefile_and_redis_queue_scenarios_and_cleans_up():
    proc = subprocess.run(
        BENCH + ["-n", "1", "--warmup", "1", "--no-write", "--only", "pulsefile|queue-redis"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for row in ("| pulsefile, 1 file | OK |", "| pulsefile, 50 files (glob) | OK |",
                "| queue, Redis, 1 queue", "| queue, Redis, 100 queues | OK |",
                "| pulsefile imports none of celery/redis/pika | none | met |"):
        assert row in out, row
    assert "not measured (--only)" in out  # RabbitMQ and worker scenarios were skipped
    # It started a redis-server of its own (the run's guard proves it touched
    # no other) and stopped it again.
    port = int(re.search(r"redis-server of our own on port (\d+)", proc.stderr).group(1))
    assert not port_open(port)


def test_bench_without_warmup_still_judges_each_scenario_by_a_run_of_its_own():
    proc = subprocess.run(BENCH + ["-n", "1", "--warmup", "0", "--no-write", "--only", "pulsefile-1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| pulsefile, 1 file | OK |" in proc.stdout
    assert "- runs: 1 measured rounds after 1 warm-up runs" in proc.stdout


def processes_naming(text):
    """PIDs of the processes whose command line contains ``text``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                if text.encode() in handle.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_bench_interrupted_mid_round_cleans_up_and_exits_130(tmp_path, how):
    """Ctrl-C reaches the whole foreground group (the bench and its
    launcher); a service manager's SIGTERM only the bench."""
    log = tmp_path / "bench.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(BENCH + ["-n", "100000", "--warmup", "1", "--no-write",
                                         "--only", "pulsefile"],
                                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    try:
        wait_for(lambda: "round 1/100000 done" in log.read_text(), 120, "the first round",
                 process=proc, log=log)
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert rc == 130, text[-3000:]
    assert text.rstrip().endswith("interrupted; cleaned up"), text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert not port_open(int(re.search(r"redis-server of our own on port (\d+)", text).group(1)))
    workdir = re.search(r"working in (\S+)", text).group(1)
    assert not os.path.exists(workdir)
    # No measured check (they name files in the work dir) was left running.
    assert processes_naming(workdir) == []
