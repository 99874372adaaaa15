"""check_celery_queue's questions beyond the depth, as processes against
the real brokers and real workers: who consumes each queue (Redis: the
workers' active_queues replies), orphans, RabbitMQ's management API
(ready, unacked, consumers in one HTTP request) and the age of the oldest
waiting message (the publish stamp of celery_checks.install(app)).

Workers that must hold messages run tests.block, which returns only when
the test creates its file: what is reserved and unacknowledged is then
exact, decided by the prefetch count, never by a sleep.
"""

import json
import time
import uuid

import pytest

from tests.kit import rabbitmq as rabbitmq_kit
from tests.kit.faults import Listener, closed_port
from tests.kit.plugin import run_check
from tests.kit.producers import publish
from tests.kit.waiting import wait_for

NAME = "check_celery_queue"
MANAGEMENT = "http://127.0.0.1:15672/"
PREFETCH = 3  # one thread, --prefetch-multiplier 3: 3 reserved beside the running task


def check(*args, **kw):
    return run_check(NAME, *args, **kw)


def qname(suffix="q"):
    return "ci-%s-%s" % (uuid.uuid4().hex[:6], suffix)


@pytest.fixture
def stamping():
    """Apps made through this publish like an app that called
    celery_checks.install(app); the process-wide handler goes after."""
    from celery.signals import before_task_publish

    import celery_checks
    from celery_checks.worker import publish as stamp

    def install(app):
        celery_checks.install(app)
        return app

    yield install
    before_task_publish.disconnect(dispatch_uid=stamp.HANDLER_UID)


def holding(celery_worker, url, queue, tmp_path, name=None):
    """A worker on ``queue`` that runs one task at a time, blocked on the
    first until the returned file is created, and reserves PREFETCH more
    (a threads pool: a solo worker's loop stops while its task runs, so it
    would reserve none)."""
    release = tmp_path / ("release-%s" % uuid.uuid4().hex[:6])
    worker = celery_worker.start(url, name=name, queues=(queue,), pool="threads",
                                 extra_args=["--prefetch-multiplier", str(PREFETCH)])
    return worker, release


# ------------------------------------------------------- consumers on Redis

def test_redis_consumers_from_the_workers_own_replies(redis_url, celery_apps, celery_worker):
    busy, shared, orphan = qname("busy"), qname("shared"), qname("orphan")
    first = celery_worker.start(redis_url, queues=(busy, shared))
    second = celery_worker.start(redis_url, queues=(shared,))
    app = celery_apps(redis_url)
    publish(app, orphan, 4)
    queues = ["-q", busy, "-q", shared, "-q", orphan]
    result = check("-b", redis_url, *queues, "--consumers-warning", "1:", "-vv")
    result.assert_critical("queue %s: 4 waiting, no consumer" % orphan)
    counts = {q: result.perfdata["consumers_" + q].value for q in (busy, shared, orphan)}
    assert counts == {busy: 1, shared: 2, orphan: 0}
    assert result.perfdata["consumers_" + busy].warn == "1:"
    names = ", ".join(sorted([first.name, second.name]))
    assert "%s: 0 waiting, 2 consumers, consumed by %s" % (shared, names) in result.long_output
    assert "%s: 4 waiting, 0 consumers, consumed by nobody that answered" % orphan \
        in result.long_output
    # The orphan's queue never gets a consumer, yet nobody else can answer
    # once both workers the broadcast reached did (Redis counts them).
    ended = "2 workers replied; every mailbox the broadcast reached answered (2)"
    assert any(line.endswith(ended) for line in result.long_output), result.long_output
    result = check("-b", redis_url, *queues, "--consumers", "--orphan-state", "warning")
    result.assert_warning("queue %s: 4 waiting, no consumer" % orphan)
    # A frozen worker got the broadcast but cannot answer: listening ends
    # once every verdict is known (the busy queue has its consumer).
    with second.paused():
        result = check("-b", redis_url, "-q", busy, "--consumers-critical", "1:",
                       "--reply-timeout", "4", "-vv").assert_ok()
    assert any(line.endswith("1 worker replied; ended once every verdict was known")
               for line in result.long_output), result.long_output
    # Without a consumer option the plain check broadcasts nothing.
    assert "consumers_" + busy not in check("-b", redis_url, "-q", busy).assert_ok().perfdata


