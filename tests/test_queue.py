"""check_celery_queue, run as a process against real Redis and RabbitMQ.

Messages are published the way Celery does (app.send_task with queue= and
priority=) from a Celery app in this process; nothing consumes them unless a
test starts a real worker.
"""

import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

from tests.kit import prerequisites
from tests.kit import rabbitmq as rabbitmq_kit
from tests.kit.faults import Listener, closed_port
from tests.kit.plugin import assert_within_timeout, run_check, run_importing
from tests.kit.producers import publish
from tests.kit.project import ROOT
from tests.kit.redis_servers import RedisServer, self_signed
from tests.kit.waiting import wait_for

NAME = "check_celery_queue"
NO_CHECKS = {"CELERY_CHECKS_DISABLE": "1"}  # workers without the worker-side parts


def check(*args, **kw):
    return run_check(NAME, *args, **kw)


def declare(app, *names):
    """Declare queues the way a producer or worker does (kombu's queue
    declare and bind), without publishing anything."""
    from kombu import Exchange, Queue

    with app.connection_for_write() as connection:
        for name in names:
            # What Celery makes of a queue name: an exchange and routing key alike.
            Queue(name, Exchange(name), routing_key=name)(connection.default_channel).declare()


def qname(suffix="q"):
    return "cq-%s-%s" % (uuid.uuid4().hex[:6], suffix)


# ---------------------------------------------------------------- Redis counts

def test_plain_queue_count_and_perfdata(redis_url, celery_apps):
    publish(celery_apps(redis_url), "celery", 5)
    result = check("-b", redis_url).assert_ok("queue celery has 5 waiting messages")
    perf = result.perfdata["celery"]
    assert (perf.value, perf.min, perf.warn, perf.crit, perf.uom) == (5, "0", "", "", "")
    assert result.perfdata["unacked"].value == 0
    assert sorted(result.perfdata) == ["celery", "unacked"]
    assert result.long_output == []


def test_priorities_0_to_9_count_every_bucket(redis_url, redis_client, celery_apps):
    queue = qname()
    app = celery_apps(redis_url)
    for priority in range(10):
        publish(app, queue, 2, priority=priority)
    # kombu's default steps [0, 3, 6, 9]: 0-2 in QUEUE, 3-5 in QUEUE\x06\x163, ...
    buckets = {key: redis_client.llen(key) for key in
               (queue, queue + "\x06\x163", queue + "\x06\x166", queue + "\x06\x169")}
    assert list(buckets.values()) == [6, 6, 6, 2]  # what `redis-cli llen` misses
    result = check("-b", redis_url, "-q", queue, "-v").assert_ok(
        "queue %s has 20 waiting messages" % queue)
    assert result.perfdata[queue].value == 20
    assert "%s: 20 waiting (priority 0-2: 6, 3-5: 6, 6-8: 6, 9: 2)" % queue in result.long_output


def test_priority_steps_and_sep_transport_options(redis_url, redis_client, celery_apps):
    queue = qname()
    options = {"priority_steps": list(range(10)), "sep": ":"}
    app = celery_apps(redis_url, **options)
    for priority in range(10):
        publish(app, queue, 1, priority=priority)
    assert redis_client.llen(queue + ":7") == 1
    result = check("-b", redis_url, "-q", queue, "-O", "priority_steps=[0,1,2,3,4,5,6,7,8,9]",
                   "-O", "sep=:").assert_ok("has 10 waiting messages")
    assert result.perfdata[queue].value == 10
    # Without -O sep=: the priority sub-lists would be missed (1 of 10):
    # the queue's binding, written with ":", says so.
    check("-b", redis_url, "-q", queue, "-O", "priority_steps=[0,1,2,3,4,5,6,7,8,9]"
          ).assert_unknown("the bindings of queue %s use the separator ':', not "
                           "'\\x06\\x16': give -O sep=:" % queue)


def test_global_keyprefix(redis_url, celery_apps):
    queue = qname()
    publish(celery_apps(redis_url, global_keyprefix="app1:"), queue, 3, priority=5)
    publish(celery_apps(redis_url), queue, 2)
    result = check("-b", redis_url, "-q", queue, "-O", "global_keyprefix=app1:", "-vv")
    assert result.assert_ok().perfdata[queue].value == 3
    assert any("key prefix 'app1:'" in line for line in result.long_output)
    assert check("-b", redis_url, "-q", queue).perfdata[queue].value == 2


def test_several_queues_in_one_status_line(redis_url, celery_apps):
    app = celery_apps(redis_url)
    first, second, empty = qname("a"), qname("b"), qname("c")
    declare(app, empty)
    publish(app, first, 3)
    publish(app, second, 7, priority=9)
    result = check("-b", redis_url, "-q", first, "-q", second, "-q", empty, "-v")
    result.assert_ok("3 queues, 10 messages waiting, most in %s (7)" % second)
    assert {k: p.value for k, p in result.perfdata.items()} == {
        first: 3, second: 7, empty: 0, "unacked": 0}
    assert "%s: 0 waiting" % empty in result.long_output
    check("-b", redis_url, "-q", empty, "-q", empty).assert_ok("has 0 waiting messages")


