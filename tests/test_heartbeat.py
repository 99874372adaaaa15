"""The heartbeat end to end: trigger_celery_heartbeat and celery beat publish,
real workers run celery_checks.heartbeat, check_celery_heartbeat judges.

Real Redis (a private DB per test), real RabbitMQ, real worker processes.
Thresholds are small so that ages cross them in a few seconds.
"""

import os
import signal
import subprocess
import time

import pytest
from celery import Celery

from celery_checks.connect.redis import redis_client as redis_client_of
from celery_checks.store import heartbeats as store
from celery_checks.store import tasks as task_store
from tests.kit.faults import Listener
from tests.kit.plugin import executable, run_check
from tests.kit.producers import declare_on_redis
from tests.kit.waiting import wait_for
from tests.kit.workers import PREFETCH_AHEAD


def check(store_url, *args, **kw):
    return run_check("check_celery_heartbeat", "--store", store_url, *args, **kw)


def trigger(*args, **kw):
    return run_check("trigger_celery_heartbeat", *args, **kw)


def record(client, queue):
    return {k.decode(): v.decode() for k, v in client.hgetall(store.key_for(queue)).items()}


def started(client, *queues):
    return wait_for(lambda: all("started" in record(client, q) for q in queues),
                    what="heartbeats of %s to start" % (queues,))


def assert_published(result, count):
    assert result.rc == 0, result.describe("trigger failed")
    assert result.stdout.count("\n") == 1 and result.stderr == "", result.describe("one line")
    assert result.stdout.startswith("published %d heartbeat" % count)


def assert_one_line_failure(result, *fragments):
    assert result.rc == 1, result.describe("expected exit 1")
    assert result.stdout == "", result.describe("stdout must stay empty")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.describe("one line on stderr")
    assert lines[0].startswith("trigger_celery_heartbeat: ")
    assert "Traceback" not in result.stderr and "secret" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], result.describe("missing %r" % fragment)


# ------------------------------------------------------------ end to end

def test_trigger_worker_check_then_stale_then_stuck(redis_url, redis_client, celery_worker):
    worker = celery_worker.start(redis_url, queues=["hb-a", "hb-b"], extra_args=PREFETCH_AHEAD)
    # hb-c: no worker declared it. The others get their heartbeat, hb-c
    # gets none (it would be lost) and the trigger says so.
    result = trigger("-b", redis_url, "-q", "hb-a", "-q", "hb-b", "-q", "hb-c")
    assert_one_line_failure(result, "queue hb-c not declared on broker")
    started(redis_client, "hb-a", "hb-b")
    assert not redis_client.exists("hb-c")

    result = check(redis_url, "-q", "hb-a", "-q", "hb-b", "-v").assert_ok("2 queues healthy")
    for queue in ("hb-a", "hb-b"):
        age, latency = result.perfdata[queue + "_age"], result.perfdata[queue + "_latency"]
        assert age.uom == "s" and 0 <= age.value < 10
        assert (age.warn, age.crit, age.min) == ("300", "600", "0")
        assert latency.uom == "s" and 0 <= latency.value < 5 and latency.min == "0"
        assert (latency.warn, latency.crit) == ("60", "300")
        assert record(redis_client, queue)["worker"] == worker.name
    assert any(worker.name in line for line in result.long_output), result.long_output
    # -v alone reads who started and who published each heartbeat
    described = [line for line in result.long_output if line.startswith(("hb-a:", "hb-b:"))]
    assert len(described) == 2 and all(
        "ago by %s" % worker.name in line and "last published " in line and " by trigger@" in line
        for line in described), result.long_output
    quiet = check(redis_url, "-q", "hb-a", "-q", "hb-b").assert_ok("2 queues healthy")
    assert sorted(quiet.perfdata) == sorted(result.perfdata) and not quiet.long_output

    # Only hb-c alerts: never seen, and why.
    result = check(redis_url, "-q", "hb-a", "-q", "hb-b", "-q", "hb-c",
                   "--latency-warning", "30", "--latency-critical", "60")
    result.assert_critical("hb-c: no heartbeat yet, trigger failing: queue hb-c not declared")
    assert "(+" not in result.first_line and "hb-c_age" not in result.perfdata
    assert (result.perfdata["hb-a_latency"].warn, result.perfdata["hb-a_latency"].crit) == ("30", "60")

    # The worker goes away, nothing is published: the age grows through -w
    # then -c, and the diagnosis is a stale trigger, not a stuck queue.
    assert_published(trigger("-b", redis_url, "-q", "hb-a"), 1)  # a fresh start
    wait_for(lambda: record(redis_client, "hb-a")["started_id"] == record(redis_client, "hb-a")["published_id"],
             what="the fresh heartbeat to start")
    worker.stop()
    states = []
    while "CRITICAL" not in states:
        result = check(redis_url, "-q", "hb-a", "-w", "2", "-c", "5")
        states.append(result.state)
        if result.state != "OK":
            assert "hb-a trigger stale" in result.first_line, result.describe("diagnosis")
        assert len(states) < 60, states
        time.sleep(0.2)
    assert "WARNING" in states, states
    assert states == sorted(states, key=["OK", "WARNING", "CRITICAL"].index), states
    result.assert_critical("hb-a trigger stale", "age > 5s")
    assert result.perfdata["hb-a_age"].value > 5

    # Published again while no worker runs: a gap in publishing first, then
    # once the new heartbeat has waited past -w, a stuck queue.
    assert_published(trigger("-b", redis_url, "-q", "hb-a"), 1)
    check(redis_url, "-q", "hb-a", "-w", "2", "-c", "5").assert_critical(
        "hb-a trigger stale", "next published only")
    wait_for(lambda: time.time() - float(record(redis_client, "hb-a")["pending_since"]) > 2.2,
             what="the new heartbeat to wait past -w")
    result = check(redis_url, "-q", "hb-a", "-w", "2", "-c", "5").assert_critical("hb-a stuck")
    assert "heartbeat waiting" in result.first_line


