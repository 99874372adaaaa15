"""check_celery_workers against real workers on Redis and RabbitMQ.

A module-scoped pair of workers per broker (special-1@serverA on the prefork
pool, special-2@serverA on solo) is shared by the tests, so the suite pays
for worker start-up once; tests that need a worker to die start their own.
Tests that SIGSTOP a shared worker resume it (Worker.paused()), also on failure.

The pure parts (inventory, `celery status` parsers) have unit tests at the
end; the stdin fixtures under tests/data/workers are real command output.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from celery_checks.workers import inventory as I
from celery_checks.connect import pidbox
from celery_checks.workers import stdin
from celery_checks.plugin.policy import CheckError
from tests.kit import prerequisites
from tests.kit import rabbitmq as rabbitmq_kit
from tests.kit.project import ROOT
from tests.kit.waiting import wait_for
from tests.kit.workers import WorkerFactory
from tests.kit.faults import TcpProxy
from tests.kit.plugin import fork_runs, run_check

DATA = Path(__file__).resolve().parent / "data" / "workers"
CHECK = "check_celery_workers"
PAIR = ["--expect", "special-1@serverA", "--expect", "special-2@serverA"]

pytestmark = pytest.mark.slow


# ----------------------------------------------------------------- brokers

@pytest.fixture(scope="module")
def module_redis(redis_server, redis_dbs):
    """A Redis DB for this module's workers (from the top of the numbers)."""
    with redis_dbs.take(from_top=True) as number:
        client = redis_server.client(number)
        try:
            yield redis_server.url(number), client
        finally:
            client.close()


@pytest.fixture(scope="module")
def module_vhost():
    """A vhost of our own: broadcasts must not reach other tests' workers."""
    with rabbitmq_kit.Vhost("cc-workers") as vhost:
        yield vhost.url, vhost.name


@pytest.fixture(scope="module")
def pool(tmp_path_factory, module_redis, module_vhost):
    """Two workers on each broker, started in parallel, stopped at the end."""
    factory = WorkerFactory(tmp_path_factory.mktemp("workers"))
    started = {}
    try:
        for kind, url in (("redis", module_redis[0]), ("amqp", module_vhost[0])):
            started[kind] = [
                factory.start(url, name="special-1@serverA", pool="prefork", wait=False,
                              queues=("w-%s" % kind,)),
                factory.start(url, name="special-2@serverA", pool="solo", wait=False,
                              queues=("w-%s" % kind,)),
            ]
        for group in started.values():
            for worker in group:
                factory.wait_ready(worker, 60, "ready.")
        # "ready." can come before a prefork worker's remote-control consumer
        # listens: a broadcast sent in between is lost (Redis PUB/SUB keeps
        # nothing), and the hiredis-fast check sends it within milliseconds.
        # Every test starts once both answer.
        for kind, url in (("redis", module_redis[0]), ("amqp", module_vhost[0])):
            wait_for(lambda: run_check(CHECK, "-b", url, "--expect", "special-*@serverA=2",
                                       "--reply-timeout", "1").rc == 0,
                     60, "both %s workers answering a ping" % kind)
        yield factory, started
    finally:
        factory.stop_all()


@pytest.fixture(params=["redis", "amqp"])
def broker(request, pool, module_redis, module_vhost):
    """(url, [special-1, special-2]) on one broker; workers resumed after."""
    factory, started = pool
    url = module_redis[0] if request.param == "redis" else module_vhost[0]
    yield Broker(request.param, url, started[request.param], factory)


class Broker:
    def __init__(self, kind, url, workers, factory):
        self.kind, self.url, self.workers, self.factory = kind, url, workers, factory

    def check(self, *args, **kw):
        return run_check(CHECK, "-b", self.url, *args, **kw)


def fresh_heartbeats(broker):
    """Give a resumed worker a moment to work through its backlog."""
    time.sleep(0.5)


# ------------------------------------------------------------- all present

@pytest.mark.parametrize("source", ["ping", "events"])
def test_all_expected_present_is_ok(broker, source):
    # A generous wait: the ping ends as soon as both answered, and a loaded
    # machine's prefork worker may take over the default second to answer.
    wait = ["--reply-timeout", "5"] if source == "ping" else []
    result = broker.check("--source", source, "--expect", "special-*@serverA=2", "-v", *wait)
    result.assert_ok("2 workers online, all 2 expected present")
    perf = result.perfdata
    assert (perf["online"].value, perf["expected"].value, perf["missing"].value,
            perf["unexpected"].value) == (2, 2, 0, 0)
    for node in ("special-1@serverA", "special-2@serverA"):
        assert any(line.startswith(node + ": online") for line in result.long_output), result.stdout
        if source == "ping":
            rtt = perf["rtt_" + node]
            assert rtt.uom == "s" and 0 <= rtt.value < 1
        else:
            age = perf["hb_age_" + node]
            assert age.uom == "s" and 0 <= age.value <= 3
    if source == "events":
        assert "celery 5." in result.stdout  # sw_ver from the heartbeat