def test_non_default_database(redis_server, redis_db, celery_apps):
    assert redis_db != 0
    url = redis_server.url(redis_db)
    publish(celery_apps(url), "celery", 4)
    assert check("-b", url).perfdata["celery"].value == 4
    # "//N": kombu reads the path's "/N" as the virtual host, i.e. DB N
    by_vhost = "redis://127.0.0.1:%d//%d" % (redis_server.port, redis_db)
    assert check("-b", by_vhost).perfdata["celery"].value == 4


@pytest.mark.parametrize("warning,critical,state,fragment", [
    ("9", "20", "WARNING", "(> 9)"),
    ("10", "20", "OK", "has 10 waiting messages"),
    ("5", "9", "CRITICAL", "(> 9)"),
    ("5", "10", "WARNING", "(> 5)"),
])
def test_thresholds_on_each_side_of_the_boundary(redis_url, celery_apps, warning, critical,
                                                 state, fragment):
    queue = qname()
    publish(celery_apps(redis_url), queue, 10)
    result = check("-b", redis_url, "-q", queue, "-w", warning, "-c", critical)
    result.assert_state(state, "queue %s has 10 waiting messages" % queue, fragment)
    perf = result.perfdata[queue]
    assert (perf.warn, perf.crit) == (warning, critical)


def test_status_line_names_the_worst_queue(redis_url, celery_apps):
    app = celery_apps(redis_url)
    small, big, medium = qname("s"), qname("b"), qname("m")
    publish(app, small, 20)
    publish(app, big, 60)
    publish(app, medium, 50)
    result = check("-b", redis_url, "-q", small, "-q", medium, "-q", big, "-w", "10", "-c", "40")
    assert result.first_line == ("CELERY_QUEUE CRITICAL - queue %s has 60 waiting messages "
                                 "(> 40) (+2 more)" % big)


def test_all_queues_leaves_out_celery_internals(redis_url, redis_client, celery_apps, celery_worker):
    app = celery_apps(redis_url)
    first, second, consumed = qname("a"), qname("b"), qname("w")
    publish(app, first, 2)
    publish(app, second, 1, priority=9)
    celery_worker.start(redis_url, queues=(consumed,), env=NO_CHECKS)
    assert redis_client.exists("_kombu.binding.celery.pidbox")  # the worker's mailbox
    # What a client waiting for replies and an event consumer leave (both
    # are transient, so written here the way kombu writes them).
    redis_client.sadd("_kombu.binding.reply.celery.pidbox",
                      "%s\x06\x16\x06\x16%s" % ((uuid.uuid4().hex,) * 2))
    redis_client.sadd("_kombu.binding.celeryev", "worker.#\x06\x16\x06\x16celeryev.x")
    result = check("-b", redis_url, "--all-queues", "-v").assert_ok(
        "3 queues, 3 messages waiting, most in %s (2)" % first)
    assert sorted(result.perfdata) == sorted([first, second, consumed, "unacked"])


def test_all_queues_with_prefix_and_none_found(redis_url, celery_apps):
    queue = qname()
    publish(celery_apps(redis_url, global_keyprefix="p[1]*:"), queue, 2)
    publish(celery_apps(redis_url), qname("other"), 1)
    result = check("-b", redis_url, "--all-queues", "-O", "global_keyprefix=p[1]*:").assert_ok()
    assert sorted(result.perfdata) == [queue, "unacked"] and result.perfdata[queue].value == 2
    # Nothing under the prefix given, but bindings elsewhere: never OK.
    check("-b", redis_url, "--all-queues", "-O", "global_keyprefix=nothing:").assert_critical(
        "no queues declared under key prefix 'nothing:' in DB %s; found under prefix "
        % redis_url.rsplit("/", 1)[1])


def test_unacked_reserved_by_a_real_worker(redis_url, celery_apps, celery_worker):
    queue = qname()
    publish(celery_apps(redis_url), queue, 3, task="tests.sleep", args=(30,))
    worker = celery_worker.start(redis_url, queues=(queue,), env=NO_CHECKS)
    try:
        result = wait_for(lambda: _reserved(redis_url, queue), 20, "the worker to reserve")
        assert result, "the worker never reserved a message"
        assert result.perfdata[queue].value == 2  # solo pool, prefetch 1
        assert result.perfdata["unacked_" + queue].value == 1
        assert result.perfdata["unacked"].value == 1
        assert "%s: 2 waiting, 1 unacked" % queue in result.long_output
    finally:
        worker.kill()  # do not wait 30 s for the task


def _reserved(url, queue):
    result = check("-b", url, "-q", queue, "--unacked-per-queue", "-v").assert_ok()
    return result if result.perfdata["unacked"].value else None


