"""The benchmark still runs and leaves nothing behind (no timing asserted:
speed is what bench/run.py reports, not what a test decides)."""

import subprocess
import sys

import redis

from tests.conftest import REDIS_HOST, REDIS_PORT, ROOT


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
    # The queues it filled are gone again, whichever database it took.
    for db in range(1, 16):
        assert not redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).exists("bench-q000"), db