EVENTS_LABELS = {"online", "expected", "missing", "unexpected",
                 "hb_age_special-1@serverA", "hb_age_special-2@serverA"}


def test_events_perfdata_labels_are_the_same_on_every_run(broker):
    """A run ends on the heartbeats the workers send when asked, which carry
    no task counters, or on a regular one, which does: active_NODE /
    processed_NODE came and went from one run to the next. Graphs need the
    same labels every run; the counts stay in -v."""
    argv = ["-b", broker.url, "--source", "events", "--expect", "special-*@serverA=2", "-v"]
    results = fork_runs(CHECK, [argv] * 40, parallel=4)
    for result in results:
        result.assert_ok("2 workers online, all 2 expected present")
        assert set(result.perfdata) == EVENTS_LABELS, result.describe("labels")


@pytest.mark.parametrize("source, wait", [("ping", "--reply-timeout"), ("events", "--window")])
def test_slow_connection_does_not_eat_the_reply_timeout(broker, source, wait):
    """Both workers answer at once, but connecting takes longer than the
    wait: the wait counts from our broadcast, not from the start (under
    load this said "2 of 2 expected workers missing" while both replied)."""
    from urllib.parse import urlsplit

    port = urlsplit(broker.url).port
    slow = TcpProxy(port, first_reply_delay=1.2)
    try:
        url = broker.url.replace(":%d/" % port, ":%d/" % slow.port)
        result = run_check(CHECK, "-b", url, "--source", source, *PAIR, wait, "1", "-v")
    finally:
        slow.close()
    result.assert_ok("2 workers online, all 2 expected present")
    assert result.perfdata["missing"].value == 0


def test_ping_returns_early_once_inventory_is_complete(broker):
    # --reply-timeout 5 would be the wait without an inventory; complete
    # answers end the run after the short grace instead.
    result = broker.check("--expect", "special-*@serverA=2", "--reply-timeout", "5")
    result.assert_ok()
    assert result.elapsed < 4, result.describe("did not return early")


@pytest.mark.parametrize("inventory", [[], PAIR, PAIR + ["--expect", "gone@serverA"]])
def test_ping_on_redis_ends_once_every_mailbox_reached_answered(pool, module_redis, inventory):
    """Redis's PUBLISH counts the mailboxes a broadcast reached: once that
    many answered no other reply can come, with an inventory or without,
    and a missing worker is known without waiting the reply timeout."""
    result = run_check(CHECK, "-b", module_redis[0], "-t", "30", "--reply-timeout", "20", "-vv",
                       *inventory)
    assert "listening ended: every mailbox the ping reached answered (2)" in result.long_output, \
        result.stdout
    assert result.perfdata["online"].value == 2
    if "gone@serverA" in inventory:
        result.assert_critical("1 of 3 expected workers missing: gone@serverA")
    else:
        result.assert_ok()


def test_ping_reaching_no_mailbox_does_not_wait(redis_url):
    result = run_check(CHECK, "-b", redis_url, "-t", "30", "--reply-timeout", "20", "-vv")
    result.assert_critical("no worker answered")
    assert "listening ended: no worker's mailbox received the ping" in result.long_output


def test_ping_on_amqp_says_how_listening_ended(pool, module_vhost):
    """RabbitMQ gives no count: the grace after the inventory is complete."""
    result = run_check(CHECK, "-b", module_vhost[0], *PAIR, "--reply-timeout", "5", "-vv")
    result.assert_ok()
    assert "listening ended: every expected node answered, then a grace for others" in \
        result.long_output, result.stdout


def test_default_waits_fit_a_short_timeout(broker):
    # A short -t shrinks the default reply timeout and window to half of it
    # instead of refusing them as a usage error...
    from celery_checks.workers.options import parse_args

    assert parse_args(["-b", broker.url, "-t", "1"]).reply_timeout == 0.5
    assert parse_args(["-b", broker.url, "-t", "2", "--source", "events"]).window == 1.0
    # ...and the run then fits it (-t 2: on a busy machine starting the
    # interpreter and importing kombu alone may take most of a second).
    broker.check("-t", "2", "--expect", "special-*@serverA=2").assert_ok()
    broker.check("-t", "2", "--source", "events", "--expect", "special-*@serverA=2").assert_ok()


def test_without_inventory_or_thresholds_counts_nodes(broker):
    result = broker.check("--reply-timeout", "0.5")
    result.assert_ok("2 workers online")
    assert result.perfdata["unexpected"].value == 0
    assert result.perfdata["expected"].value == 0


# ------------------------------------------------------- patterns and counts

def test_patterns_with_counts(broker):
    # a literal name is claimed before a glob: special-1 plus one other
    broker.check("--expect", "special-*@serverA=1", "--expect", "special-1@serverA").assert_ok()
    result = broker.check("--expect", "special-*@serverA=3")
    result.assert_critical("1 of 3 expected workers missing: special-*@serverA (only 2 of 3)")
    assert result.perfdata["missing"].value == 1
    result = broker.check("--expect", "special-*@serverA=1", "-v")
    result.assert_warning("1 unexpected: special-*@serverA (2, not 1)")
    assert result.perfdata["unexpected"].value == 1


