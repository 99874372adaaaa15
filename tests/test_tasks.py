"""Task records end to end: real workers (prefork, solo, threads, gevent; Redis
and RabbitMQ brokers, the store always Redis) run real tasks that succeed,
fail, retry, are rejected and revoked; check_celery_tasks, run as a process,
reports their exact counts over two runs; a real celery beat feeds the
dead-man's switch until it stops; a store that freezes and dies under a
live worker leaves every task's result untouched.

Workers flush every 0.2 s here (TEST_TASKS_FLUSH); one worker per pool for
the whole module (tests/tasks_app.py has the tasks).
"""

import gc
import os
import signal
import time
import uuid
from types import SimpleNamespace

import pytest
from celery import Celery
from celery.exceptions import TaskRevokedError

from celery_checks.connect.redis import redis_client
from celery_checks.store import tasks as store
from tests.kit import rabbitmq as rabbitmq_kit
from tests.kit.faults import Listener, closed_port
from tests.kit.plugin import run_check
from tests.kit.waiting import wait_for
from tests.kit.workers import PREFETCH_AHEAD, WorkerFactory

pytestmark = pytest.mark.slow
FLUSH = {"TEST_TASKS_FLUSH": "0.2"}
LONG_NAME = "tests.long." + "x" * 300  # a task of tests/tasks_app.py (not imported here)


def check(store_url, *args):
    return run_check("check_celery_tasks", "--store", store_url, *args)


def counts(store_url):
    """{name: (succeeded, failed, retried, rejected, revoked)} in the store
    (read as the check reads it)."""
    client = redis_client(store_url)
    try:
        _, records = store.read(client)
    finally:
        client.close()
    return {name: tuple(r[c] for c in store.COUNTERS) for name, r in records.items()}


class ClientApps:
    """Celery apps that send tasks and read their results; :meth:`close`
    lets go of the results first (an AsyncResult left to interpreter
    shutdown unsubscribes from a backend that is gone: noise on stderr)."""

    def __init__(self):
        self.apps = []

    def __call__(self, broker, backend):
        app = Celery("tasks-test-client", broker=broker, backend=backend, set_as_current=False)
        app.conf.task_ignore_result = False
        self.apps.append(app)
        return app

    def close(self):
        gc.collect()
        for app in self.apps:
            app.close()


@pytest.fixture
def client_app():
    apps = ClientApps()
    yield apps
    apps.close()


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    workers = WorkerFactory(tmp_path_factory.mktemp("task-workers"))
    yield workers
    workers.stop_all()


@pytest.fixture(scope="module")
def module_db(redis_server, redis_dbs):
    """``module_db()``: the URL of a database of the session's Redis for this module."""
    held = []

    def take():
        manager = redis_dbs.take(from_top=True)
        held.append(manager)
        number = manager.__enter__()
        return redis_server.url(number)

    yield take
    for manager in held:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="module", params=["prefork-redis", "solo-rabbitmq", "threads-redis",
                                        "gevent-redis"])
def pooled(request, factory, module_db):
    """A worker of one pool on one broker; its store is a database of its own
    (the broker itself when that is Redis: the default store)."""
    pool, broker = request.param.split("-")
    store_url = module_db()
    queue = "tk-%s-%s" % (pool, uuid.uuid4().hex[:6])
    env = dict(FLUSH, TEST_TASKS_RESULTS=store_url)
    if broker == "rabbitmq":
        request.getfixturevalue("rabbitmq_vhost")
        broker_url = rabbitmq_kit.url(request.getfixturevalue("rabbitmq_vhost"))
        env["TEST_TASKS_STORE"] = store_url
    else:
        broker_url = store_url
    worker = factory.start(broker_url, queues=[queue], pool=pool, concurrency=2,
                           app="tests.tasks_app", env=env, extra_args=PREFETCH_AHEAD)
    apps = ClientApps()
    yield SimpleNamespace(pool=pool, worker=worker, app=apps(broker_url, store_url),
                          queue=queue, store=store_url)
    worker.stop()
    apps.close()


def send(w, task, *args, **options):
    return w.app.send_task(task, args=args, queue=w.queue, **options)