BARE_APP = """
from celery import Celery
import celery_checks

app = Celery("proj")  # the broker only on the command line: celery -b URL worker
app.conf.checks_tasks_flush_interval = 0.2
celery_checks.install(app)


@app.task(name="proj.add")
def add(x, y):
    return x + y
"""


def test_a_worker_given_its_broker_by_celery_b_records_heartbeats_and_tasks(
        redis_url, redis_client, celery_worker, tmp_path):
    """An app that names no broker, run as Celery documents it, ``celery -A
    proj -b URL worker`` (which hands the URL on as $CELERY_BROKER_URL):
    the worker side found no store in app.conf's mapping ("the broker is not
    Redis"), so every heartbeat failed in the worker and stayed "waiting",
    and no task outcome was recorded."""
    (tmp_path / "proj.py").write_text(BARE_APP)
    worker = celery_worker.start(redis_url, app="proj", pythonpath=tmp_path,
                                 global_args=["-b", redis_url])
    assert "no store" not in worker.log(), worker.log()
    assert_published(trigger("-b", redis_url, "-q", "celery"), 1)
    started(redis_client, "celery")
    check(redis_url, "-q", "celery").assert_ok("celery healthy: heartbeat")
    assert "RuntimeError" not in worker.log(), worker.log()
    client = Celery("client", broker=redis_url, set_as_current=False)
    try:
        client.send_task("proj.add", (1, 2))
    finally:
        client.close()
    store_client = redis_client_of(redis_url)
    try:
        wait_for(lambda: "proj.add" in task_store.read(store_client)[1],
                 what="the task's outcome in the store")
    finally:
        store_client.close()
    run_check("check_celery_tasks", "--store", redis_url, "--state-file",
              tmp_path / "tasks.json").assert_ok()


def test_heartbeat_not_started_before_its_expiry_is_discarded(redis_url, redis_client, celery_worker):
    declare_on_redis(redis_client, "hb-x")  # a worker consumed it before, none now
    assert_published(trigger("-b", redis_url, "-q", "hb-x", "--expires", "1"), 1)
    expired_id = record(redis_client, "hb-x")["published_id"]
    wait_for(lambda: time.time() - float(record(redis_client, "hb-x")["published"]) > 1.5,
             what="the heartbeat to expire")
    worker = celery_worker.start(redis_url, queues=["hb-x"], extra_args=PREFETCH_AHEAD)
    wait_for(lambda: "Discarding revoked task: celery_checks.heartbeat[%s]" % expired_id in worker.log(),
             what="the worker to discard the expired heartbeat")
    assert "started" not in record(redis_client, "hb-x")
    check(redis_url, "-q", "hb-x", "-w", "1").assert_warning(
        "hb-x: first heartbeat waiting", "none started yet")

    # The same worker runs a heartbeat that has not expired; its latency
    # counts from its own publish, the wait of the expired one is over.
    assert_published(trigger("-b", redis_url, "-q", "hb-x"), 1)
    started(redis_client, "hb-x")
    fields = record(redis_client, "hb-x")
    assert fields["started_id"] == fields["published_id"] != expired_id
    assert "pending_since" not in fields and float(fields["latency"]) < 5
    check(redis_url, "-q", "hb-x", "-w", "1").assert_ok("hb-x healthy")