def test_unexpected_node_warns_and_states_are_configurable(broker):
    result = broker.check("--expect", "special-1@serverA")
    result.assert_warning("1 unexpected: special-2@serverA")
    assert result.perfdata["unexpected"].value == 1
    broker.check("--expect", "special-1@serverA", "--unexpected-state", "ok").assert_ok()
    result = broker.check("--expect", "special-1@serverA", "--expect", "nobody@nowhere",
                          "--missing-state", "warning", "--unexpected-state", "critical")
    result.assert_critical("1 of 2 expected workers missing: nobody@nowhere",
                           "1 unexpected: special-2@serverA")


def test_thresholds_on_the_online_count(broker):
    result = broker.check("-w", "3:", "-c", "1:", "--reply-timeout", "0.5")
    result.assert_warning("2 online (< 3)")
    assert result.perfdata["online"].warn == "3:" and result.perfdata["online"].crit == "1:"
    broker.check("-c", "3:", "--reply-timeout", "0.5").assert_critical("2 online (< 3)")


def test_expect_file(broker, tmp_path):
    path = tmp_path / "workers.txt"
    path.write_text("# inventory\nspecial-1@serverA   # prefork\n\nspecial-[0-9]*@serverA=1\n")
    broker.check("--expect-file", str(path)).assert_ok("all 2 expected present")


# --------------------------------------------------------------- stopped

@pytest.mark.parametrize("source, index", [("ping", 0), ("events", 1), ("ping", 1)])
def test_sigstopped_worker_is_missing(broker, source, index):
    stopped = broker.workers[index]  # 0: prefork pool, 1: solo
    wait = ["--reply-timeout", "1"] if source == "ping" else ["--window", "2.5"]
    with stopped.paused():
        result = broker.check("--source", source, *PAIR, *wait)
    result.assert_critical("1 of 2 expected workers missing: %s" % stopped.name)
    assert result.perfdata["online"].value == 1 and result.perfdata["missing"].value == 1
    fresh_heartbeats(broker)


def test_extra_worker_warns_then_killed_worker_is_critical_on_every_source(broker):
    extra = broker.factory.start(broker.url, name="extra-1@serverB", pool="solo",
                                 queues=("x-%s" % broker.kind,))
    try:
        result = broker.check(*PAIR, "-v")
        result.assert_warning("1 unexpected: extra-1@serverB")
        assert "extra-1@serverB: online" in result.stdout
        inventory = PAIR + ["--expect", "extra-*@serverB"]
        broker.check(*inventory).assert_ok("3 workers online, all 3 expected present")
        broker.check("--source", "events", *inventory).assert_ok("all 3 expected present")

        extra.kill()  # SIGKILL: no worker-offline event, its pidbox queue stays
        for source in ("ping", "events"):
            wait = ["--window", "2.5"] if source == "events" else []
            result = broker.check("--source", source, *inventory, *wait)
            result.assert_critical("1 of 3 expected workers missing: extra-*@serverB (only 0 of 1)")
        # stdin: what `celery status` says now, piped in
        status = celery_status(broker.url)
        result = run_check(CHECK, "--source", "stdin", *PAIR, "--expect", "extra-1@serverB",
                           stdin=status)
        result.assert_critical("1 of 3 expected workers missing: extra-1@serverB")
        assert result.perfdata["online"].value == 2
    finally:
        extra.stop()


def celery_status(url, *args):
    env = dict(os.environ, CELERY_BROKER_URL=url, CELERY_CHECKS_DISABLE="1",
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "celery", "-A", "tests.app", "status", *args],
                          capture_output=True, text=True, env=env, timeout=60)
    return proc.stdout + proc.stderr


def test_live_celery_status_json_on_stdin(broker):
    result = run_check(CHECK, "--source", "stdin", *PAIR, stdin=celery_status(broker.url, "--json"))
    result.assert_ok("2 workers online, all 2 expected present")


# ------------------------------------------------------------ leftovers

def broker_state(broker, module_redis, module_vhost):
    """What a leak would add: Redis keys and the members of kombu's binding
    sets; RabbitMQ queue names."""
    if broker.kind == "redis":
        client = module_redis[1]
        state = set()
        for key in client.keys("*"):
            state.add(key)
            if client.type(key) == b"set":
                state.update((key, member) for member in client.smembers(key))
        return state
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", module_vhost[1], "name"],
                         capture_output=True, text=True, check=True).stdout
    return {line.strip() for line in out.splitlines()[1:] if line.strip()}


def test_no_reply_queue_or_key_left_behind(broker, module_redis, module_vhost):
    before = broker_state(broker, module_redis, module_vhost)
    for index in range(20):
        source = "events" if index % 4 == 3 else "ping"
        extra = [] if index % 5 else ["--reply-timeout" if source == "ping" else "--window", "1"]
        broker.check("--source", source, "--expect", "special-*@serverA=2", *extra).assert_ok()
    # a run that gives up early (missing node) must clean up too
    broker.check("--expect", "ghost@nowhere", "--reply-timeout", "0.3", "--unexpected-state", "ok") \
        .assert_critical("ghost@nowhere")
    # Only additions are leaks: kombu's own bookkeeping (binding deadlines
    # left by an earlier `celery status`) may be swept away meanwhile.
    added = broker_state(broker, module_redis, module_vhost) - before
    assert not added