def test_counts_across_two_runs_then_rates(pooled, tmp_path):
    w = pooled
    state = str(tmp_path / "state.json")
    options = ["-T", "tests.*", "--state-file", state, "-w", "1", "--failure-ratio-critical", "60"]
    started = time.time()
    revoked_id = str(uuid.uuid4())
    replies = w.app.control.revoke(revoked_id, reply=True, timeout=10,
                                   destination=[w.worker.name])
    assert replies, "the worker did not answer the revoke"
    ok = [send(w, "tests.divide", 4, 2) for _ in range(3)]
    bad = send(w, "tests.divide", 1, 0)
    flaky = send(w, "tests.flaky", 2)
    send(w, "tests.refuse")
    revoked = send(w, "tests.divide", 8, 2, task_id=revoked_id)
    assert [r.get(timeout=30) for r in ok] == [2.0] * 3
    with pytest.raises(ZeroDivisionError):
        bad.get(timeout=30)
    assert flaky.get(timeout=30) == 2
    with pytest.raises(TaskRevokedError):
        revoked.get(timeout=30)
    expected = {"tests.divide": (3, 1, 0, 0, 1), "tests.flaky": (1, 0, 2, 0, 0),
                "tests.refuse": (0, 0, 0, 1, 0)}
    wait_for(lambda: counts(w.store) == expected, what="the records of %s" % expected)
    if w.pool == "prefork":
        # A pool process dies under a task: the main process counts it. (What
        # that process tallied and had not sent yet dies with it: hence only
        # once the others are in the store.)
        with pytest.raises(Exception) as lost:
            send(w, "tests.die").get(timeout=30)
        assert type(lost.value).__name__ == "WorkerLostError"
        expected["tests.die"] = (0, 1, 0, 0, 0)
        wait_for(lambda: counts(w.store) == expected, what="the lost worker's failure")

    first = check(w.store, *options, "-v").assert_ok(
        "%d tasks recorded; first run, rates judged from the next run on" % len(expected))
    perf = first.perfdata
    assert (perf["tests.divide_succeeded"].value, perf["tests.divide_succeeded"].uom) == (3, "c")
    assert (perf["tests.divide_failed"].value, perf["tests.divide_failed"].uom) == (1, "c")
    assert perf["tests.divide_failed_interval"].value == "U"
    assert 0 <= perf["tests.divide_success_age"].value <= time.time() - started
    assert perf["tests.refuse_success_age"].value == "U"
    lines = first.long_output
    assert any(line.startswith("tests.flaky: 1 succeeded, 0 failed, 2 retried, 0 rejected, "
                               "0 revoked; last success ") for line in lines), lines
    assert any(line.startswith("tests.divide: 3 succeeded, 1 failed (last ZeroDivisionError ")
               and "0 retried, 0 rejected, 1 revoked" in line for line in lines), lines
    if w.pool == "prefork":
        assert any(line.startswith("tests.die: 0 succeeded, 1 failed (last WorkerLostError ")
                   for line in lines), lines

    # The interval: two of four failed.
    results = [send(w, "tests.divide", *args) for args in ((1, 0), (6, 3), (1, 0), (6, 3))]
    for result in results:
        result.get(timeout=30, propagate=False)
    expected["tests.divide"] = (5, 3, 0, 0, 1)
    wait_for(lambda: counts(w.store) == expected, what="the second records")
    second = check(w.store, *options, "-v").assert_warning(
        "tests.divide: 2 of 4 failed (50%), last ZeroDivisionError (failed > 1)")
    perf = second.perfdata
    assert perf["tests.divide_failed_interval"].value == 2
    assert perf["tests.divide_failure_ratio"].value == 50
    assert perf["tests.divide_runtime"].value >= 0 and perf["tests.divide_runtime"].uom == "s"
    assert perf["tests.divide_succeeded"].value == 5
    assert perf["tests.flaky_failed_interval"].value == 0
    assert perf["tests.flaky_runtime"].value == "U"  # nothing ran in the interval
    assert sorted(perf) == sorted(first.perfdata)  # the same labels from run to run


def test_beat_stops_and_the_dead_mans_switch_fires(factory, module_db, tmp_path, client_app):
    """A real celery beat runs tests.nightly every 0.5 s; --max-age 3s is OK
    while it runs, CRITICAL once it stopped. The worker keeps 2 names."""
    url = module_db()
    env = dict(FLUSH, TEST_TASKS_BEAT_EVERY="0.5", TEST_TASKS_MAX_NAMES="2",
               TEST_TASKS_RESULTS=url)
    factory.start(url, app="tests.tasks_app", env=env, extra_args=PREFETCH_AHEAD)
    switch = ["-T", "tests.nightly", "--max-age", "tests.nightly=3s",
              "--state-file", tmp_path / "state.json"]
    check(url, *switch).assert_critical(
        "tests.nightly: never succeeded, no such task recorded (max age 3s)")

    beat = factory.start(url, command="beat", app="tests.tasks_app", env=env)
    wait_for(lambda: counts(url).get("tests.nightly", (0,))[0] >= 2, what="beat's tasks")
    result = check(url, *switch).assert_ok()
    assert 0 <= result.perfdata["tests.nightly_success_age"].value < 3
    assert result.perfdata["tests.nightly_success_age"].crit == "3"

    beat.stop()
    wait_for(lambda: check(url, *switch).rc == 2, timeout=15, interval=0.3,
             what="the dead-man's switch")
    result = check(url, *switch).assert_critical("tests.nightly: last success ", " ago (> 3s)")
    assert result.perfdata["tests.nightly_success_age"].value > 3

    # A third name is over the cap: counted as (other).
    app = client_app(url, url)
    assert app.send_task("tests.divide", args=(1, 1)).get(timeout=30) == 1
    assert app.send_task("tests.named", args=(7,)).get(timeout=30) == 7
    wait_for(lambda: counts(url).get(store.OTHER) == (1, 0, 0, 0, 0), what="(other)")
    assert sorted(counts(url)) == [store.OTHER, "tests.divide", "tests.nightly"]