def test_beat_schedule_entries_send_heartbeats_the_check_accepts(redis_url, redis_client, celery_worker):
    """Real celery beat and a threads-pool worker, both on an app with a
    global_keyprefix: the heartbeat keys carry it, the check follows -O."""
    env = {"TEST_HEARTBEAT_KEYPREFIX": "app1:"}
    celery_worker.start(redis_url, queues=["hb-b1", "hb-b2"], pool="threads", concurrency=2,
                        app="tests.heartbeat_app", env=env)
    celery_worker.start(redis_url, command="beat", app="tests.heartbeat_app", env=dict(
        env, TEST_HEARTBEAT_BEAT_QUEUES="hb-b1,hb-b2", TEST_HEARTBEAT_BEAT_EVERY="0.5"))
    options = {"global_keyprefix": "app1:"}

    def fields(queue):
        raw = redis_client.hgetall(store.key_for(queue, options))
        return {k.decode(): v.decode() for k, v in raw.items()}

    wait_for(lambda: all("started" in fields(q) for q in ("hb-b1", "hb-b2")), what="beat heartbeats")
    for queue in ("hb-b1", "hb-b2"):
        # beat's publish was stamped with the store time: a real wait
        assert fields(queue)["publisher"].startswith("celery@")
        assert 0 <= float(fields(queue)["latency"]) < 5
    result = check(redis_url, "-O", "global_keyprefix=app1:", "-q", "hb-b1", "-q", "hb-b2", "-w", "5")
    result.assert_ok("2 queues healthy")
    assert 0 <= result.perfdata["hb-b1_latency"].value < 5
    check(redis_url, "-q", "hb-b1").assert_critical(  # no prefix: says where
        "hb-b1: no heartbeat record here; one exists with -O global_keyprefix=app1:")


def test_worker_without_install_is_named_as_the_likely_cause(redis_url, redis_client, celery_worker):
    worker = celery_worker.start(redis_url, queues=["hb-n"], env={"CELERY_CHECKS_DISABLE": "1"})
    assert_published(trigger("-b", redis_url, "-q", "hb-n"), 1)
    wait_for(lambda: "unregistered task" in worker.log(), what="the worker to reject the heartbeat")
    assert redis_client.llen("hb-n") == 0  # consumed, yet never started
    wait_for(lambda: time.time() - float(record(redis_client, "hb-n")["published"]) > 1,
             what="the wait to pass -w")
    result = check(redis_url, "-q", "hb-n", "-w", "1", "-c", "60")
    result.assert_warning("hb-n: first heartbeat waiting", "none started yet",
                          "lacks install(app)")


def test_rabbitmq_worker_without_a_store_is_named_as_a_likely_cause(
        rabbitmq, redis_url, redis_client, celery_worker):
    """A RabbitMQ worker whose app calls install(app) but names no store
    (no checks_store_url): it consumes the heartbeat and cannot record it.
    The hint named only a missing consumer or install(app), both present."""
    queue = rabbitmq.queue_name("hb-nostore")
    worker = celery_worker.start(rabbitmq.url, queues=[queue], app="tests.heartbeat_app")
    assert_published(trigger("-b", rabbitmq.url, "--store", redis_url, "-q", queue), 1)
    wait_for(lambda: "no heartbeat store" in worker.log(), what="the worker to fail to record")
    assert rabbitmq.channel().queue_declare(queue, passive=True).method.message_count == 0
    wait_for(lambda: time.time() - float(record(redis_client, queue)["published"]) > 1,
             what="the wait to pass --latency-warning")
    check(redis_url, "-q", queue, "--latency-warning", "1").assert_warning(
        "%s: first heartbeat waiting" % queue, "none started yet",
        "lacks install(app) or checks_store_url?")


def test_rabbitmq_broker_with_redis_store(rabbitmq, redis_url, redis_client, celery_worker):
    queue = rabbitmq.queue_name("hb")
    celery_worker.start(rabbitmq.url, queues=[queue], app="tests.heartbeat_app", pool="prefork",
                        env={"TEST_HEARTBEAT_STORE": redis_url})
    assert_published(trigger("-b", rabbitmq.url, "--store", redis_url, "-q", queue), 1)
    started(redis_client, queue)
    result = check(redis_url, "-q", queue).assert_ok(queue + " healthy")
    assert 0 <= result.perfdata[queue + "_latency"].value < 5

    # Without a store, a RabbitMQ broker cannot stand in for one.
    run_check("check_celery_heartbeat", "-b", rabbitmq.url, "-q", queue).assert_unknown(
        "is not Redis", "--store")
    result = trigger("-b", rabbitmq.url, "-q", queue)
    assert result.rc == 2 and "usage:" in result.stderr and "--store" in result.stderr