# ---------------------------------------------------------- unreachable

@pytest.mark.parametrize("source", ["ping", "events"])
@pytest.mark.parametrize("url", ["redis://:s3cret-pw@127.0.0.1:1/0", "amqp://guest:s3cret-pw@127.0.0.1:1//"])
def test_unreachable_broker_is_critical_and_redacted(url, source):
    result = run_check(CHECK, "-b", url, "--source", source, "-t", "5", "-vvv")
    result.assert_critical("cannot reach broker", "127.0.0.1:1")
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert result.elapsed < 5


def test_wrong_amqp_password_is_critical(module_vhost):
    url = module_vhost[0].replace("guest:guest", "guest:wrong-pw")
    result = run_check(CHECK, "-b", url)
    result.assert_critical("cannot reach broker")
    assert "wrong-pw" not in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["--expect", "x@y=0"], "at least 1"),
    (["--expect", "x@y=many"], "invalid count"),
    (["--expect", ""], "invalid worker pattern"),
    (["--expect-file", "/nonexistent/workers.txt"], "cannot read --expect-file"),
    (["--reply-timeout", "12"], "--reply-timeout must stay below -t"),
    (["--source", "events", "--window", "10", "-t", "10"], "--window must stay below -t"),
    (["--source", "carrier-pigeon"], "invalid choice"),
    (["--missing-state", "purple"], "invalid state"),
])
def test_bad_arguments_are_unknown(args, fragment):
    result = run_check(CHECK, "-b", "redis://127.0.0.1:1/0", *args)
    result.assert_unknown(fragment)


@pytest.mark.parametrize("args, message", [
    (["--window", "2"], "--window applies to --source events only, not --source ping"),
    (["--source", "stdin", "--window", "2"],
     "--window applies to --source events only, not --source stdin"),
    (["--source", "events", "--reply-timeout", "1"],
     "--reply-timeout applies to --source ping only, not --source events"),
    (["--versions-differ-state", "warning"],
     "--versions-differ-state applies to --source events only, not --source ping"),
    (["--source", "stdin", "--versions-differ-state", "ok"],
     "--versions-differ-state applies to --source events only, not --source stdin"),
])
def test_option_of_another_source_is_a_usage_error(args, message):
    """Accepted silently, such an option did nothing: the user believed a
    --window or a versions alert was in force."""
    result = run_check(CHECK, "-b", "redis://127.0.0.1:1/0", *args, stdin="")
    result.assert_unknown()
    assert result.summary == message
    assert result.stdout.splitlines()[1].startswith("usage: check_celery_workers")


@pytest.mark.parametrize("flag", ["-b", "--broker-file"])
def test_a_broker_named_for_the_stdin_source_is_a_usage_error(flag, tmp_path):
    """`celery status | check_celery_workers --source stdin -b URL`: the
    URL was ignored without a word (celery status asked its own broker)."""
    url = "redis://127.0.0.1:1/0"
    path = tmp_path / "broker"
    path.write_text(url + "\n")
    value = url if flag == "-b" else str(path)
    result = run_check(CHECK, "--source", "stdin", flag, value,
                       stdin=(DATA / "celery5-status.txt").read_text())
    result.assert_unknown()
    assert result.summary == ("%s applies to --source ping or events, not --source stdin "
                              "(celery status names its own broker)" % flag)
    # the environment's $CELERY_BROKER_URL is not a choice made on this line
    run_check(CHECK, "--source", "stdin", extra_env={"CELERY_BROKER_URL": url},
              stdin=(DATA / "celery5-status.txt").read_text()).assert_ok()


@pytest.mark.parametrize("args, message", [
    (["--expect", "w1@vm", "--expect", "w1@vm"],
     "worker pattern w1@vm is expected twice (a node counts once)"),
    (["--expect", "w*@vm=2", "--expect", "w*@vm=2"],
     "worker pattern w*@vm is expected twice (a node counts once)"),
    (["--expect", "w1@vm=2"],
     "expected w1@vm=2: a name without a glob is one node, its COUNT must be 1"),
])
def test_inventory_that_counts_a_node_twice_is_a_usage_error(args, message):
    result = run_check(CHECK, "-b", "redis://127.0.0.1:1/0", *args)
    result.assert_unknown()
    assert result.summary == message


def test_expect_file_repeating_a_name_is_a_usage_error(tmp_path):
    path = tmp_path / "workers.txt"
    path.write_text("celery@web1\ncelery@web2\n")
    result = run_check(CHECK, "-b", "redis://127.0.0.1:1/0", "--expect-file", str(path),
                       "--expect", "celery@web2")
    result.assert_unknown()
    assert result.summary == "worker pattern celery@web2 is expected twice (a node counts once)"
    path.write_text("celery@web1=3\n")
    result = run_check(CHECK, "-b", "redis://127.0.0.1:1/0", "--expect-file", str(path))
    result.assert_unknown("celery@web1=3: a name without a glob is one node")


