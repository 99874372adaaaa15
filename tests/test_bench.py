"""The benchmark still runs and leaves nothing behind (no timing asserted:
speed is what bench/run.py reports, not what a test decides)."""

import re
import subprocess
import sys

from tests.kit.project import ROOT
from tests.kit.waiting import port_open


def test_bench_runs_pulsefile_and_redis_queue_scenarios_and_cleans_up():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "-n", "1", "--warmup", "1",
         "--no-write", "--only", "pulsefile|queue-redis"],
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