def test_labels_sanitised_only_where_perfdata_forbids(redis_url, redis_client, celery_apps):
    redis_client.lpush("my queue=x|y", "m1", "m2")
    declare(celery_apps(redis_url), "a'b")
    result = check("-b", redis_url, "-q", "my queue=x|y", "-q", "a'b", "-w", "1")
    result.assert_warning("queue my queue=x/y has 2 waiting messages (> 1)")
    assert result.perfdata["my queue_x_y"].value == 2 and result.perfdata["a_b"].value == 0


def test_a_thousand_mistyped_queues_are_critical_within_t(redis_url, redis_client):
    """A typo in the common part of 1,000 names, beside the 1,000 declared:
    every one is named not declared within -t, the first few with the name
    meant (each guess against 1,000 names costs ~20 ms: all of them would
    outlast -t), and long names alike at the start keep apart in 19
    characters without a search that grows with the square of their number."""
    names = ["orders.priority.queue.%04d" % i for i in range(1000)]
    with redis_client.pipeline() as pipe:
        for name in names:  # what a worker declaring them adds
            pipe.sadd("_kombu.binding." + name, "%s\x06\x16\x06\x16%s" % (name, name))
        pipe.execute()
    typos = [name.replace("queue", "qeue") for name in names]
    result = check("-b", redis_url, "-t", "10", "-v", *[a for t in typos for a in ("-q", t)])
    db = int(redis_url.rsplit("/", 1)[1])
    result.assert_critical("queue orders.priority.qeue.0000 not declared under key prefix '' "
                           "in DB %d; did you mean orders.priority.queue.0000? (+999 more)" % db)
    assert_within_timeout(result, 10)
    problems = [line for line in result.long_output if line.startswith("CRITICAL: queue ")]
    assert len(problems) == 1000 and sum("did you mean" in line for line in problems) == 5
    result = check("-b", redis_url, "-t", "10", *[a for n in names for a in ("-q", n)]).assert_ok()
    labels = list(result.perfdata)
    assert len(labels) == 1001 and len({label[:19] for label in labels}) == 1001
    assert_within_timeout(result, 10)


# ------------------------------------------------------------ never changes it

def test_redis_order_keys_and_count_unchanged_after_many_runs(redis_url, redis_client, celery_apps):
    queue = qname()
    app = celery_apps(redis_url)
    for priority in (0, 4, 9, 1, 7, 3):
        publish(app, queue, 2, priority=priority)

    def snapshot():
        keys = sorted(redis_client.keys("*"))
        return {k: (redis_client.type(k), redis_client.pttl(k),
                    redis_client.lrange(k, 0, -1) if redis_client.type(k) == b"list" else None)
                for k in keys}

    before = snapshot()
    for _ in range(20):
        assert check("-b", redis_url, "-q", queue, "--unacked-per-queue").perfdata[queue].value == 12
    assert snapshot() == before


def test_rabbitmq_count_and_order_unchanged_after_many_runs(rabbitmq, celery_apps):
    queue = rabbitmq.queue_name()
    ids = publish(celery_apps(rabbitmq.url), queue, 5)
    for _ in range(20):
        assert check("-b", rabbitmq.url, "-q", queue).perfdata[queue].value == 5
    channel = rabbitmq.channel()
    assert channel.queue_declare(queue, passive=True).method.message_count == 5
    # The test owns the queue: drain it to see order and that no message was
    # ever delivered before (redelivered would be set).
    seen = []
    for _ in range(5):
        method, properties, _body = channel.basic_get(queue, auto_ack=True)
        assert not method.redelivered
        seen.append(properties.headers["id"])
    assert seen == ids


# ------------------------------------------------------------------- RabbitMQ

def test_rabbitmq_waiting_and_no_consumers(rabbitmq, celery_apps):
    queue = rabbitmq.queue_name()
    publish(celery_apps(rabbitmq.url), queue, 4, priority=3)
    # Messages wait and nobody consumes them: an orphan (--orphan-state).
    result = check("-b", rabbitmq.url, "-q", queue).assert_critical(
        "queue %s: 4 waiting, no consumer" % queue)
    assert result.perfdata[queue].value == 4
    assert result.perfdata["consumers_" + queue].value == 0
    assert "unacked" not in result.perfdata
    check("-b", rabbitmq.url, "-q", queue, "--orphan-state", "ok").assert_ok(
        "queue %s has 4 waiting messages, 0 consumers" % queue)
    result = check("-b", rabbitmq.url, "-q", queue, "--consumers-critical", "1:", "-v")
    assert "CRITICAL: queue %s has 0 consumers (< 1)" % queue in result.long_output
    assert result.perfdata["consumers_" + queue].crit == "1:"
    check("-b", rabbitmq.url, "-q", queue, "-w", "3", "--orphan-state", "ok").assert_warning(
        "has 4 waiting messages (> 3)")


