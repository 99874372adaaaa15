"""Issue 13, items 6-9 and 12 for the heartbeat: the check never says
"healthy" for a heartbeat that did not go through, and the trigger never
says "published" for a heartbeat that is lost.

Each test runs the installed executables as processes, with input as a user
writes it (a broker URL from Celery's docs, a queue nobody declared, a
missing -O global_keyprefix, a transport that cannot be imported), against
real Redis, RabbitMQ and celery workers.
"""

import os
import signal
import subprocess
import time

import pytest

from celery_checks import heartbeat_store as store
from tests.faultkit import Listener
from tests.plugin import executable, run_check
from tests.test_heartbeat import assert_one_line_failure, assert_published, check, record, trigger, wait_for


def declare(rabbitmq, queue):
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
    declare(rabbitmq, queue)
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
            wait_for(lambda: broker.accepted, what="the trigger to reach the broker")
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
    declare(rabbitmq, queue)
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
    declare(rabbitmq, idle)
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