def test_bad_line_in_expect_file_is_unknown(tmp_path):
    path = tmp_path / "workers.txt"
    path.write_text("celery@web1\ncelery@web2=two\n")
    run_check(CHECK, "--expect-file", str(path)).assert_unknown("line 2", "invalid count")


# ----------------------------------------------------------------- stdin

FIXTURES = {
    "celery5-status.txt": 3,
    "celery5-status-color.txt": 3,
    "celery5-status.json": 3,
    "celery5-inspect-ping.txt": 3,
    "celery5-inspect-ping-color.txt": 3,
    "celery5-inspect-ping.json": 3,
    "celery5-status-none.txt": 0,
    "celery5-status-json-none.txt": 0,
    "celery52-status-amqp.txt": 2,
    "celery52-inspect-ping-amqp.json": 2,
    "celery52-inspect-ping-color-amqp.txt": 2,
    "celery4-status.txt": 2,
    "celery4-inspect-ping.txt": 2,
    "celery4-inspect-ping.json": 2,
    "celery4-status-none.txt": 0,
    "celery3-django-status.txt": 2,
}


# Celery's own output when it cannot ask the workers (see the README there):
# the outage itself, CRITICAL with Celery's words, not "not celery status".
FAILURES = {
    "celery5-inspect-ping-down-redis.txt":
        "celery cannot reach the broker: Error 111 connecting to 127.0.0.1:",
    "celery5-inspect-ping-down-amqp.txt": "celery cannot reach the broker: [Errno 111] Connection refused",
    "celery5-inspect-ping-hang-amqp.txt": "celery cannot reach the broker: timed out",
    "celery5-inspect-ping-json-refused-redis.txt":
        "celery cannot reach the broker: invalid username-password pair or user is disabled.",
    "celery5-inspect-ping-json-refused-amqp.txt":
        "celery could not run `inspect ping`: (0, 0): (403) ACCESS_REFUSED - Login was refused",
    "celery5-status-json-refused-amqp.txt":
        "celery could not run `status`: (0, 0): (403) ACCESS_REFUSED - Login was refused",
    "celery52-inspect-ping-down-redis.txt":
        "celery cannot reach the broker: Error 111 connecting to 127.0.0.1:",
    "celery52-status-down-redis.txt": "celery cannot reach the broker: Error 111 connecting to 127.0.0.1:",
    "celery52-inspect-ping-down-amqp.txt": "celery cannot reach the broker: [Errno 111] Connection refused",
    "celery52-status-down-amqp.txt": "celery cannot reach the broker: [Errno 111] Connection refused",
    "celery52-inspect-ping-hang-amqp.txt": "celery cannot reach the broker: timed out",
    "celery52-status-hang-amqp.txt": "celery cannot reach the broker: timed out",
    "celery52-inspect-ping-json-refused-redis.txt":
        "celery cannot reach the broker: WRONGPASS invalid username-password pair",
    "celery52-status-json-refused-redis.txt":
        "celery cannot reach the broker: WRONGPASS invalid username-password pair",
    "celery52-inspect-ping-json-refused-amqp.txt":
        "celery cannot reach the broker: (0, 0): (403) ACCESS_REFUSED - Login was refused",
    "celery52-status-json-refused-amqp.txt":
        "celery cannot reach the broker: (0, 0): (403) ACCESS_REFUSED - Login was refused",
}


def test_every_fixture_is_listed():
    assert sorted(list(FIXTURES) + list(FAILURES)) == \
        sorted(p.name for p in DATA.iterdir() if p.name != "README")


@pytest.mark.parametrize("name", sorted(FAILURES))
@pytest.mark.parametrize("inventory", [[], PAIR])
def test_celery_failing_to_reach_the_broker_is_critical_in_its_words(name, inventory):
    """`celery status 2>&1 | check_celery_workers --source stdin` with the
    broker down, refusing or silent: the outage, CRITICAL, in Celery's words."""
    result = run_check(CHECK, "--source", "stdin", *inventory, stdin=(DATA / name).read_text())
    result.assert_critical(FAILURES[name])
    assert result.first_line.startswith("CELERY_WORKERS CRITICAL - celery c"), result.first_line
    assert len(result.first_line) <= 120, result.first_line
    assert "Traceback" not in result.stdout and "Please make sure" not in result.stdout


@pytest.mark.parametrize("inventory, line", [
    ([], "CELERY_WORKERS CRITICAL - celery: No nodes replied within time constraint"),
    (PAIR, "CELERY_WORKERS CRITICAL - celery: No nodes replied within time constraint; "
           "2 of 2 expected workers missing: special-1@serverA, +1 more"),
    (["-c", "1:"], "CELERY_WORKERS CRITICAL - celery: No nodes replied within time constraint; "
                   "0 online (< 1)"),
])
def test_no_nodes_replied_is_critical_in_celerys_words(inventory, line):
    result = run_check(CHECK, "--source", "stdin", *inventory,
                       stdin=(DATA / "celery5-status-none.txt").read_text())
    result.assert_critical()
    assert result.first_line == line
    assert result.perfdata["online"].value == 0