def test_rabbitmq_with_a_real_worker_consuming(rabbitmq, celery_apps, celery_worker):
    queue = rabbitmq.queue_name()
    publish(celery_apps(rabbitmq.url), queue, 3)
    celery_worker.start(rabbitmq.url, queues=(queue,), env=NO_CHECKS)

    def drained():
        result = check("-b", rabbitmq.url, "-q", queue, "--consumers-critical", "1:")
        return result if result.perfdata[queue].value == 0 else None

    result = wait_for(drained, 20, "the worker to drain the queue")
    assert result, "the worker did not drain %s" % queue
    result.assert_ok("queue %s has 0 waiting messages, 1 consumer" % queue)
    assert result.perfdata["consumers_" + queue].value == 1


def test_rabbitmq_missing_queue_is_critical_and_not_declared(rabbitmq, celery_apps):
    import pika.exceptions

    missing, present = rabbitmq.queue_name("missing"), rabbitmq.queue_name()
    publish(celery_apps(rabbitmq.url), present, 2)
    result = check("-b", rabbitmq.url, "-q", missing, "-q", present, "-v")
    result.assert_critical("queue %s not found on vhost %s" % (missing, rabbitmq.vhost))
    assert result.perfdata[present].value == 2  # a fresh channel after the 404
    assert missing not in result.perfdata
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        rabbitmq.channel().queue_declare(missing, passive=True)
    assert info.value.reply_code == 404


# ------------------------------------------------------------------- failures