# ------------------------------------------------------------ the check alone

def test_queue_never_seen_is_critical_with_a_hint(redis_url):
    result = check(redis_url, "-q", "never").assert_critical(
        "never: no heartbeat ever recorded", "install(app)")
    assert not result.perfdata
    check(redis_url, "-q", "never", "--missing-state", "warning").assert_warning("never")
    result = run_check("check_celery_heartbeat", "-b", redis_url)  # the broker is the store
    result.assert_critical("celery: no heartbeat ever recorded")


def test_store_down_is_critical_naming_the_redacted_url():
    result = run_check("check_celery_heartbeat", "--store", "redis://:secret@127.0.0.1:1/0")
    result.assert_critical("cannot reach heartbeat store redis://:***@127.0.0.1:1/0")
    assert "secret" not in result.stdout


@pytest.fixture
def silent_port():
    """A port that accepts connections and never says a word."""
    listener = Listener("silent")
    yield listener.port
    listener.close()


def test_silent_store_is_critical_within_timeout(silent_port):
    result = check("redis://127.0.0.1:%d/0" % silent_port, "-t", "2")
    result.assert_critical("heartbeat store redis://127.0.0.1:%d/0" % silent_port)
    assert result.elapsed < 4


def test_ages_use_the_store_clock_and_a_waiting_heartbeat_counts(redis_url, redis_client):
    """The store's own logic, on real Redis: pending_since survives repeated
    publishes until a start answers the newest one. The store writes
    through the checks' own client; redis-py (the kit's) reads behind it."""
    ours = redis_client_of(redis_url)
    first = store.record_publish(ours, ["q"], ["id1"], "test")
    assert abs(first - time.time()) < 5  # the store's TIME (same host here)
    second = store.record_publish(ours, ["q"], ["id2"], "test")
    fields = record(redis_client, "q")
    assert float(fields["pending_since"]) == first and float(fields["published"]) == second
    store.record_start(ours, "q", first, "id1", "w@h")  # the older one starts
    assert float(record(redis_client, "q")["pending_since"]) == second
    store.record_start(ours, "q", second, "id2", "w@h")
    fields = record(redis_client, "q")
    assert "pending_since" not in fields and float(fields["latency"]) >= 0
    # A publish time from a clock ahead of the store cannot make a negative wait.
    store.record_start(ours, "q", time.time() + 1000, "id3", "w@h")
    assert float(record(redis_client, "q")["latency"]) == 0
    result = check(redis_url, "-q", "q").assert_ok("q healthy")
    assert result.perfdata["q_latency"].value == 0
    # A publish the trigger could not make leaves the queue's last start
    # alone and names the reason once the age alerts.
    before = record(redis_client, "q")
    store.record_failure(ours, ["q"], "broker said no")
    fields = record(redis_client, "q")
    assert "pending_since" not in fields and fields["published"] == before["published"]
    time.sleep(0.2)
    check(redis_url, "-q", "q", "-w", "0.1").assert_warning("q trigger failing", "broker said no")
    # The trigger's own record, after its publish: a good one clears the
    # failure; one a worker already started is not waiting.
    at = store.now(ours)
    store.record_published(ours, ["q"], ["id5"], at, "test")
    fields = record(redis_client, "q")
    assert "failure" not in fields and float(fields["pending_since"]) == round(at, 6)
    store.record_start(ours, "q", at, "id5", "w@h")
    at = store.now(ours)
    store.record_start(ours, "q", at, "id6", "w@h")  # started before recorded
    store.record_published(ours, ["q"], ["id6"], at, "test")
    assert "pending_since" not in record(redis_client, "q")


# ------------------------------------------------------------ trigger failures

def test_trigger_broker_down_is_one_line_exit_1(redis_url, redis_client):
    result = trigger("-b", "redis://:secret@127.0.0.1:1/0", "--store", redis_url, "-q", "x")
    assert_one_line_failure(result, "cannot publish to broker redis://:***@127.0.0.1:1/0")
    # The recorded publish is withdrawn: the queue is not "stuck", the
    # trigger is failing, and the check says why.
    fields = record(redis_client, "x")
    assert "pending_since" not in fields and "secret" not in fields["failure"]
    result = check(redis_url, "-q", "x").assert_critical(
        "x: no heartbeat yet, trigger failing: cannot publish to broker redis://:***@127.0.0.1:1/0")
    assert "secret" not in result.stdout
    result = trigger("-b", "amqp://guest:secret@127.0.0.1:1//", "--store", redis_url)
    assert_one_line_failure(result, "cannot publish to broker amqp://guest:***@127.0.0.1:1//")


