"""No false alarm under load: a healthy fleet whose pools are saturated.

Three real prefork workers (concurrency 2) per broker, Redis and RabbitMQ,
busy on a flood of short tasks (tests.add, tests.sleep(0.01)) that a thread
keeps topping up for the whole module, while each check runs 200 times
(tests.kit.plugin.fork_runs: forks of a process that imported the check, so
the broker sees 200 real runs at a fraction of the start-up cost). Every
run must be OK: a healthy fleet on a busy machine is not an outage.

LOAD_PARALLEL (default 6) sets how many runs go at once; with 40 the runs
themselves starve each other too (that is how the old ping path said "3 of
3 expected workers missing" while the workers answered: its reply timeout
started before the connection, which a starved run took a second to set
up; tests/test_workers.py::test_slow_connection_does_not_eat_the_reply_timeout
shows it deterministically).

Each check is given what a healthy busy fleet needs: the queue check a
quiet queue and the flood queue with -w/-c above the flood's depth; the
heartbeat check a heartbeat that went through (trigger + worker) and
generous -w/-c; the pulse file check the workers' own pulse files.
"""

import os
import threading
import uuid

import pytest

from tests.kit import rabbitmq as rabbitmq_kit
from tests.kit.plugin import fork_runs, run_check
from tests.kit.waiting import wait_for
from tests.kit.workers import WorkerFactory

pytestmark = pytest.mark.slow

RUNS = 200
NODES = ["load-%d@busy" % i for i in (1, 2, 3)]
FLOOD, QUIET = "flood", "quiet"
FLOOD_DEPTH = 300  # topped up to about this many waiting tasks


@pytest.fixture(scope="module")
def brokers(redis_server, redis_dbs):
    with rabbitmq_kit.Vhost("cc-load") as vhost, redis_dbs.take(from_top=True) as db:
        yield {"redis": redis_server.url(db), "amqp": vhost.url}


class Flood:
    """Keeps about FLOOD_DEPTH short tasks waiting in FLOOD on each broker."""

    def __init__(self, urls):
        self.urls = urls
        self.stop = threading.Event()
        self.sent = 0
        self.errors = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        from kombu import Connection

        connections = {kind: Connection(url) for kind, url in self.urls.items()}
        try:
            while not self.stop.is_set():
                for kind, conn in connections.items():
                    if self.depth(kind, conn) < FLOOD_DEPTH // 2:
                        self.publish(conn, FLOOD_DEPTH // 2)
                self.stop.wait(0.05)
        except Exception as exc:  # reported by the test
            self.errors.append(repr(exc))
        finally:
            for conn in connections.values():
                conn.release()

    @staticmethod
    def depth(kind, conn):
        channel = conn.default_channel
        if kind == "redis":
            return channel.client.llen(FLOOD)
        return channel.queue_declare(FLOOD, passive=True).message_count

    def publish(self, conn, count):
        from kombu import Exchange, Producer

        producer = Producer(conn.default_channel, exchange=Exchange(FLOOD, type="direct"),
                            routing_key=FLOOD, serializer="json")
        for index in range(count):
            task, args = ("tests.add", [index, 1]) if index % 2 else ("tests.sleep", [0.01])
            task_id = uuid.uuid4().hex
            producer.publish(
                [args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}],
                headers={"lang": "py", "task": task, "id": task_id, "root_id": task_id,
                         "parent_id": None, "group": None, "argsrepr": repr(args),
                         "kwargsrepr": "{}", "retries": 0, "eta": None, "expires": None})
        self.sent += count


@pytest.fixture(scope="module")
def fleet(brokers, tmp_path_factory):
    """3 busy prefork workers per broker writing pulse files; the flood
    runs until the module ends."""
    root = tmp_path_factory.mktemp("load")
    factory = WorkerFactory(root)
    pulses = {}
    try:
        for kind, url in brokers.items():
            pulses[kind] = root / ("pulse-" + kind)
            pulses[kind].mkdir()
            for name in NODES:
                factory.start(url, name=name, pool="prefork", concurrency=2, wait=False,
                              queues=(FLOOD, QUIET + "-" + kind),
                              env={"CELERY_CHECKS_PULSE_FILE": str(pulses[kind] / "%n.pulse"),
                                   "CELERY_CHECKS_PULSE_INTERVAL": "1"})
        for worker in factory.workers:
            factory.wait_ready(worker, 90, "ready.")
        flood = Flood(brokers)
        flood.thread.start()
        wait_for(lambda: flood.errors or flood.sent >= 2 * FLOOD_DEPTH, 30, "the flood to start")
        assert not flood.errors, flood.errors
        yield factory, flood, pulses
        flood.stop.set()
        flood.thread.join(10)
        assert not flood.errors, flood.errors
    finally:
        factory.stop_all()


def all_ok(name, argv, check=None):
    """RUNS forked runs of ``name``; every one OK (and ``check``ed)."""
    results = fork_runs(name, [argv] * RUNS, parallel=int(os.environ.get("LOAD_PARALLEL", 6)))
    bad = [r for r in results if r.rc != 0]
    assert not bad, "%d of %d runs not OK, e.g.:\n%s" % (
        len(bad), RUNS, "\n".join(r.describe("not OK") for r in bad[:3]))
    for result in results:
        result.assert_ok()
        if check:
            check(result)
    return results


@pytest.mark.parametrize("kind", ["redis", "amqp"])
@pytest.mark.parametrize("source", ["ping", "events"])
def test_workers_check_under_load(fleet, brokers, kind, source):
    expect = ["--expect", "load-*@busy=3"]

    def check(result):
        assert result.first_line.startswith(
            "CELERY_WORKERS OK - 3 workers online, all 3 expected present"), result.first_line
        assert (result.perfdata["online"].value, result.perfdata["missing"].value) == (3, 0)

    all_ok("check_celery_workers", ["-b", brokers[kind], "--source", source, *expect, "-v"], check)


@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_queue_check_under_load(fleet, brokers, kind):
    argv = ["-b", brokers[kind], "-q", QUIET + "-" + kind, "-q", FLOOD,
            "-w", str(FLOOD_DEPTH * 20), "-c", str(FLOOD_DEPTH * 40)]
    all_ok("check_celery_queue", argv)


@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_heartbeat_check_under_load(fleet, brokers, kind):
    argv = ["-b", brokers[kind], "--store", brokers["redis"], "-q", QUIET + "-" + kind,
            "-w", "3600", "-c", "7200", "--latency-warning", "60", "--latency-critical", "120"]
    # a heartbeat through the quiet queue, recorded in Redis, goes through first
    result = run_check("trigger_celery_heartbeat", "-b", brokers[kind], "--store", brokers["redis"],
                       "-q", QUIET + "-" + kind)
    assert result.rc == 0, result.describe("trigger")
    last = []

    def through():
        last[:] = [run_check("check_celery_heartbeat", *argv)]
        return last[0].rc == 0

    try:
        wait_for(through, 60, "the heartbeat through %s" % kind)
    except AssertionError:
        raise AssertionError(last[0].describe("the heartbeat never went through"))
    all_ok("check_celery_heartbeat", argv)


@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_pulsefile_check_under_load(fleet, kind):
    _, _, pulses = fleet
    argv = ["-f", str(pulses[kind] / "*.pulse"), "--min-files", "3", "-w", "30", "-c", "60"]
    wait_for(lambda: len(list(pulses[kind].glob("*.pulse"))) == 3, 30, "3 pulse files")
    all_ok("check_celery_pulsefile", argv)
