"""Faults: every broker-using executable against every way a broker or store
fails, on loopback, with real Redis and RabbitMQ.

Each answer must be the documented one (celery_checks/policy.py, README
"Reliability"): a check says CRITICAL on one line naming the redacted URL
and the reason, within -t + 1 s, without a traceback or the password; the
trigger says the same on one stderr line and exits 1.

The matrix is parametrised over the executables pyproject.toml declares
(those whose --help offers --broker or --store), so a new one is held to it
at once; VARIANTS says how to aim one at the URL under test. All runs of the
matrix go a few at a time in one module fixture, the tests then judge one
answer each.

Worker faults (SIGKILL, SIGSTOP, cut from its broker while the broker stays
up) and broker restarts during a run follow below the matrix.
"""

import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from celery_checks.plugin.secrets import redact_url
from tests.kit import project
from tests.kit import rabbitmq as rabbitmq_kit
from tests.kit.faults import Listener, TcpProxy, closed_port
from tests.kit.plugin import assert_within_timeout, broker_scripts, run_check, run_parallel
from tests.kit.redis_servers import RedisServer
from tests.kit.waiting import wait_for

T = 3  # -t for every run here: the answer must come within T + 1 s
SECRET = "Fault-s3cret-pw"
RIGHT = "Right-s3cret-pw"
PID = os.getpid()
ACL_USER = "cc-faults-%d" % PID
NOPERM_USER = "cc-faults-noperm-%d" % PID
BROKER_SCRIPTS = broker_scripts()


# How to aim each executable at the URL under test: (variant, argv builder).
# The builder gets the transport ("redis"/"amqp"), the URL and a working
# Redis URL (for the heartbeat store where the broker is the fault); None =
# this executable never talks to such a URL. Unknown executables get -b URL.
def _queue_name():
    return "cc-fault-%s" % uuid.uuid4().hex[:6]


VARIANTS = {
    "check_celery_heartbeat": [
        # it reads only its Redis store, never an AMQP broker
        ("store", lambda kind, url, good: ["--store", url] if kind == "redis" else None),
    ],
    "check_celery_tasks": [
        # the same: its Redis store only
        ("store", lambda kind, url, good: ["--store", url] if kind == "redis" else None),
    ],
    "check_celery_workers": [
        ("ping", lambda kind, url, good: ["-b", url]),
        ("events", lambda kind, url, good: ["-b", url, "--source", "events", "--window", "1"]),
    ],
    "trigger_celery_heartbeat": [
        # the store is the broker: the store write fails first
        ("store", lambda kind, url, good: ["-b", url, "-q", _queue_name()] if kind == "redis" else None),
        # a working store, a failing broker: the publish fails
        ("publish", lambda kind, url, good: ["-b", url, "--store", good, "-q", _queue_name()]),
    ],
}
DEFAULT_VARIANTS = [("", lambda kind, url, good: ["-b", url])]


def variants(name):
    return VARIANTS.get(name, DEFAULT_VARIANTS)