def test_trigger_store_down_is_one_line_exit_1(redis_url, redis_client):
    declare_on_redis(redis_client, "celery")
    result = trigger("-b", redis_url, "--store", "redis://:secret@127.0.0.1:1/0")
    assert_one_line_failure(result, "heartbeat store redis://:***@127.0.0.1:1/0")


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_trigger_silent_broker_gives_up_within_timeout(scheme, silent_port, redis_url):
    url = "%s://127.0.0.1:%d/0" % (scheme, silent_port)
    result = trigger("-b", url, "--store", redis_url, "-t", "2")
    assert_one_line_failure(result, "127.0.0.1:%d" % silent_port)
    assert result.elapsed < 4


def test_trigger_help_fits_80_columns():
    result = trigger("--help")
    assert result.rc == 3 and "Exit status:" in result.stdout
    assert not [line for line in result.stdout.splitlines() if len(line) > 80]


@pytest.mark.parametrize("args", [["--expires", "0"], ["-q", ""], ["-b", "ftp://x"], ["--nope"]])
def test_trigger_bad_arguments_exit_2_with_usage(args):
    result = trigger(*args)
    assert result.rc == 2, result.describe("exit code")
    assert result.stderr.startswith("usage: trigger_celery_heartbeat")
    assert "Traceback" not in result.stderr and result.stdout == ""


# ------------------------------------------------------------ pure logic

def test_beat_schedule_entries():
    import celery_checks

    entries = celery_checks.beat_schedule(["celery", "mail"], every=30, expires=120)
    assert sorted(entries) == ["celery_checks.heartbeat celery", "celery_checks.heartbeat mail"]
    entry = entries["celery_checks.heartbeat mail"]
    assert entry == {"task": "celery_checks.heartbeat", "schedule": 30,
                     "kwargs": {"queue": "mail"}, "options": {"queue": "mail", "expires": 120}}
    assert list(celery_checks.beat_schedule()) == ["celery_checks.heartbeat celery"]


def test_store_url_precedence(tmp_path):
    from celery_checks.connect import targets
    from celery_checks.plugin.policy import CheckError

    env = {"CELERY_CHECKS_STORE_URL": "redis://env/1"}
    path = tmp_path / "store"
    path.write_text("redis://file/2\n")
    assert targets.resolve_store_url("redis://opt/3", str(path), "redis://b/0", env) == "redis://opt/3"
    assert targets.resolve_store_url(None, str(path), "redis://b/0", env) == "redis://file/2"
    assert targets.resolve_store_url(None, None, "amqp://b//", env) == "redis://env/1"
    assert targets.resolve_store_url(None, None, "redis://b/0", {}) == "redis://b/0"
    with pytest.raises(CheckError, match="not Redis"):
        targets.resolve_store_url(None, None, "amqp://b//", {})
    with pytest.raises(CheckError, match="must be Redis"):
        targets.resolve_store_url("amqp://x//", None, "redis://b/0", {})


def test_django_settings_reach_the_worker_store_through_the_celery_namespace():
    from celery import Celery

    class Settings:
        CELERY_BROKER_URL = "amqp://mq//"
        CELERY_CHECKS_STORE_URL = "redis://cache:6380/3"

    app = Celery("django_like", set_as_current=False)
    app.config_from_object(Settings, namespace="CELERY")
    assert store.worker_store(app.conf, {})[0] == "redis://cache:6380/3"


def test_worker_store_from_app_conf():
    options = {"global_keyprefix": "p:"}
    conf = {"checks_store_url": "redis://s/1", "broker_url": "amqp://b//",
            "broker_transport_options": options}
    assert store.worker_store(conf, {}) == ("redis://s/1", options)
    assert store.worker_store({"broker_url": "amqp://b//"}, {"CELERY_CHECKS_STORE_URL": "redis://e/2"}) \
        == ("redis://e/2", {"global_keyprefix": None})
    assert store.worker_store({"broker_url": "redis://b/0;redis://c/0"}, {}) == ("redis://b/0", {})
    assert store.worker_store({"broker_url": "amqp://b//"}, {}) == (None, {})
    assert store.key_for("mail", options) == "p:celery_checks:heartbeat:mail"