@pytest.mark.parametrize("text, line", [
    ("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
     "ModuleNotFoundError: No module named 'proj'\n",
     "celery failed: ModuleNotFoundError: No module named 'proj'"),
    ("Usage: celery [OPTIONS] COMMAND [ARGS]...\nTry 'celery --help' for help.\n\n"
     "Error: Invalid value for '-A' / '--app':\nUnable to load celery application.\n",
     "stdin is not `celery status` or `celery inspect ping` output: 'Usage: celery [OPTIONS]"),
])
def test_celery_failing_for_its_own_reasons_stays_unknown(text, line):
    # not a fact about the fleet: the command itself is broken
    result = run_check(CHECK, "--source", "stdin", stdin=text)
    result.assert_unknown()
    assert result.summary.startswith(line), result.first_line


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_stdin_fixture_counts_nodes(name):
    result = run_check(CHECK, "--source", "stdin", stdin=(DATA / name).read_text())
    assert result.perfdata["online"].value == FIXTURES[name], result.stdout
    if FIXTURES[name]:
        result.assert_ok("%d workers online" % FIXTURES[name])
    else:
        result.assert_critical("No nodes replied within time constraint")


def test_stdin_with_inventory_names_missing_and_unexpected():
    text = (DATA / "celery5-status-color.txt").read_text()
    result = run_check(CHECK, "--source", "stdin", "--expect", "special-*@serverA=3",
                       "--expect", "celery@web1", stdin=text)
    # the status line is kept near 80 characters; -v has everything
    result.assert_critical("2 of 4 expected workers missing: celery@web1, +1 more",
                           "1 unexpected: other@serverB")
    assert len(result.first_line) < 120  # one name per problem at least
    result = run_check(CHECK, "--source", "stdin", "--expect", "special-*@serverA=3",
                       "--expect", "celery@web1", "-v", stdin=text)
    assert "MISSING special-*@serverA: 2 of 3 online" in result.long_output
    assert "MISSING celery@web1: 0 of 1 online" in result.long_output
    assert "other@serverB: online [unexpected]" in result.long_output


def test_stdin_no_nodes_with_inventory_is_critical():
    result = run_check(CHECK, "--source", "stdin", *PAIR,
                       stdin=(DATA / "celery5-status-none.txt").read_text())
    result.assert_critical("2 of 2 expected workers missing: special-1@serverA, +1 more")


@pytest.mark.parametrize("text, fragment", [
    ("", "no input on stdin"),
    ("   \n\n", "no input on stdin"),
    ("Usage: celery [OPTIONS] COMMAND [ARGS]...\nError: No such command 'stauts'.\n", "not `celery status`"),
    ("{\"a@b\": {\"ok\": \"pong\"", "not valid JSON"),
    ("[\"a@b\"]", "not `celery status`"),
    ("{\"a@b\": 5}", "not a ping reply"),
    ("->  a@b: OK\n\n3 nodes online.\n", "says 3 nodes online but lists 1"),
    ("\x00\x01\x02binary", "not `celery status`"),
])
def test_broken_stdin_is_unknown(text, fragment):
    run_check(CHECK, "--source", "stdin", stdin=text).assert_unknown(fragment)


# ------------------------------------------------------ pure logic (units)

def test_parse_expectation():
    assert I.parse_expectation("celery@web1") == ("celery@web1", 1)
    assert I.parse_expectation(" special-*@serverA=4 ") == ("special-*@serverA", 4)
    for bad in ("", "=3", "a b@c", "x@y=0", "x@y=-1", "x@y=2.5"):
        with pytest.raises(ValueError):
            I.parse_expectation(bad)


def test_read_expect_file(tmp_path):
    path = tmp_path / "inv"
    path.write_text("a@x=2  # two of them\n# comment\n\nb@y\n")
    assert I.read_expect_file(str(path)) == [("a@x", 2), ("b@y", 1)]


def test_inventory_literal_names_before_globs_and_surplus():
    inventory = I.Inventory([("w-*@a", 2), ("w-1@a", 1), ("celery@b", 1)])
    assert inventory.expected == 4
    verdict = inventory.judge(["w-1@a", "w-2@a", "w-3@a", "celery@b", "odd@c"])
    assert verdict.missing == 0
    assert verdict.unmatched == ["odd@c"]
    assert verdict.unexpected == 1
    verdict = inventory.judge(["w-1@a", "w-2@a", "w-3@a", "w-4@a"])
    assert [s.missing_text() for s in verdict.missing_patterns] == ["celery@b"]
    assert [s.surplus_text() for s in verdict.surplus] == ["w-*@a (3, not 2)"]
    assert verdict.unexpected == 1
    assert inventory.complete(["w-1@a", "w-2@a", "w-3@a", "celery@b"])
    assert not inventory.complete(["w-1@a", "w-2@a", "celery@b"])