# (fault, transport, URL template, what the reason must say)
FAULTS = [
    ("refused", "redis", "redis://:{pw}@127.0.0.1:{closed}/0", r"[Rr]efused"),
    ("unreachable-host", "redis", "redis://:{pw}@127.0.0.2:{closed}/0", r"[Rr]efused|[Uu]nreachable"),
    ("silent", "redis", "redis://:{pw}@127.0.0.1:{silent}/0", r"did not answer|[Tt]ime"),
    ("hangup", "redis", "redis://:{pw}@127.0.0.1:{hangup}/0", r"[Cc]losed|reset|lost"),
    ("wrong-password", "redis", "redis://{acl}:{pw}@{redis}/0", r"authentication|password"),
    ("unknown-acl-user", "redis", "redis://nobody-{pid}:{pw}@{redis}/0", r"authentication|password"),
    ("no-permission", "redis", "redis://{noperm}:{right}@{redis}/0", r"NOPERM|permission"),
    ("wrong-db", "redis", "redis://:{pw}@{redis}/99", r"DB index"),
    ("tls-to-plaintext", "redis", "rediss://:{pw}@{redis}/0?ssl_cert_reqs=none",
     r"did not answer|[Tt]imeout|SSL|TLS|handshake"),
    ("refused", "amqp", "amqp://guest:{pw}@127.0.0.1:{closed}//", r"[Rr]efused"),
    ("unreachable-host", "amqp", "amqp://guest:{pw}@127.0.0.2:{closed}//", r"[Rr]efused|[Uu]nreachable"),
    ("silent", "amqp", "amqp://guest:{pw}@127.0.0.1:{silent}//", r"did not answer|in time|[Tt]ime"),
    ("hangup", "amqp", "amqp://guest:{pw}@127.0.0.1:{hangup}//", r"[Cc]losed|reset|lost"),
    ("wrong-password", "amqp", "amqp://guest:{pw}@{amqp}/{vhost}",
     r"authentication|ACCESS_REFUSED"),
    ("wrong-vhost", "amqp", "amqp://guest:guest@{amqp}/no-such-vhost-{pid}", r"vhost"),
    ("tls-to-plaintext", "amqp", "amqps://guest:{pw}@{amqp}//", r"SSL|TLS|handshake"),
]

#: (fault, transport) of the cases whose answer is the check's own -t
#: expiring (nothing answers): idle waits, run a few at a time beside the rest.
WAITING = {("silent", "redis"), ("silent", "amqp"), ("tls-to-plaintext", "redis")}

CASES = [
    pytest.param(fault, kind, template, reason, name, variant, builder,
                 id="%s-%s-%s%s" % (kind, fault, name, "-" + variant if variant else ""))
    for fault, kind, template, reason in FAULTS
    for name in BROKER_SCRIPTS
    for variant, builder in variants(name)
    if builder(kind, "x://", "x://") is not None
]


@pytest.fixture(scope="module")
def acl_users(redis_server):
    """Throwaway ACL users on the suite's Redis, deleted afterwards."""
    client = redis_server.client()
    client.execute_command("ACL", "SETUSER", ACL_USER, "on", ">" + RIGHT, "~*", "&*", "+@all")
    client.execute_command("ACL", "SETUSER", NOPERM_USER, "on", ">" + RIGHT, "-@all")
    yield
    client.execute_command("ACL", "DELUSER", ACL_USER, NOPERM_USER)
    client.close()


@pytest.fixture(scope="module")
def store_db(redis_dbs):
    """A Redis DB for the trigger's working store."""
    with redis_dbs.take(from_top=True) as number:
        yield number


@pytest.fixture(scope="module")
def matrix(acl_users, store_db, rabbitmq_vhost, redis_server):
    """Every case of CASES run once, a few at a time: {case id: (url, Result)}."""
    silent, hangup = Listener("silent"), Listener("hangup")
    values = dict(pw=SECRET, right=RIGHT, closed=closed_port(), silent=silent.port,
                  hangup=hangup.port, acl=ACL_USER, noperm=NOPERM_USER, pid=PID,
                  vhost=rabbitmq_vhost, redis="%s:%d" % (redis_server.host, redis_server.port),
                  amqp="%s:%d" % (rabbitmq_kit.HOST, rabbitmq_kit.PORT))
    good_store = redis_server.url(store_db)
    jobs, keys = [], []
    for case in CASES:
        fault, kind, template, reason, name, variant, builder = case.values
        url = template.format(**values)
        jobs.append((name, builder(kind, url, good_store) + ["-t", str(T)], {}))
        keys.append((case.id, url))
    try:
        # The cases nothing answers wait out their own -t, idle: they run
        # beside the others, a few at a time of their own, instead of
        # holding the slots of the busy ones.
        waiting = [index for index, case in enumerate(CASES) if case.values[:2] in WAITING]
        busy = [index for index in range(len(jobs)) if index not in waiting]
        with ThreadPoolExecutor(2) as both:
            waited = both.submit(run_parallel, [jobs[i] for i in waiting], parallel=4)
            ran = both.submit(run_parallel, [jobs[i] for i in busy], parallel=3)
            results = [None] * len(jobs)
            for indexes, future in ((waiting, waited), (busy, ran)):
                for index, result in zip(indexes, future.result()):
                    results[index] = result
        # The bound is on the check, not on a host that other processes
        # load: a case only over it is measured once more, alone.
        for index, (job, result) in enumerate(zip(jobs, results)):
            if result.elapsed > T + 1:
                results[index] = run_check(job[0], *job[1])
    finally:
        silent.close()
        hangup.close()
    return {key: (url, result) for (key, url), result in zip(keys, results)}