def test_publish_through_an_installed_app_is_stamped_and_survives_a_store_outage(redis_url, redis_client):
    """What beat does, in this process: publish celery_checks.heartbeat
    through an app that called install(app); the before_task_publish handler
    records the publish and stamps the message; with the store down the
    heartbeat still goes out, unstamped."""
    import json

    from celery import Celery
    from celery.signals import before_task_publish

    import celery_checks
    from celery_checks.worker import publish

    for store_url in (redis_url, "redis://:secret@127.0.0.1:1/0"):
        app = Celery("publisher", broker=redis_url, set_as_current=False)
        app.conf.checks_store_url = store_url
        celery_checks.install(app)
        try:
            app.send_task(store.TASK_NAME, kwargs={"queue": "hb-p"}, queue="hb-p")
        finally:  # the handler is process-wide: leave none behind
            before_task_publish.disconnect(dispatch_uid=publish.HANDLER_UID)
    messages = [json.loads(raw) for raw in redis_client.lrange("hb-p", 0, -1)]
    stamped = [m["headers"].get(store.PUBLISHED_HEADER) for m in messages]
    assert len(messages) == 2 and stamped.count(None) == 1, stamped
    fields = record(redis_client, "hb-p")
    assert float(fields["published"]) == next(s for s in stamped if s is not None)
    assert fields["publisher"].startswith("celery@") and "pending_since" in fields


# --------------------------------------------------------------------------
# Issue 13, items 6-9 and 12: the check never says "healthy" for a heartbeat
# that did not go through, and the trigger never says "published" for a
# heartbeat that is lost; input as a user writes it (a broker URL from
# Celery's docs, a queue nobody declared, a missing -O global_keyprefix, a
# transport that cannot be imported).

def declare_on_rabbitmq(rabbitmq, queue):
    """What a worker does when it starts consuming: the queue exists, nobody
    consumes it (the test declares it, never the product)."""
    rabbitmq.channel().queue_declare(queue)


# ------------------------------------------------------- (6) failed publishes

def test_trigger_whose_transport_cannot_be_imported_is_reported_as_failing(
        tmp_path, rabbitmq, redis_url, redis_client):
    """A broken install (py-amqp shadowed on PYTHONPATH): the trigger fails
    after the store was reachable; the check must not call the queue healthy
    nor blame the workers."""
    queue = rabbitmq.queue_name("hb")
    declare_on_rabbitmq(rabbitmq, queue)
    (tmp_path / "amqp.py").write_text("raise ImportError('this amqp is a stray file')\n")
    result = trigger("-b", rabbitmq.url, "--store", redis_url, "-q", queue,
                     extra_env={"PYTHONPATH": str(tmp_path)})
    assert_one_line_failure(result, "ImportError", "this amqp is a stray file")
    fields = record(redis_client, queue)
    assert "pending_since" not in fields and "published" not in fields, fields
    result = check(redis_url, "-q", queue).assert_critical(
        "%s: no heartbeat yet, trigger failing: " % queue, "ImportError")
    assert "healthy" not in result.stdout and not result.perfdata
    assert rabbitmq.channel().queue_declare(queue, passive=True).method.message_count == 0


def test_trigger_alarm_while_connecting_leaves_no_waiting_heartbeat(redis_url, redis_client):
    """Our own -t alarm fires while the broker (a silent listener) holds the
    publish: SIGALRM is sent by the test once the broker has the connection,
    which is exactly what -t does, without depending on timing."""
    broker = Listener("silent")
    try:
        command = [executable("trigger_celery_heartbeat"), "-b",
                   "redis://127.0.0.1:%d/0" % broker.port, "--store", redis_url,
                   "-q", "hb-alarm", "-t", "60"]
        env = dict(os.environ)
        env.pop("CELERY_BROKER_URL", None)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)
        try:
            wait_for(lambda: broker.connections, what="the trigger to reach the broker")
            time.sleep(0.2)  # inside the broker's handshake now
            os.kill(proc.pid, signal.SIGALRM)  # only the process we started
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        broker.close()
    assert proc.returncode == 1, (stdout, stderr)
    assert stdout == "" and stderr == "trigger_celery_heartbeat: gave up after 60s (-t)\n", stderr
    fields = record(redis_client, "hb-alarm")
    assert "pending_since" not in fields and "published" not in fields, fields
    check(redis_url, "-q", "hb-alarm").assert_critical(
        "hb-alarm: no heartbeat yet, trigger failing: gave up after 60s (-t)")


