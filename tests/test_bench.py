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


def table_row(out, title):
    """The cells of every table row of ``out`` whose first cell is ``title``."""
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for line in out.splitlines() if line.startswith("| %s |" % title)]


def test_bench_measures_each_library_set_in_the_same_run_and_the_tools_once():
    """Two --set (the same interpreter twice: the test needs no second venv)."""
    proc = subprocess.run(
        BENCH + ["-n", "1", "--warmup", "1", "--no-write", "--only", "queue-redis-1$",
                 "--set", "one=" + sys.executable, "--set", "two=" + sys.executable],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("<!-- bench:begin -->") == 1 and out.count("<!-- bench:end -->") == 1
    for name in ("one", "two"):
        assert "  - `%s`: %s: Python " % (name, sys.executable) in out
    assert "| figure | budget | `one` | verdict | `two` | verdict |" in out
    [rss] = table_row(out, "queue, 1 queue, peak RSS")
    assert rss[1] == "≤ 20 MiB" and rss[2].endswith(")") and rss[4].endswith(")"), rss
    assert rss[3] in ("met", "**MISSED**") and rss[5] in ("met", "**MISSED**"), rss
    [floor] = table_row(out, "queue, 1 queue × its floor")
    assert floor[2].endswith("×)") and floor[4].endswith("×)"), floor
    assert table_row(out, "heartbeat, 1 queue × its floor")[0][3] == "not measured (--only)"
    # each set has its own tables: the check and its floor measured twice
    assert out.index("### Library set `one`") < out.index("### Library set `two`")
    assert len(table_row(out, "queue, Redis, 1 queue (10 msgs, priorities 0-9)")) == 2 * 2
    assert len(table_row(out, "floor: `import nagiosplugin, argparse, socket`")) == 2
    # the tool ran once, shown in both sets' tables with the same figures;
    # the check and the baselines of python (5) once per set
    assert "No worker running: 6 scenarios for each of 2 library sets, 1 shared" in proc.stderr
    tools = table_row(out, "`redis-cli llen` (1 list)")
    assert len(tools) == 2 and tools[0][:5] == tools[1][:5], tools
    port = int(re.search(r"redis-server of our own on port (\d+)", proc.stderr).group(1))
    assert not port_open(port)


@pytest.mark.parametrize("args, message", [
    (["--set", "debian"], "expected NAME=PYTHON"),
    (["--set", "a=/nonexistent/python"], "/nonexistent/python: no such interpreter"),
    (["--set", "a=%s" % sys.executable, "--set", "a=%s" % sys.executable], "--set a given twice"),
    (["--python", sys.executable, "--set", "a=%s" % sys.executable], "not allowed with"),
])
def test_bench_refuses_a_set_it_cannot_measure(args, message):
    proc = subprocess.run(BENCH + args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "working in" not in proc.stderr  # refused before setting anything up


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


def test_the_pings_growth_is_shown_beside_what_the_workers_answering_adds():
    """bench/compare.py's rows for the 50 workers' ping, from literal
    samples of three rounds: the check, and the same messages by redis-cli
    (the workers' answering, which no client waits less for)."""
    from bench import compare
    from bench.budgets import budgets
    from bench.measure import Sample
    from bench.scenarios import Scenario

    walls = {"workers-ping-2": (0.040, 0.042, 0.041), "workers-ping-50": (0.080, 0.079, 0.082),
             "ping-redis-cli-2": (0.010, 0.011, 0.010), "ping-redis-cli-50": (0.046, 0.048, 0.047)}
    by_key = {}
    for key, seconds in walls.items():
        scenario = by_key[key] = Scenario(key, key, ["x"])
        scenario.samples = [Sample(wall, wall, 15.0, 0, "") for wall in seconds]
        scenario.status = "ok"
    rows = {figure: (budget, shown, judged) for figure, budget, shown, judged in compare.rows(by_key)}
    assert rows["workers, ping, 50 workers ÷ 2"] == ("≤ 1.5×", "2.00× (CPU 2.00×)", "**MISSED**")
    # redis-cli grew by 36, 37, 37 ms; 1.5× leaves half of the 41 ms median
    assert rows["workers, ping, 50 ÷ 2: what the workers' answering adds (the same messages "
                "by `redis-cli`)"] == ("≤ what 1.5× leaves", "+37.0 ms (1.5× leaves +20.5 ms)",
                                       "**out of reach of any client here**")
    # (80 - 36) / 40, (79 - 37) / 42, (82 - 37) / 41: 1.100, 1.000, 1.098
    assert rows["workers, ping, 50 ÷ 2, less what the workers' answering adds"] == (
        "≤ 1.5×", "1.10×", "met")
    judged = {text: (shown, judged) for text, shown, judged in budgets(by_key)}
    assert judged["workers, ping: 50 workers ≤ 1.5× 2 workers, less what the workers' "
                  "answering adds"] == ("1.098× (the workers' answering, by redis-cli, adds "
                                        "37.0 ms; 1.5× of the smallest case leaves 20.5 ms)",
                                        "met")
    del by_key["ping-redis-cli-50"]
    rows = {figure: judged for figure, _, _, judged in compare.rows(by_key)}
    assert rows["workers, ping, 50 ÷ 2, less what the workers' answering adds"] \
        == "not measured (--only)"