def test_redis_consumers_with_no_worker_and_a_prefix(redis_url, redis_client, celery_apps):
    queue = qname()
    publish(celery_apps(redis_url, global_keyprefix="pfx:"), queue, 2)
    before = {key: redis_client.type(key) for key in redis_client.keys("*")}
    messages = redis_client.lrange("pfx:" + queue, 0, -1)
    result = check("-b", redis_url, "-q", queue, "-O", "global_keyprefix=pfx:", "--consumers",
                   "--reply-timeout", "0.3", "--oldest")
    result.assert_critical("queue %s: 2 waiting, no consumer" % queue)
    assert result.perfdata["consumers_" + queue].value == 0
    # The broadcast's reply queue and binding are gone again; no message moved.
    assert {key: redis_client.type(key) for key in redis_client.keys("*")} == before
    assert redis_client.lrange("pfx:" + queue, 0, -1) == messages


# --------------------------------------------- unacked and oldest on Redis

def test_redis_unacked_ranges_and_oldest_age(redis_url, redis_client, celery_apps, stamping,
                                             celery_worker, tmp_path):
    queue = qname()
    app = stamping(celery_apps(redis_url))
    worker, release = holding(celery_worker, redis_url, queue, tmp_path)
    try:
        publish(app, queue, 1, task="tests.block", args=(str(release),))
        publish(app, queue, 6)
        args = ["-b", redis_url, "-q", queue, "--unacked-warning", "2", "--oldest", "-v"]
        # Settled: one task running (acknowledged), PREFETCH reserved.
        result = wait_for(lambda: _settled(check(*args), queue, 6 - PREFETCH, PREFETCH), 30,
                          "the worker to reserve %d" % PREFETCH, log=worker.log_path)
        result.assert_warning("queue %s has 3 unacked messages (> 2)" % queue)
        assert result.perfdata["unacked_" + queue].warn == "2"
        # The age is Redis TIME minus the stamp of the message next in line.
        tail = json.loads(redis_client.lindex(queue, -1))
        stamp = tail["headers"]["celery_checks_sent"]
        before = _redis_now(redis_client) - stamp
        result = check(*args)
        after = _redis_now(redis_client) - stamp
        age = result.perfdata["oldest_" + queue]
        assert age.uom == "s" and before - 0.001 <= age.value <= after + 0.001
        # Reading the tail moved nothing.
        assert redis_client.lrange(queue, 0, -1) == redis_client.lrange(queue, 0, -1)
        assert json.loads(redis_client.lindex(queue, -1)) == tail
        check(*args, "--oldest-critical", "~:%s" % max(0, int(before) - 1)).assert_critical(
            "queue %s: oldest message waited" % queue)
    finally:
        release.touch()


def _settled(result, queue, waiting, unacked):
    perf = result.perfdata
    if perf.get(queue) and perf[queue].value == waiting and \
            perf.get("unacked_" + queue) and perf["unacked_" + queue].value == unacked:
        return result
    return None


def _redis_now(client):
    seconds, micros = client.time()
    return seconds + micros / 1e6