def shown_forms(url):
    """How the URL may appear: password masked (and the user too when it
    equals a registered secret, e.g. guest:guest)."""
    shown = redact_url(url)
    forms = {shown}
    if "://" in shown and "@" in shown:
        scheme, rest = shown.split("://", 1)
        forms.add("%s://***:***@%s" % (scheme, rest.split("@", 1)[1]))
    return forms


def assert_one_line_answer(result, url, reason):
    """The fault's answer: CRITICAL from a check, exit 1 from the trigger."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, result.describe("traceback")
    assert SECRET not in output and RIGHT not in output, result.describe("password leaked")
    assert_within_timeout(result, T)
    if os.path.basename(result.args[0]).startswith("check_"):
        result.assert_critical()
        lines = result.stdout.splitlines()
        assert len(lines) == 1 and result.stderr == "", result.describe("one line")
        line = result.first_line
        assert not result.perfdata
    else:
        assert result.rc == 1, result.describe("the trigger exits 1 on failure")
        lines = result.stderr.splitlines()
        assert result.stdout == "" and len(lines) == 1, result.describe("one line on stderr")
        line = lines[0]
    assert any(form in line for form in shown_forms(url)), result.describe("redacted URL")
    assert re.search(reason, line), result.describe("reason %r" % reason)


@pytest.mark.parametrize("fault,kind,template,reason,name,variant,builder", CASES)
def test_broker_fault_is_the_documented_answer(matrix, request, fault, kind, template, reason,
                                               name, variant, builder):
    case_id = request.node.callspec.id
    url, result = matrix[case_id]
    assert_one_line_answer(result, url, reason)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("name", BROKER_SCRIPTS)
@pytest.mark.parametrize("url", ["ftp://host/x", "redis://127.0.0.1:%d/abc" % closed_port(), "no-scheme"])
def test_bad_broker_url_is_usage_not_outage(name, url):
    """A URL we cannot use is our configuration error: UNKNOWN (the trigger:
    its documented usage exit 2), never CRITICAL, never a traceback."""
    args = ["--store", url] if name in project.STORE_CHECKS else ["-b", url]
    result = run_check(name, *args, "-t", str(T))
    assert "Traceback" not in result.stdout + result.stderr, result.describe("traceback")
    assert "Traceback" not in result.stdout + result.stderr, result.describe("traceback")
    if name.startswith("check_"):
        result.assert_unknown()
        assert result.elapsed < T, result.describe("judged before connecting")
    else:  # trigger: usage (exit 2) or a one-line failure (exit 1), on stderr
        assert result.rc in (1, 2) and result.stdout == "", result.describe("trigger")
        assert result.stderr.strip(), result.describe("says why")


# ------------------------------------------------ worker faults across checks

# tests/test_workers.py proves SIGSTOP and SIGKILL for every source of
# check_celery_workers, test_pulse_emitter.py SIGSTOP and a stopped private
# broker for the pulse, test_heartbeat.py a stopped worker for the heartbeat.
# Here: one worker and every check that can see it at once, for the two
# faults none of them covers across checks: the worker cut from a broker
# that stays up (its connection goes through a proxy we cut), and SIGKILL
# (no clean shutdown: the pulse file stays, unmarked).

def _pulse_env(path):
    return {"CELERY_CHECKS_PULSE_FILE": str(path), "CELERY_CHECKS_PULSE_INTERVAL": "0.3"}


def _heartbeat_started(client, queue):
    from celery_checks.store import heartbeats as heartbeat_store

    fields = client.hgetall(heartbeat_store.key_for(queue))
    return fields.get(b"started_id") and fields.get(b"started_id") == fields.get(b"published_id")


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["cut-from-broker", "sigkill"])
def test_worker_fault_seen_by_every_check(fault, redis_server, redis_url, redis_client, celery_worker,
                                         tmp_path):
    proxy = TcpProxy(redis_server.port)
    try:
        _worker_fault(fault, proxy, redis_url, redis_client, celery_worker, tmp_path)
    finally:
        proxy.close()


def _worker_fault(fault, proxy, redis_url, redis_client, celery_worker, tmp_path):
    db = redis_url.rsplit("/", 1)[1]
    via_proxy = "redis://127.0.0.1:%d/%s" % (proxy.port, db)
    queue, pulse = "cc-wf-%s" % uuid.uuid4().hex[:6], tmp_path / "worker.pulse"
    worker = celery_worker.start(via_proxy, queues=[queue], env=_pulse_env(pulse))
    wait_for(pulse.exists, 10, "the pulse file")
    # Every check sees the worker healthy first (heartbeat through the queue).
    assert run_check("trigger_celery_heartbeat", "-b", redis_url, "-q", queue).rc == 0
    wait_for(lambda: _heartbeat_started(redis_client, queue), 10, "the first heartbeat")
    checks = [
        ("check_celery_workers", ["-b", redis_url, "--expect", worker.name, "-t", "5",
                                  "--reply-timeout", "3"], {}),
        ("check_celery_heartbeat", ["--store", redis_url, "-q", queue, "--latency-critical", "1.5"], {}),
        ("check_celery_pulsefile", ["-f", pulse, "-w", "1", "-c", "2"], {}),
    ]
    # (on Redis the worker subscribes to broadcasts a moment after "ready.")
    wait_for(lambda: run_check(checks[0][0], *checks[0][1]).rc == 0, 15, "the worker's ping reply")
    # The first heartbeat may have waited for the worker to start, a loaded
    # host may delay a pulse: the small limits judge only after the fault.
    baseline = [checks[0],
                ("check_celery_heartbeat", ["--store", redis_url, "-q", queue], {}),
                ("check_celery_pulsefile", ["-f", pulse], {})]
    for result in run_parallel(baseline):
        result.assert_ok()

    faulted = time.monotonic()
    if fault == "sigkill":
        worker.kill()
    else:
        proxy.refuse()  # the broker stays up for the checks
    # A heartbeat published now is never started; the pulse stops.
    assert run_check("trigger_celery_heartbeat", "-b", redis_url, "-q", queue).rc == 0
    published = time.monotonic()
    # Within one run, the workers check names the node.
    run_check(checks[0][0], *checks[0][1]).assert_critical(worker.name)
    time.sleep(max(0.0, faulted + 2.3 - time.monotonic(), published + 2.0 - time.monotonic()))
    workers, heartbeat, pulsefile = run_parallel(checks)
    workers.assert_critical(worker.name)
    heartbeat.assert_critical(queue, "stuck")
    pulsefile.assert_critical("old")
    if fault == "cut-from-broker":
        assert worker.process.poll() is None, "the worker is alive, only cut off"


# ------------------------------------------ the broker restarted during a run

def _valid_answer(result, name, timeout):
    """What any run must give, whatever moment the broker went away."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, result.describe("traceback")
    assert_within_timeout(result, timeout)
    if name.startswith("check_"):
        assert result.rc in (0, 1, 2, 3), result.describe("exit code")
        prefix = name.upper().replace("CHECK_", "", 1) + " "
        assert re.match(re.escape(prefix) + r"(OK|WARNING|CRITICAL|UNKNOWN) - \S",
                        result.first_line), result.describe("status line")
        if result.rc == 3:  # the broker going away is an outage, never "unknown"
            assert "timed out" not in result.first_line, result.describe("ran into -t")
    else:
        assert result.rc in (0, 1), result.describe("trigger exit code")
        assert len((result.stdout if result.rc == 0 else result.stderr).splitlines()) == 1