def test_broker_down_after_healthy_heartbeats_reads_trigger_failing(
        redis_url, redis_client, celery_worker):
    """A healthy queue, then the trigger cannot reach the broker: the
    queue's last start stays, nothing waits, and the check names the failing
    trigger once the age alerts (not "stuck", not "healthy")."""
    celery_worker.start(redis_url, queues=["hb-f"]).name
    assert_published(trigger("-b", redis_url, "-q", "hb-f"), 1)
    wait_for(lambda: "started" in record(redis_client, "hb-f"), what="the heartbeat to start")
    before = record(redis_client, "hb-f")
    result = trigger("-b", "redis://127.0.0.1:1/0", "--store", redis_url, "-q", "hb-f")
    assert_one_line_failure(result, "cannot publish to broker redis://127.0.0.1:1/0")
    fields = record(redis_client, "hb-f")
    assert "pending_since" not in fields
    assert {k: fields[k] for k in ("published", "published_id", "started")} == \
        {k: before[k] for k in ("published", "published_id", "started")}
    result = check(redis_url, "-q", "hb-f", "-v")
    result.assert_ok("hb-f: heartbeat", "trigger failing")
    assert "healthy" not in result.first_line
    wait_for(lambda: time.time() - float(fields["started"]) > 1.2, what="the age to pass -w")
    check(redis_url, "-q", "hb-f", "-w", "1").assert_warning(
        "hb-f trigger failing", "cannot publish to broker redis://127.0.0.1:1/0", "(age > 1s)")


# ------------------------------------------- (7) a heartbeat that never ran

def test_unconsumed_queue_is_never_called_healthy_and_has_latency_defaults(
        rabbitmq, redis_url):
    """Celery's canonical RabbitMQ URL, a declared queue no worker consumes:
    the heartbeat waits; the check says so, and the default latency
    thresholds (60 / 300 s) are in force without options."""
    queue = rabbitmq.queue_name("archive")
    declare_on_rabbitmq(rabbitmq, queue)
    assert_published(trigger("-b", rabbitmq.url, "--store", redis_url, "-q", queue), 1)
    time.sleep(0.3)
    result = check(redis_url, "-q", queue, "-v").assert_ok(
        "%s: first heartbeat waiting " % queue, "none started yet")
    assert "healthy" not in result.stdout
    latency = result.perfdata[queue + "_latency"]
    assert (latency.warn, latency.crit, latency.min) == ("60", "300", "0")
    assert latency.value >= 0.3
    assert any("none started yet, one waiting" in line for line in result.long_output)
    # the same wait judged against a small limit: a WARNING that says what it is
    check(redis_url, "-q", queue, "--latency-warning", "0.2").assert_warning(
        "%s: first heartbeat waiting" % queue, "none started yet", "(latency > 0.2s)")
    # --help documents the defaults
    help_text = run_check("check_celery_heartbeat", "--help").stdout
    assert "(default: 60," in help_text and "(default: 300," in help_text


def test_two_queues_one_waiting_is_not_all_healthy(rabbitmq, redis_url, redis_client, celery_worker):
    worked, idle = rabbitmq.queue_name("w"), rabbitmq.queue_name("idle")
    declare_on_rabbitmq(rabbitmq, idle)
    celery_worker.start(rabbitmq.url, queues=[worked], app="tests.heartbeat_app",
                        env={"TEST_HEARTBEAT_STORE": redis_url})
    assert_published(trigger("-b", rabbitmq.url, "--store", redis_url, "-q", worked, "-q", idle), 2)
    wait_for(lambda: "started" in record(redis_client, worked), what="the heartbeat to start")
    result = check(redis_url, "-q", worked, "-q", idle).assert_ok(
        "2 queues OK, %s: first heartbeat waiting" % idle)
    assert "healthy" not in result.first_line


# --------------------------------------- (8) a stuck queue is not a cron problem

def test_stuck_queue_with_regular_publishing_is_stuck_not_trigger_stale(
        redis_url, redis_client, celery_worker):
    """Publishing goes on at a regular interval shorter than -w (cron every
    minute with -w 300, here every ~2 s with -w 4), the worker is gone: once
    the age passes -w while the waiting heartbeat's wait has not, the queue
    is stuck; nothing says "trigger stale"."""
    worker = celery_worker.start(redis_url, queues=["hb-s"])
    assert_published(trigger("-b", redis_url, "-q", "hb-s"), 1)
    wait_for(lambda: "started" in record(redis_client, "hb-s"), what="the heartbeat to start")
    worker.stop()
    started_at = float(record(redis_client, "hb-s")["started"])

    def store_age():
        return float(redis_client.time()[0]) + redis_client.time()[1] / 1e6 - started_at

    wait_for(lambda: store_age() > 2, what="an interval")
    assert_published(trigger("-b", redis_url, "-q", "hb-s"), 1)  # the next cron run
    wait_for(lambda: store_age() > 4.2, what="the age to pass -w")
    result = check(redis_url, "-q", "hb-s", "-w", "4", "-c", "60", "-v")
    result.assert_warning("hb-s stuck: heartbeat waiting", "last started", "(age > 4s)")
    assert "trigger stale" not in result.stdout
    assert result.perfdata["hb-s_age"].value > 4


# ------------------------------------- (9) a heartbeat no worker would receive