def test_redis_oldest_unknown_without_the_stamp_and_0_when_empty(redis_url, redis_client,
                                                                   celery_apps):
    from tests.kit.producers import declare_on_redis

    plain, empty = qname("plain"), qname("empty")
    publish(celery_apps(redis_url), plain, 3, priority=9)
    declare_on_redis(redis_client, empty)
    before = redis_client.lrange(plain + "\x06\x169", 0, -1)
    result = check("-b", redis_url, "-q", plain, "-q", empty, "--oldest-critical", "60", "-v")
    result.assert_ok()
    assert "oldest_" + plain not in result.perfdata  # unknown, never 0
    assert result.perfdata["oldest_" + empty].value == 0
    assert "%s: 3 waiting (priority 9: 3), oldest: age unknown" % plain in result.long_output
    assert sum("age unknown for 1 queue" in line for line in result.long_output) == 1
    assert redis_client.lrange(plain + "\x06\x169", 0, -1) == before


def test_redis_oldest_across_priority_lists(redis_url, redis_client, celery_apps, stamping):
    queue = qname()
    app = stamping(celery_apps(redis_url))
    publish(app, queue, 2, priority=9)
    first = json.loads(redis_client.lindex(queue + "\x06\x169", -1))["headers"]
    publish(app, queue, 2, priority=0)
    result = check("-b", redis_url, "-q", queue, "--oldest").assert_ok()
    assert result.perfdata["oldest_" + queue].value >= \
        _redis_now(redis_client) - first["celery_checks_sent"] - 1  # the older list counts


# ------------------------------------------------- RabbitMQ management API

@pytest.fixture(scope="module")
def management():
    from tests.kit.waiting import port_open

    if not port_open(15672):
        pytest.fail("RabbitMQ's management API is not on 127.0.0.1:15672: "
                    "scripts/prepare-system enables rabbitmq_management")
    return MANAGEMENT


def test_management_ready_unacked_consumers_and_oldest(rabbitmq, management, celery_apps,
                                                       stamping, celery_worker, tmp_path):
    queue = qname()
    app = stamping(celery_apps(rabbitmq.url))
    worker, release = holding(celery_worker, rabbitmq.url, queue, tmp_path)
    try:
        sent = time.time()
        publish(app, queue, 1, task="tests.block", args=(str(release),))
        publish(app, queue, 10)
        args = ["-b", rabbitmq.url, "-q", queue, "--management-url", management, "-v",
                "--oldest"]
        # RabbitMQ refreshes the management figures every 5 s: wait for them.
        result = wait_for(lambda: _management_settled(check(*args), queue), 40,
                          "the management API to show %d unacked" % PREFETCH,
                          log=worker.log_path)
        result.assert_ok()
        perf = result.perfdata
        assert (perf[queue].value, perf["consumers_" + queue].value) == (10 - PREFETCH, 1)
        assert perf["unacked_" + queue].value == PREFETCH
        age = perf["oldest_" + queue]
        assert age.uom == "s" and 0 <= age.value <= time.time() - int(sent) + 1
        assert "unacked" not in perf  # Redis's total; per queue here
        result = check(*args, "--unacked-critical", "2")
        result.assert_critical("queue %s has 3 unacked messages (> 2)" % queue)
        assert result.perfdata["unacked_" + queue].crit == "2"
        # --all-queues (the vhost is the session's: other tests' queues too)
        result = check("-b", rabbitmq.url, "--management-url", management, "--all-queues",
                       "--unacked-critical", "2", "-v")
        assert "CRITICAL: queue %s has 3 unacked messages (> 2)" % queue in result.long_output
        # Celery's own queues (the worker's pidbox) are left out.
        assert not [label for label in result.perfdata if "pidbox" in label or "celeryev" in label]
        assert queue in result.perfdata
    finally:
        release.touch()


def _management_settled(result, queue):
    """RabbitMQ refreshes counts, consumers and the head's timestamp each on
    its own timer: all of them."""
    perf = result.perfdata
    if perf.get("unacked_" + queue) and perf["unacked_" + queue].value == PREFETCH \
            and perf[queue].value == 10 - PREFETCH and perf["consumers_" + queue].value == 1 \
            and "oldest_" + queue in perf:
        return result
    return None