@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never answers."""
    listener = Listener("silent")
    yield listener.port
    listener.close()


@pytest.mark.parametrize("template,reason", [
    ("redis://:s3cret-pw@127.0.0.1:{refused}/0", "Connection refused"),
    ("amqp://guest:s3cret-pw@127.0.0.1:{refused}//", "Connection refused"),
    ("redis://:s3cret-pw@127.0.0.1:{silent}/0", "did not answer in time"),
    ("amqp://guest:s3cret-pw@127.0.0.1:{silent}//", "no AMQP handshake in time"),
    ("rediss://:s3cret-pw@{redis}/0", "did not answer in time"),
    ("amqps://guest:s3cret-pw@{amqp}//", "SSL"),
    ("amqp://guest:s3cret-pw@{amqp}//", "refused authentication"),
    ("redis://nobody-here:s3cret-pw@{redis}/0", "refused"),
])
def test_broker_failures_are_critical_within_timeout(redis_server, silent_port, template, reason):
    url = template.format(refused=closed_port(), silent=silent_port, redis="127.0.0.1:%d" % redis_server.port,
                          amqp="%s:%d" % (rabbitmq_kit.HOST, rabbitmq_kit.PORT))
    result = check("-b", url, "-t", "2", "-vv")
    shown = url.replace("s3cret-pw", "***")
    result.assert_critical(shown, reason)
    assert_within_timeout(result, 2)
    assert "s3cret-pw" not in result.stdout + result.stderr


@pytest.mark.parametrize("args,fragment", [
    (["-O", "priority_steps=abc"], "priority_steps"),
    (["-O", "priority_steps=[0,-3]"], "priority_steps"),
    (["-q", ""], "empty"),
    (["--all-queues", "-q", "celery"], "not both"),
    (["--consumers-critical", "1:", "--reply-timeout", "0"], "must be a number greater than 0"),
    (["-b", "amqp://guest:guest@127.0.0.1//", "--all-queues"],
     "--all-queues needs RabbitMQ's management API"),
    (["-b", "amqp://guest:guest@127.0.0.1//", "--unacked-per-queue"], "management API"),
    (["-b", "amqp://guest:guest@127.0.0.1//", "-q", "x" * 256], "255 bytes"),
    (["-b", "redis://127.0.0.1:1/abc"], "database number"),
])
def test_bad_input_is_unknown_on_one_line(args, fragment):
    result = check(*args).assert_unknown(fragment)
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("kind,only", [("redis", "hiredis"), ("amqp", "pika")])
def test_imports_only_its_client_library(request, kind, only):
    url = request.getfixturevalue("redis_url") if kind == "redis" else request.getfixturevalue("rabbitmq").url
    result, packages = run_importing("check_celery_queue", "-b", url,
                                     "-q", "cq-imports-%s" % uuid.uuid4().hex[:6])
    assert result.first_line.startswith("CELERY_QUEUE "), result.stdout + result.stderr
    heavy = packages & {"celery", "kombu", "redis", "hiredis", "pika", "amqp", "billiard"}
    assert heavy == {only}, result.stdout


# ------------------------------------------- Redis servers of our own (TLS, ...)

def test_unix_socket_password_and_acl_user(own_redis, celery_apps):
    server = own_redis("requirepass sekrit-pw", "user alice on >alice-pw ~* &* +@all",
                       unix_socket=True).start()
    url = "redis+socket://:sekrit-pw@%s?virtual_host=2" % server.socket
    publish(celery_apps(url), "celery", 3)
    result = check("-b", url).assert_ok("has 3 waiting messages")
    assert result.perfdata["celery"].value == 3
    other = "redis+socket://:sekrit-pw@%s?virtual_host=5" % server.socket
    check("-b", other).assert_critical(
        "queue celery not declared under key prefix '' in DB 5; found in DB 2")
    acl = "redis://alice:alice-pw@127.0.0.1:%d/2" % server.port
    result = check("-b", acl, "-vv").assert_ok()
    assert result.perfdata["celery"].value == 3
    assert "broker: redis://alice:***@127.0.0.1:%d/2" % server.port in result.long_output
    assert "alice-pw" not in result.stdout
    result = check("-b", "redis://alice:wrong-pw@127.0.0.1:%d/2" % server.port)
    result.assert_critical("redis://alice:***@127.0.0.1:%d/2" % server.port, "refused")
    assert "wrong-pw" not in result.stdout
    check("-b", "redis+socket://%s" % server.socket).assert_critical("refused")


def test_tls_rediss(own_redis, tmp_path, celery_apps):
    prerequisites.require("openssl")
    cert, key = self_signed(tmp_path)
    tls_port = closed_port()
    server = own_redis("tls-port %d" % tls_port, "tls-cert-file %s" % cert,
                       "tls-key-file %s" % key, "tls-ca-cert-file %s" % cert,
                       "tls-auth-clients no").start(wait_port=tls_port)
    plain = "redis://127.0.0.1:%d/0" % server.port
    publish(celery_apps(plain), "celery", 2)
    verified = "rediss://127.0.0.1:%d/0?ssl_cert_reqs=required&ssl_ca_certs=%s" % (tls_port, cert)
    assert check("-b", verified).assert_ok().perfdata["celery"].value == 2
    unverified = "rediss://127.0.0.1:%d/0?ssl_cert_reqs=CERT_NONE" % tls_port
    assert check("-b", unverified).assert_ok().perfdata["celery"].value == 2
    # Verification on, but nothing vouches for the self-signed certificate.
    check("-b", "rediss://127.0.0.1:%d/0?ssl_cert_reqs=required" % tls_port,
          "-t", "3").assert_critical("rediss://127.0.0.1:%d/0" % tls_port)


def test_sentinel_master_name(own_redis, tmp_path, celery_apps):
    master = own_redis().start()
    sentinel_dir = tmp_path / "sentinel"
    sentinel_dir.mkdir()
    sentinel = RedisServer(sentinel_dir, "sentinel monitor themaster 127.0.0.1 %d 1" % master.port,
                           sentinel=True)
    sentinel_port = sentinel.port
    sentinel.start()
    try:
        url = "sentinel://127.0.0.1:%d/3" % sentinel_port
        wait_for(lambda: _sentinel_knows(sentinel_port), 10, "the sentinel to know the master",
                 interval=0.1)
        publish(celery_apps(url, master_name="themaster"), "celery", 4, priority=6)
        result = check("-b", url, "-O", "master_name=themaster").assert_ok("has 4 waiting messages")
        assert result.perfdata["celery"].value == 4
        # Another DB through the same sentinel: the hint's own connection
        # to DB 3 goes to the master the sentinel names.
        check("-b", url[:-1] + "4", "-O", "master_name=themaster").assert_critical(
            "queue celery not declared under key prefix '' in DB 4; found in DB 3")
        check("-b", url, "-O", "master_name=nosuch", "-t", "3").assert_critical(
            "sentinel://127.0.0.1:%d/3" % sentinel_port)
        check("-b", url).assert_unknown("master_name")
        down = "sentinel://127.0.0.1:%d/3" % closed_port()
        result = check("-b", down, "-O", "master_name=themaster", "-t", "2")
        result.assert_critical(down, "no sentinel answered")
        assert_within_timeout(result, 2)
    finally:
        sentinel.stop()


def _sentinel_knows(port):
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5) as sock:
            sock.sendall(b"SENTINEL get-master-addr-by-name themaster\r\n")
            return b"127.0.0.1" in sock.recv(200)
    except OSError:
        return False


def test_runs_from_the_thin_executable(redis_url, tmp_path, celery_apps):
    declare(celery_apps(redis_url), "celery")
    target = tmp_path / NAME
    shutil.copy(ROOT / "checks" / NAME, target)
    os.chmod(target, 0o755)
    proc = subprocess.run([sys.executable, str(target), "-b", redis_url],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("CELERY_QUEUE OK - queue celery has 0 waiting messages")


# ------------------------------------------- misconfiguration never reads OK
#
# A Redis server of our own for these, so that Celery's literal default
# queue `celery` can be used in every DB and the "found in DB n" hints see
# nobody else's bindings.

@pytest.fixture
def own_server(own_redis):
    return own_redis().start()


PFX = {"CELERY_BROKER_TRANSPORT_OPTIONS": '{"global_keyprefix": "pfx:"}'}


def test_prefixed_app_checked_without_the_prefix_is_critical(own_server, celery_apps):
    url = own_server.url(0)
    publish(celery_apps(url, global_keyprefix="pfx:"), "celery", 120)
    result = check("-b", url)
    assert result.first_line == (
        "CELERY_QUEUE CRITICAL - queue celery not declared under key prefix '' in DB 0; "
        "found under prefix 'pfx:' (-O global_keyprefix=pfx:)")
    assert result.rc == 2 and "celery" not in result.perfdata
    result = check("-b", url, "-O", "global_keyprefix=pfx:").assert_ok(
        "queue celery has 120 waiting messages")
    assert result.perfdata["celery"].value == 120


def test_worker_with_prefix_declared_queue_but_check_without(own_server, celery_worker):
    """A real worker with global_keyprefix declares its (empty) queue: with
    the prefix it is 0 waiting, OK; without it the check says where it is."""
    url = own_server.url(2)
    celery_worker.start(url, queues=("celery", "mail"), env=dict(NO_CHECKS, **PFX))
    result = check("-b", url, "-q", "mail", "-O", "global_keyprefix=pfx:")
    result.assert_ok("queue mail has 0 waiting messages")
    assert result.perfdata["mail"].value == 0
    check("-b", url, "-q", "mail").assert_critical(
        "queue mail not declared under key prefix '' in DB 2; found under prefix 'pfx:' "
        "(-O global_keyprefix=pfx:)")
    # The wrong prefix as well as the wrong DB.
    check("-b", own_server.url(0), "-q", "celery").assert_critical(
        "queue celery not declared under key prefix '' in DB 0; found in DB 2 under prefix 'pfx:'")


def test_wrong_db_number_is_critical_and_names_the_right_one(own_server, celery_apps):
    publish(celery_apps(own_server.url(1)), "celery", 7)
    for url, db in ((own_server.url(3), 3), ("redis://127.0.0.1:%d" % own_server.port, 0)):
        result = check("-b", url)
        assert result.first_line == ("CELERY_QUEUE CRITICAL - queue celery not declared under "
                                     "key prefix '' in DB %d; found in DB 1" % db)
        assert sorted(result.perfdata) == ["unacked"]
    assert check("-b", own_server.url(1)).assert_ok().perfdata["celery"].value == 7


def test_typo_in_the_queue_name_is_critical(own_server, celery_apps):
    url = own_server.url(0)
    app = celery_apps(url)
    publish(app, "celery", 2)
    publish(app, "mail", 1)
    check("-b", url, "-q", "celry").assert_critical(
        "queue celry not declared under key prefix '' in DB 0; did you mean celery?")
    check("-b", url, "-q", "celery,mail").assert_critical(
        "queue celery,mail not declared", "(-q takes one name: repeat -q for each queue)")
    check("-b", url, "-q", "celery ").assert_critical("queue celery  not declared")
    result = check("-b", url, "-q", "celery", "-q", "invoices", "-v")
    result.assert_critical("queue invoices not declared under key prefix '' in DB 0")
    assert result.perfdata["celery"].value == 2 and "invoices" not in result.perfdata
    assert "invoices: not declared" in result.long_output
    assert "celery: 2 waiting" in result.long_output


@pytest.mark.parametrize("state,expect", [("warning", 1), ("unknown", 3), ("CRITICAL", 2)])
def test_missing_state_option_on_redis(own_server, state, expect):
    result = check("-b", own_server.url(0), "-q", "celery", "--missing-state", state)
    assert result.rc == expect, result.describe()
    assert result.first_line.endswith("queue celery not declared under key prefix '' in DB 0")


def test_missing_state_ok_still_says_what_is_missing(own_server, celery_apps):
    url = own_server.url(0)
    publish(celery_apps(url), "celery", 1)
    result = check("-b", url, "-q", "celery", "-q", "gone", "--missing-state", "ok")
    result.assert_ok("queue celery has 1 waiting message; 1 queue missing")
    check("-b", url, "-q", "gone", "--missing-state", "ok").assert_ok(
        "queue gone not declared under key prefix '' in DB 0")
    check("-b", url, "-q", "gone", "--missing-state", "bogus").assert_unknown("invalid state")


def test_declared_but_empty_through_any_exchange_is_0_waiting(redis_url, celery_apps,
                                                              celery_worker):
    """Declared by a real worker (exchange named after the queue) or by a
    producer binding it to a direct, topic or fanout exchange of another
    name: 0 waiting, OK."""
    from kombu import Exchange, Queue

    by_worker, direct, topic, fanout = qname("w"), qname("d"), qname("t"), qname("f")
    celery_worker.start(redis_url, queues=(by_worker,), env=NO_CHECKS)
    app = celery_apps(redis_url)
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        Queue(direct, Exchange("cq-tasks", type="direct"), routing_key="route-d")(channel).declare()
        Queue(topic, Exchange("cq-topic", type="topic"), routing_key="mail.#")(channel).declare()
        Queue(fanout, Exchange("cq-fanout", type="fanout"))(channel).declare()
    for queue in (by_worker, direct, topic, fanout):
        result = check("-b", redis_url, "-q", queue).assert_ok(
            "queue %s has 0 waiting messages" % queue)
        assert result.perfdata[queue].value == 0
    check("-b", redis_url, "-q", direct, "-q", topic, "-q", fanout).assert_ok(
        "3 queues, no messages waiting")


def test_all_queues_with_nothing_under_the_prefix(own_server, celery_apps):
    publish(celery_apps(own_server.url(0), global_keyprefix="pfx:"), "celery", 3)
    result = check("-b", own_server.url(0), "--all-queues")
    assert result.first_line == (
        "CELERY_QUEUE CRITICAL - no queues declared under key prefix '' in DB 0; found under "
        "prefix 'pfx:' (-O global_keyprefix=pfx:)")
    check("-b", own_server.url(4), "--all-queues", "-O", "global_keyprefix=pfx:").assert_critical(
        "no queues declared under key prefix 'pfx:' in DB 4; found in DB 0")
    check("-b", own_server.url(0), "--all-queues", "-O", "global_keyprefix=pfx:").assert_ok(
        "queue celery has 3 waiting messages")
    check("-b", own_server.url(5), "--all-queues", "--missing-state", "warning").assert_warning(
        "no queues declared under key prefix '' in DB 5; found in DB 0 under prefix 'pfx:'")


def test_several_places_are_counted_as_places_not_as_problems(own_server, celery_apps):
    """Bindings of the queue in two other places: the line named the first
    and ended "(+1 more)", which is how the status line counts problems,
    while there was one problem and -v listed one."""
    publish(celery_apps(own_server.url(1), global_keyprefix="pfx:"), "celery", 1)
    publish(celery_apps(own_server.url(2)), "celery", 1)
    result = check("-b", own_server.url(3), "-v")
    assert result.first_line == (
        "CELERY_QUEUE CRITICAL - queue celery not declared under key prefix '' in DB 3; found in "
        "DB 1 under prefix 'pfx:' and in 1 more place (-v)"), result.describe("first line")
    assert [line for line in result.long_output if line.startswith("CRITICAL")] == [
        result.first_line.replace("CELERY_QUEUE CRITICAL - ", "CRITICAL: ")]
    assert "bindings found in DB 1 under key prefix 'pfx:'" in result.long_output
    assert "bindings found in DB 2 under key prefix ''" in result.long_output


def test_rabbitmq_wrong_vhost_and_missing_queue_stay_critical(rabbitmq, celery_apps):
    queue = rabbitmq.queue_name()
    publish(celery_apps(rabbitmq.url), queue, 1)
    wrong = rabbitmq.url + "-typo"
    check("-b", wrong, "-q", queue).assert_critical("refused access to vhost")
    typo = queue[:-1]
    check("-b", rabbitmq.url, "-q", typo).assert_critical(
        "queue %s not found on vhost %s" % (typo, rabbitmq.vhost))
    result = check("-b", rabbitmq.url, "-q", typo, "-q", queue, "--missing-state", "warning",
                   "--orphan-state", "ok")
    result.assert_warning("queue %s not found on vhost %s" % (typo, rabbitmq.vhost))
    assert result.perfdata[queue].value == 1


# --------------------------------------------- every item looked up exactly

def test_names_that_extend_each_other_are_reported_exactly_on_rabbitmq(rabbitmq, celery_apps):
    """`mail` missing, `missing mail` and `mail_2` present: each queue keeps
    its own label, count and words (no name is a prefix of another's)."""
    base = rabbitmq.queue_name("mail")
    longer, suffixed = "missing " + base, base + "_2"
    rabbitmq.queues.extend([longer, suffixed])
    app = celery_apps(rabbitmq.url)
    publish(app, longer, 5)
    publish(app, suffixed, 1)
    result = check("-b", rabbitmq.url, "-q", base, "-q", longer, "-q", suffixed, "-w", "4", "-v",
                   "--orphan-state", "ok")
    result.assert_critical("queue %s not found on vhost %s (+1 more)" % (base, rabbitmq.vhost))
    assert {k: p.value for k, p in result.perfdata.items()} == {
        longer: 5, "consumers_" + longer: 0, suffixed: 1, "consumers_" + suffixed: 0}
    assert "WARNING: queue %s has 5 waiting messages (> 4)" % longer in result.long_output
    assert "%s: 1 waiting, 0 consumers" % suffixed in result.long_output


def test_names_that_extend_each_other_are_reported_exactly_on_redis(own_server, celery_apps):
    url = own_server.url(0)
    app = celery_apps(url)
    publish(app, "missing mail", 5)
    publish(app, "mail_2", 1)
    publish(app, "mail2", 2)
    result = check("-b", url, "-q", "mail", "-q", "missing mail", "-q", "mail_2", "-w", "4", "-v")
    result.assert_critical("queue mail not declared under key prefix '' in DB 0; did you mean")
    assert {k: p.value for k, p in result.perfdata.items()} == {
        "missing mail": 5, "mail_2": 1, "unacked": 0}
    assert "WARNING: queue missing mail has 5 waiting messages (> 4)" in result.long_output
    assert "mail: not declared" in result.long_output
    result = check("-b", url, "-q", "mail_2", "-q", "mail2", "-c", "1")
    result.assert_critical("queue mail2 has 2 waiting messages (> 1)")
    assert result.perfdata["mail_2"].value == 1 and result.perfdata["mail2"].value == 2


# ------------------------------------------------------------------ wording

def test_counts_of_one_are_singular(redis_url, rabbitmq, celery_apps, celery_worker):
    queue = qname()
    publish(celery_apps(redis_url), queue, 1)
    result = check("-b", redis_url, "-q", queue).assert_ok()
    assert result.summary == "queue %s has 1 waiting message" % queue
    check("-b", redis_url, "-q", queue, "-w", "0").assert_warning(
        "queue %s has 1 waiting message (> 0)" % queue)
    amqp = rabbitmq.queue_name()
    publish(celery_apps(rabbitmq.url), amqp, 1)
    check("-b", rabbitmq.url, "-q", amqp, "--orphan-state", "ok").assert_ok(
        "queue %s has 1 waiting message, 0 consumers" % amqp)
    celery_worker.start(rabbitmq.url, queues=(amqp,), env=NO_CHECKS)
    result = wait_for(lambda: _drained(rabbitmq.url, amqp))
    assert result, "the worker did not drain %s" % amqp
    result.assert_ok("queue %s has 0 waiting messages, 1 consumer" % amqp)
    check("-b", rabbitmq.url, "-q", amqp, "--consumers-warning", "2:").assert_warning(
        "queue %s has 1 consumer (< 2)" % amqp)


def _drained(url, queue):
    result = check("-b", url, "-q", queue)
    return result if result.rc == 0 and result.perfdata[queue].value == 0 else None


# ------------------------------------------------------- other user mistakes

def test_a_priority_sub_list_given_as_queue_is_a_usage_error():
    check("-q", "celery\x06\x163").assert_unknown(
        "celery\\x06\\x163 is the key of queue celery's priority 3 sub-list, not a queue")
    check("-q", "mail:9", "-O", "sep=:").assert_unknown(
        "mail:9 is the key of queue mail's priority 9 sub-list")
    # Not a configured step: an ordinary name.
    down = "redis://127.0.0.1:%d/0" % closed_port()
    check("-b", down, "-q", "mail:7", "-O", "sep=:", "-t", "2").assert_critical("cannot reach")


def test_key_of_another_type_names_the_key(redis_url, redis_client):
    name = qname("str")
    redis_client.set(name, "x")
    check("-b", redis_url, "-q", name).assert_unknown(
        "key '%s' holds another type of data than kombu keeps there" % name)
    # the bindings of a queue's exchange are read with the others in one
    # SUNION: the key that is no set is still the one named
    other = qname("bound")
    redis_client.set("_kombu.binding." + other, "x")
    check("-b", redis_url, "-q", qname("fine"), "-q", other).assert_unknown(
        "key '_kombu.binding.%s' holds another type of data than kombu keeps there" % other)


def test_task_queues_bound_to_celerys_default_exchange(redis_url, tmp_path, celery_apps):
    """task_queues = [Queue("reports")] binds it to exchange "celery" (Celery's
    default exchange) with routing key "reports": declared, 0 waiting, OK."""
    from kombu import Queue

    queue = qname("r")
    app = celery_apps(redis_url)
    app.conf.task_queues = [Queue(queue)]
    with app.connection_for_write() as connection:
        for declared in app.amqp.queues.values():
            declared(connection.default_channel).declare()
    check("-b", redis_url, "-q", queue).assert_ok("queue %s has 0 waiting messages" % queue)


def test_healthy_path_needs_no_scan(own_server, celery_apps):
    """Queues declared the ways Celery declares them (named after the queue,
    or task_queues bound to the default exchange), empty or not, are judged
    from the one pipeline: the server ran no SCAN, INFO or SELECT for it."""
    import redis
    from kombu import Queue

    url = own_server.url(0)
    app = celery_apps(url)
    app.conf.task_queues = [Queue("reports"), Queue("celery")]
    with app.connection_for_write() as connection:
        for declared in app.amqp.queues.values():
            declared(connection.default_channel).declare()
    publish(app, "mail", 2)
    server = redis.Redis.from_url(url)
    server.config_resetstat()
    result = check("-b", url, "-q", "celery", "-q", "reports", "-q", "mail")
    result.assert_ok("3 queues, 2 messages waiting, most in mail (2)")
    stats = server.info("commandstats")
    assert not {"cmdstat_scan", "cmdstat_info", "cmdstat_select"} & set(stats), stats
    # the bindings of each queue's exchange and of "celery", in one command
    assert stats["cmdstat_sunion"]["calls"] == 1 and "cmdstat_smembers" not in stats, stats
    # An empty queue bound elsewhere only: one SCAN of this prefix, still OK.
    with app.connection_for_write() as connection:
        from kombu import Exchange
        Queue("audit", Exchange("events", type="topic"), routing_key="audit.#")(
            connection.default_channel).declare()
    server.config_resetstat()
    check("-b", url, "-q", "audit").assert_ok("queue audit has 0 waiting messages")
    assert "cmdstat_info" not in server.info("commandstats")
    server.close()