def test_inventory_refuses_to_count_a_node_twice_and_is_case_sensitive():
    # Summing a repeated pattern expected one node twice: a lie.
    for bad in ([("w@a", 1), ("w@a", 1)], [("w*@a", 2), ("w*@a", 1)], [("w@a", 2)]):
        with pytest.raises(ValueError):
            I.Inventory(bad)
    inventory = I.Inventory([("w@a", 1), ("W@A", 1)])
    assert inventory.expected == 2
    assert inventory.judge(["W@A"]).missing == 1


def test_shorten_keeps_at_least_one_item():
    assert I.shorten(["a", "b", "c"], 80) == "a, b, c"
    assert I.shorten(["alpha@x", "beta@y", "gamma@z"], 16) == "alpha@x, +2 more"
    assert I.shorten(["a-very-long-node-name@host"], 5) == "a-very-long-node-name@host"


def test_grace_bounds():
    assert pidbox.grace(0.001) == pidbox.GRACE_MIN
    assert pidbox.grace(0.04) == pytest.approx(0.12)
    assert pidbox.grace(5) == pidbox.GRACE_MAX
    # many replies: 3 x the mean time between them, not 3 x the slowest
    assert pidbox.grace(0.1, 5) == pytest.approx(0.06)
    assert pidbox.grace(0.4, 50) == pidbox.GRACE_MIN


def test_replies_delivered_together_are_all_read_in_order(redis_url, redis_client):
    """Replies that landed while the check was busy (more than one batch of
    pipelined pops) all come, oldest first, and none is left behind; the
    reply list and its bindings are gone afterwards."""
    import base64

    from celery_checks.connect.targets import Target

    count = 2 * pidbox.TAKEN + 5
    with pidbox.RedisBroadcast(Target(redis_url), timeout=5, ttl=1) as session:
        for n in range(count):  # as a worker replies: LPUSH on the list's left
            body = base64.b64encode(json.dumps({"w%d@h" % n: {"ok": "pong"}}).encode()).decode()
            redis_client.lpush(session.queue, json.dumps({
                "body": body, "content-type": "application/json", "headers": {"ticket": "t"},
                "properties": {"body_encoding": "base64"}}))
        end = time.monotonic() + 0.4
        got = [body for body, _headers in session.replies(lambda: end)]
        assert got == [{"w%d@h" % n: {"ok": "pong"}} for n in range(count)]
        assert not redis_client.exists(session.queue)
    assert redis_client.keys("*") == []  # this test's own DB: the bindings went too


def test_parse_status_forms():
    names = lambda text: [(r.name, r.ok) for r in stdin.parse_status(text)]
    assert names("->  celery@a: OK\n") == [("celery@a", True)]
    assert names("-> celery@a: OK\n        pong\n\n1 node online.\n") == [("celery@a", True)]
    assert names("\x1b[37m\x1b[1m->\x1b[0m  \x1b[36m\x1b[1mcelery@a: \x1b[0m\x1b[32m\x1b[1mOK\x1b[0m\r\n") \
        == [("celery@a", True)]
    assert names("celery@a: OK\n") == [("celery@a", True)]
    assert names("->  celery@a: ERROR: no route\n") == [("celery@a", False)]
    assert names('{"celery@a": {"ok": "pong"}}\n\n1 node online.\n') == [("celery@a", True)]
    assert names('{"celery@a": {"error": "boom"}}') == [("celery@a", False)]
    assert names("Error: No nodes replied within time constraint\n") == []
    assert names("{}") == []
    for bad in ("hello", "", "1 node online.\n", "[]"):
        with pytest.raises(CheckError):
            stdin.parse_status(bad)


def test_parse_status_on_every_fixture_gives_real_node_names():
    for name, count in FIXTURES.items():
        replies = stdin.parse_status((DATA / name).read_text())
        assert len(replies) == count, name
        assert all("@" in r.name and r.ok for r in replies), name


# ------------------------------------------------------ versions (events)