def test_management_unstamped_missing_and_vhost(rabbitmq, management, celery_apps):
    queue, absent = qname(), qname("absent")
    publish(celery_apps(rabbitmq.url), queue, 2)  # an app without install(): no stamp
    args = ["-b", rabbitmq.url, "--management-url", management, "--oldest-warning", "60", "-v"]
    result = wait_for(lambda: _ready(check(*args, "-q", queue), queue, 2), 30,
                      "the management API's figures")
    assert "oldest_" + queue not in result.perfdata
    assert "%s: 2 waiting, 0 consumers, 0 unacked, oldest: age unknown" % queue \
        in result.long_output
    result = check(*args, "-q", queue, "-q", absent).assert_critical(
        "queue %s: 2 waiting, no consumer (+1 more)" % queue)
    assert "CRITICAL: queue %s not found on vhost %s" % (absent, rabbitmq.vhost) \
        in result.long_output


def _ready(result, queue, count):
    perf = result.perfdata.get(queue)
    return result if perf is not None and perf.value == count else None


def test_management_url_precedence_and_credentials(rabbitmq, management, tmp_path,
                                                    celery_apps):
    queue = qname()
    publish(celery_apps(rabbitmq.url), queue, 1)
    with rabbitmq_kit.User("cc-monitor", password="celery") as user:
        rabbitmq_kit.rabbitmqctl("set_user_tags", user.name, "monitoring")
        rabbitmq_kit.rabbitmqctl("set_permissions", "-p", rabbitmq.vhost, user.name,
                                 "", "", ".*")
        good = "http://%s:celery@127.0.0.1:15672/" % user.name
        wrong = "http://%s:wrong@127.0.0.1:15672/" % user.name
        url_file = tmp_path / "management_url"
        url_file.write_text(good + "\n")
        base = ["-b", rabbitmq.url, "-q", queue, "--orphan-state", "ok"]
        # RabbitMQ has no figures for a new queue before its next collection.
        wait_for(lambda: _ready(check(*base, "--management-url", MANAGEMENT), queue, 1), 30,
                 "the management API's figures")
        # The option beats the file, which beats the environment.
        env = {"CELERY_CHECKS_MANAGEMENT_URL": wrong}
        check(*base, "--management-url-file", str(url_file), env=env).assert_ok()
        refused = check(*base, "--management-url", wrong, "--management-url-file",
                        str(url_file))
        refused.assert_critical("management API http://%s:***@127.0.0.1:15672/ refused "
                                "authentication (wrong user or password)" % user.name)
        check(*base, env=env).assert_critical("refused authentication")
        check(*base, env={"CELERY_CHECKS_MANAGEMENT_URL": good}).assert_ok()
        # The password is an ordinary word: it never shows, at any -v.
        for result in (refused, check(*base, "--management-url", good, "-vvv")):
            assert "celery@" not in result.stdout and ":celery" not in result.stdout
        # No user in the URL: the broker URL's (guest) is asked.
        check(*base, "--management-url", "http://127.0.0.1:15672", "-vv").assert_ok()
        # A user without the monitoring tag, or without the vhost: refused, said how.
        rabbitmq_kit.rabbitmqctl("set_user_tags", user.name)
        check(*base, "--management-url", good).assert_critical(
            "refused user %s: it needs the monitoring tag" % user.name)
        rabbitmq_kit.rabbitmqctl("set_user_tags", user.name, "monitoring")
        rabbitmq_kit.rabbitmqctl("clear_permissions", "-p", rabbitmq.vhost, user.name)
        check(*base, "--management-url", good).assert_critical(
            "refused user %s access to the vhost" % user.name)
    # The broker URL names a vhost RabbitMQ does not have: the API says so too.
    typo = rabbitmq.url + "-typo"
    check("-b", typo, "-q", queue, "--management-url", MANAGEMENT).assert_critical(
        "answered 404 Not Found for /api/queues/%s-typo: no such vhost" % rabbitmq.vhost)