RESTART_RUNS = {
    # long enough to be mid-run when the broker goes away
    "check_celery_workers": [["--reply-timeout", "2"], ["--source", "events", "--window", "2"]],
    "check_celery_heartbeat": [["--store", "{url}"]],
    "check_celery_tasks": [["--store", "{url}"]],
    "trigger_celery_heartbeat": [["-q", "cc-restart"]],
}


def _restart_jobs(url):
    jobs = []
    for name in BROKER_SCRIPTS:
        for extra in RESTART_RUNS.get(name, [[]]):
            args = [a.format(url=url) for a in extra]
            if "--store" not in args:
                args = ["-b", url] + args
            jobs.append((name, args + ["-t", "4"]))
    return jobs


def _loop_during(jobs, action):
    """Run each job over and over in its own thread while ``action`` runs;
    return every (name, Result)."""
    results, stop = [], threading.Event()

    def loop(name, args):
        while True:
            results.append((name, run_check(name, *args)))
            if stop.is_set():
                return

    threads = [threading.Thread(target=loop, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    try:
        action()
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    return results


@pytest.mark.slow
def test_redis_restarted_during_runs(tmp_path):
    """A private redis-server (never the shared one) killed and started again
    while every broker-using executable runs in a loop against it."""
    server = RedisServer(tmp_path).start()
    try:
        def restart():
            time.sleep(0.8)
            server.restart(down_for=0.7)
            time.sleep(1.5)

        results = _loop_during(_restart_jobs(server.url(0)), restart)
    finally:
        server.stop()
    assert {name for name, _ in results} == set(BROKER_SCRIPTS)
    for name, result in results:
        _valid_answer(result, name, 4)
    # Some runs met the outage and said so.
    assert any(r.rc == 2 or (n.startswith("trigger") and r.rc == 1) for n, r in results)


@pytest.mark.slow
def test_rabbitmq_connections_dropped_during_runs(rabbitmq, redis_url):
    """RabbitMQ: restarting a private node is too heavy for the suite, so a
    loopback proxy in front of the shared node drops every connection
    mid-run and refuses new ones for a moment: what a restart looks like
    from the client side."""
    proxy = TcpProxy(rabbitmq_kit.PORT, rabbitmq_kit.HOST)
    url = "amqp://guest:guest@127.0.0.1:%d/%s" % (proxy.port, rabbitmq.vhost)
    store = redis_url  # the trigger's store
    jobs = []
    for name in BROKER_SCRIPTS:
        if name in project.STORE_CHECKS:
            continue  # reads only its Redis store
        for extra in RESTART_RUNS.get(name, [[]]):
            if "--store" in extra:
                continue
            args = ["-b", url] + extra + ["-t", "4"]
            if name.startswith("trigger"):
                args += ["--store", store]
            jobs.append((name, args))
    try:
        def drop():
            time.sleep(1.0)
            proxy.refuse()
            time.sleep(0.7)
            proxy.restore()
            time.sleep(1.5)

        results = _loop_during(jobs, drop)
    finally:
        proxy.close()
        rabbitmq.channel().queue_delete("cc-restart")
    for name, result in results:
        _valid_answer(result, name, 4)
    assert any(r.rc in (1, 2) for _, r in results)


def test_rabbitmq_hanging_after_the_handshake_is_critical_within_t(rabbitmq):
    """The handshake completes, then the broker never answers the passive
    queue.declare (AMQP method 50.10): pika has no per-call timeout there,
    so the -t alarm ends the wait, and it is the broker's silence that is
    reported (CRITICAL), not our own failure."""
    queue = rabbitmq.queue_name("hang")
    rabbitmq.channel().queue_declare(queue)
    proxy = TcpProxy(rabbitmq_kit.PORT, rabbitmq_kit.HOST, freeze_on=b"\x00\x32\x00\x0a")
    url = "amqp://guest:guest@127.0.0.1:%d/%s" % (proxy.port, rabbitmq.vhost)
    try:
        result = run_check("check_celery_queue", "-q", queue, "-t", "2",
                           extra_env={"CELERY_BROKER_URL": url})
    finally:
        proxy.close()
    result.assert_critical("did not answer before the -t timeout")
    assert_within_timeout(result, 2)