def other_celery_python():
    """An interpreter whose Celery differs from ours: Debian's 5.2 when the
    tests run on the newest release, the dev venv's when they run on Debian."""
    import celery

    for python in ("/usr/bin/python3", str(ROOT / ".venv" / "bin" / "python")):
        proc = subprocess.run([python, "-c", "import celery; print(celery.__version__)"],
                              capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip() != celery.__version__:
            return python, proc.stdout.strip()
    prerequisites.require("debian-python")
    pytest.fail("no second Celery version installed (Debian's python3-celery or .venv)")


def test_versions_differ_state_on_events(pool, module_redis, tmp_path):
    url = module_redis[0]
    python, version = other_celery_python()
    log = open(tmp_path / "old.log", "w")
    env = dict(os.environ, CELERY_BROKER_URL=url, PYTHONPATH=str(ROOT), CELERY_CHECKS_DISABLE="1")
    proc = subprocess.Popen(
        [python, "-m", "celery", "-A", "tests.app", "worker", "-n", "old@serverC", "-P", "solo",
         "-Q", "old-q", "--without-mingle", "--without-gossip", "-l", "INFO"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(tmp_path), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in (tmp_path / "old.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "old.log").read_text()
            time.sleep(0.1)
        inventory = ["--expect", "special-*@serverA=2", "--expect", "old@serverC", "--source", "events"]
        result = run_check(CHECK, "-b", url, *inventory, "-v")
        result.assert_ok("3 workers online")
        assert "old@serverC: online" in result.stdout and "celery %s" % version in result.stdout
        result = run_check(CHECK, "-b", url, *inventory, "--versions-differ-state", "warning")
        result.assert_warning("workers run celery ", version)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


# --------------------------------------- transport options (Redis, -O)

def test_transport_options_reach_the_workers_keys(celery_worker, redis_url, redis_client):
    """A worker with a global_keyprefix and its own separator: found with
    the same -O options, on both sources; without them the broadcast goes
    to other channels and nobody answers. Nothing of ours stays behind."""
    options = {"global_keyprefix": "app1:", "sep": ":"}
    celery_worker.start(redis_url, name="prefixed@serverD", queues=("pq",),
                        env={"CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps(options)})
    before = set(redis_client.keys("*"))
    assert before and all(key.startswith(b"app1:") for key in before), before
    given = ["-O", "global_keyprefix=app1:", "-O", "sep=:"]
    for source in ("ping", "events"):
        wait = ["--window", "2.5"] if source == "events" else []
        result = run_check(CHECK, "-b", redis_url, "--source", source, *given,
                           "--expect", "prefixed@serverD", *wait)
        result.assert_ok("1 worker online, all 1 expected present")
    run_check(CHECK, "-b", redis_url, "--expect", "prefixed@serverD", "--reply-timeout", "0.5") \
        .assert_critical("prefixed@serverD")
    assert set(redis_client.keys("*")) <= before


def test_nobody_answering_names_the_prefix_or_db_the_workers_are_in(own_redis, celery_worker):
    """A wrong or missing -O global_keyprefix, or a wrong DB number: nobody
    answers, and the line says where the workers are bound instead (their
    celery.pidbox bindings), rather than only "no worker answered", which
    sends the operator to restart healthy workers. A server of the test's
    own: no other test's workers in its other DBs."""

    server = own_redis().start()
    prefix = ["-O", "global_keyprefix=app1:"]
    celery_worker.start(server.url(2), name="prefixed@serverE", queues=("pq",),
                        env={"CELERY_BROKER_TRANSPORT_OPTIONS": '{"global_keyprefix": "app1:"}'})
    wait_for(lambda: run_check(CHECK, "-b", server.url(2), *prefix, "--expect",
                               "prefixed@serverE").rc == 0, 20, "the worker to answer")
    cases = [
        ([server.url(2)], "no worker answered in DB 2 under key prefix ''; workers found "
                          "under prefix 'app1:' (-O global_keyprefix=app1:)"),
        ([server.url(0)] + prefix, "no worker answered in DB 0 under key prefix 'app1:'; "
                                   "workers found in DB 2"),
        (["redis://127.0.0.1:%d" % server.port], "no worker answered in DB 0 under key prefix "
                                                 "''; workers found in DB 2 under prefix 'app1:'"),
    ]
    for (url, *options), line in cases:
        for source, wait in (("ping", "--reply-timeout"), ("events", "--window")):
            result = run_check(CHECK, "-b", url, *options, "--source", source, wait, "1")
            result.assert_critical()
            assert result.first_line == "CELERY_WORKERS CRITICAL - " + line, result.describe(source)
            assert result.perfdata["online"].value == 0
    # With an inventory, what is missing is said as well.
    run_check(CHECK, "-b", server.url(0), "--expect", "prefixed@serverE", "--reply-timeout", "1") \
        .assert_critical("workers found in DB 2 under prefix 'app1:'; 1 of 1 expected worker "
                         "missing: prefixed@serverE")


def test_redis_envelope_decoding():
    import base64

    from celery_checks.connect import pidbox

    body = base64.b64encode(b'{"celery@a": {"ok": "pong"}}').decode()
    envelope = {"body": body, "content-type": "application/json",
                "properties": {"body_encoding": "base64"}, "headers": {"ticket": "t"}}
    assert pidbox.envelope_body(envelope) == {"celery@a": {"ok": "pong"}}
    assert pidbox.envelope_body(dict(envelope, **{"content-type": "application/x-python-serialize"})) is None
    assert pidbox.envelope_body(dict(envelope, body="%%% not base64")) is None
    assert pidbox.envelope_body({"body": "{}", "content-type": "application/json", "properties": {}}) == {}


def test_counts_are_worded_with_plural():
    one = "->  a@b: OK\n\n1 node online.\n"
    result = run_check(CHECK, "--source", "stdin", "--expect", "a@b", stdin=one)
    assert result.first_line == "CELERY_WORKERS OK - 1 worker online, all 1 expected present"
    result = run_check(CHECK, "--source", "stdin", "--expect", "c@d", "--unexpected-state", "ok",
                       stdin=one)
    assert result.summary == "1 of 1 expected worker missing: c@d"
    result = run_check(CHECK, "--source", "stdin", "--expect", "a@b", "--expect", "c@d", stdin=one)
    assert result.summary == "1 of 2 expected workers missing: c@d"