def test_management_failures_are_critical_within_timeout(rabbitmq):
    base = ["-b", rabbitmq.url, "-q", "celery"]
    port = closed_port()
    check(*base, "--management-url", "http://guest:guest@127.0.0.1:%d/" % port).assert_critical(
        "cannot reach management API http://guest:***@127.0.0.1:%d/: Connection refused" % port)
    # The AMQP port (a management URL naming the broker's port) hangs up on HTTP.
    check(*base, "--management-url", "http://127.0.0.1:%d/" % rabbitmq_kit.PORT).assert_critical(
        "cannot reach management API http://127.0.0.1:%d/: Connection reset by peer"
        % rabbitmq_kit.PORT)
    silent = Listener("silent")
    try:
        check(*base, "-t", "3", "--management-url", "http://127.0.0.1:%d/" % silent.port
              ).assert_critical("management API http://127.0.0.1:%d/ did not answer"
                                % silent.port)
    finally:
        silent.close()


def test_management_url_with_a_redis_broker(redis_url):
    check("-b", redis_url, "--management-url", "http://127.0.0.1:15672/").assert_unknown(
        "--management-url is RabbitMQ's management API: the broker redis://")
    # Set in the environment for the host's RabbitMQ checks: not this one's.
    check("-b", redis_url, "-q", qname(), extra_env={
        "CELERY_CHECKS_MANAGEMENT_URL": "http://127.0.0.1:1/"}).assert_critical("not declared")


@pytest.mark.parametrize("args,fragment", [
    (["--all-queues"], "--all-queues needs RabbitMQ's management API"),
    (["--oldest-warning", "60"], "--oldest needs RabbitMQ's management API"),
    (["--unacked-critical", "5"], "--unacked-* needs RabbitMQ's management API"),
    (["--reply-timeout", "1"], "--reply-timeout is for the Redis consumers broadcast"),
    (["--management-url", "ftp://x/"], "bad management URL ftp://x/"),
])
def test_rabbitmq_options_needing_the_management_api(rabbitmq, args, fragment):
    check("-b", rabbitmq.url, *args).assert_unknown(fragment)


# ------------------------------------------------------- producer clock off

def test_a_stamp_from_a_clock_ahead_is_flagged_on_both_brokers(redis_url, redis_client, rabbitmq,
                                                               management, celery_apps):
    """A producer whose clock runs 100 s ahead: its stamp is in the future
    of the clock the age is read on. Said with -v, counted as 0, never a
    negative age."""
    import pika

    ahead = time.time() + 100
    queue = qname()
    celery_apps(redis_url).send_task("tests.add", args=(1, 2), queue=queue,
                                     headers={"celery_checks_sent": ahead})
    result = check("-b", redis_url, "-q", queue, "--oldest", "-v").assert_ok()
    assert result.perfdata["oldest_" + queue].value == 0
    assert any(line.startswith("clocks disagree: a publish stamp is ahead of Redis TIME")
               for line in result.long_output), result.long_output
    amqp = rabbitmq.queue_name()
    channel = rabbitmq.channel()
    channel.queue_declare(amqp)
    channel.basic_publish("", amqp, b"{}", pika.BasicProperties(timestamp=int(ahead)))
    args = ["-b", rabbitmq.url, "-q", amqp, "--management-url", management, "--oldest", "-v",
            "--orphan-state", "ok"]
    result = wait_for(lambda: _aged(check(*args), amqp), 30, "the management API's figures")
    assert result.perfdata["oldest_" + amqp].value == 0
    assert any(line.startswith("clocks disagree: a publish stamp is ahead of this host's clock")
               for line in result.long_output), result.long_output


def _aged(result, queue):
    """The result once the management API counts the queue's message (its
    figures lag up to 5 s: before, 0 waiting has an oldest age of 0 too)."""
    counted = queue in result.perfdata and result.perfdata[queue].value >= 1
    return result if counted and "oldest_" + queue in result.perfdata else None