def test_store_outage_leaves_every_result_untouched(factory, module_db, own_redis, tmp_path,
                                                   client_app):
    """The store freezes (SIGSTOP), then dies, then comes back, under a live
    solo worker: every task returns its result, the worker log says once
    that records are dropped, and once that the store answers again."""
    broker = module_db()
    server = own_redis().start()
    store_url = server.url(0)
    worker = factory.start(broker, app="tests.tasks_app", queues=["tk-outage"],
                           extra_args=PREFETCH_AHEAD,
                           env=dict(FLUSH, TEST_TASKS_STORE=store_url, TEST_TASKS_RESULTS=broker))
    app = client_app(broker, broker)

    def run(count):
        results = [app.send_task("tests.add", args=(i, 1), queue="tk-outage")
                   for i in range(count)]
        assert [r.get(timeout=30) for r in results] == [i + 1 for i in range(count)]

    run(5)
    # a name longer than the store keeps is cut
    assert app.send_task(LONG_NAME, queue="tk-outage").get(timeout=30) == 1
    wait_for(lambda: counts(store_url) == {"tests.add": (5, 0, 0, 0, 0),
                                                 LONG_NAME[:200]: (1, 0, 0, 0, 0)},
             what="records")

    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        run(10)
        wait_for(lambda: "dropping task records" in worker.log(), what="the worker to say so")
        check(store_url, "-t", "3", "--state-file", tmp_path / "s").assert_critical(
            "task store redis://127.0.0.1:%d/0 did not answer in time" % server.port)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()  # killed: what it buffered while frozen dies with it
    run(5)
    check(store_url, "--state-file", tmp_path / "s").assert_critical(
        "cannot reach task store redis://127.0.0.1:%d/0" % server.port)

    server.start()
    run(4)
    # The 5 run while the store was down are dropped by the flush that finds
    # it down, unless a loaded machine delays that flush past the restart:
    # then they arrive with the 4 (one flush sends all it tallied).
    seen = []
    try:
        wait_for(lambda: seen.append(counts(store_url)) or seen[-1] in (
            {"tests.add": (4, 0, 0, 0, 0)}, {"tests.add": (9, 0, 0, 0, 0)}),
            what="records after the store came back")
    except AssertionError as exc:
        raise AssertionError("%s (last read: %s)" % (exc, seen[-1:]))
    log = worker.log()
    assert log.count("dropping task records") == 1, log[-3000:]
    assert "task store answers again" in log
    assert "Traceback" not in log


def test_state_file_and_store_failures(redis_url, tmp_path):
    check(redis_url, "--state-file", "/nonexistent/dir/state.json").assert_unknown(
        "cannot write state file /nonexistent/dir/state.json: No such file or directory")
    damaged = tmp_path / "state.json"
    damaged.write_text("{not json")
    check(redis_url, "--state-file", damaged, "--missing-state", "ok").assert_ok(
        "0 tasks recorded; state file was damaged, rates judged from the next run on")
    check(redis_url, "--state-file", damaged, "--missing-state", "ok").assert_ok(
        "0 tasks recorded: 0 runs in ")

    port = closed_port()
    check("redis://127.0.0.1:%d/0" % port, "--state-file", damaged).assert_critical(
        "cannot reach task store redis://127.0.0.1:%d/0" % port)
    silent = Listener("silent")
    try:
        result = check("redis://:celery@127.0.0.1:%d/0" % silent.port, "-t", "2",
                       "--state-file", damaged)
        result.assert_critical("task store redis://:***@127.0.0.1:%d/0 did not answer in time"
                               % silent.port)
        assert "celery@" not in result.stdout
    finally:
        silent.close()