def test_trigger_fails_for_a_redis_queue_no_worker_declared(redis_url, redis_client):
    result = trigger("-b", redis_url, "-q", "archive")
    assert_one_line_failure(
        result, "queue archive not declared on broker %s: no worker consumes it" % redis_url)
    assert not redis_client.exists("archive")  # no message left behind
    assert not redis_client.keys("_kombu.binding.*")  # nothing declared
    check(redis_url, "-q", "archive").assert_critical(
        "archive: no heartbeat yet, trigger failing: queue archive not declared")


def test_trigger_fails_for_a_rabbitmq_queue_that_does_not_exist(rabbitmq, redis_url):
    queue = rabbitmq.queue_name("typo")
    result = trigger("-b", rabbitmq.url, "--store", redis_url, "-q", queue)
    assert_one_line_failure(result, "queue %s not declared on broker amqp://" % queue,
                            rabbitmq.vhost,
                            "no worker consumes it")
    channel = rabbitmq.channel()
    import pika.exceptions

    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        channel.queue_declare(queue, passive=True)  # still not declared
    check(redis_url, "-q", queue).assert_critical("trigger failing: queue %s not declared" % queue)


def test_global_keyprefix_decides_where_the_queue_is_declared_and_recorded(
        redis_url, redis_client, celery_worker):
    """The workers' app sets global_keyprefix=app1:; forgetting -O is a
    misconfiguration that the trigger refuses and the check explains."""
    celery_worker.start(redis_url, queues=["hb-k"], app="tests.heartbeat_app",
                        env={"TEST_HEARTBEAT_KEYPREFIX": "app1:"})
    assert_one_line_failure(trigger("-b", redis_url, "-q", "hb-k"),
                            "queue hb-k not declared on broker")
    assert_published(trigger("-b", redis_url, "-O", "global_keyprefix=app1:", "-q", "hb-k"), 1)
    options = {"global_keyprefix": "app1:"}
    wait_for(lambda: redis_client.hexists(store.key_for("hb-k", options), "started"),
             what="the heartbeat to start")
    check(redis_url, "-O", "global_keyprefix=app1:", "-q", "hb-k").assert_ok("hb-k healthy")
    check(redis_url, "-q", "hb-k").assert_critical(
        "hb-k: no heartbeat record here; one exists with -O global_keyprefix=app1:")
    # the failed run without -O left its failure there: both are named
    check(redis_url, "-O", "global_keyprefix=app2:", "-q", "hb-k").assert_critical(
        "hb-k: no heartbeat record here; one exists with no global_keyprefix, "
        "-O global_keyprefix=app1:")


def test_wrong_db_number_names_the_db_holding_the_record(own_redis):
    """The trigger records in DB 1 (its broker's), the check is pointed at
    DB 2 or at a URL without a DB (0): not "trigger not scheduled? lacks
    install(app)?", which sends the operator to cron and to the workers,
    but where the record is. A server of the test's own: no other test's
    records in its other DBs."""
    server = own_redis().start()
    client = server.client(1)
    try:
        declare_on_redis(client, "mail")
        assert_published(trigger("-b", server.url(1), "-q", "mail"), 1)
        check(server.url(1), "-q", "mail").assert_ok("mail: first heartbeat waiting")
        for url in (server.url(2), "redis://127.0.0.1:%d" % server.port):
            result = check(url, "-q", "mail", "-v").assert_critical()
            assert result.first_line == ("CELERY_HEARTBEAT CRITICAL - mail: no heartbeat "
                                         "record here; one exists in DB 1"), result.describe(url)
            assert "mail: never seen, a record exists in DB 1" in result.long_output
            assert not result.perfdata
        # the wrong DB and a prefix the record was not written under
        check(server.url(2), "-q", "mail", "-O", "global_keyprefix=app1:").assert_critical(
            "mail: no heartbeat record here; one exists in DB 1 with no global_keyprefix")
    finally:
        client.close()


# --------------------------------------------------- (12) -h and -V of the trigger

@pytest.mark.parametrize("option", ["-h", "--help"])
def test_trigger_help_exits_3_like_the_checks(option):
    result = trigger(option)
    assert result.rc == 3, result.describe("exit code")
    assert result.stdout.startswith("usage: trigger_celery_heartbeat") and result.stderr == ""
    assert "-h, --help                  show this help and exit 3" in result.stdout
    assert "3  -h or -V: nothing published" in result.stdout
    assert "2  bad arguments" in result.stdout


@pytest.mark.parametrize("option", ["-V", "--version"])
def test_trigger_version_exits_3_like_the_checks(option):
    result = trigger(option)
    assert result.rc == 3, result.describe("exit code")
    assert result.stdout.startswith("trigger_celery_heartbeat (celery-checks) ")
    assert result.stderr == ""
