"""Nothing changes, nothing leaks: the broker after many runs, passwords in
every output.

- 200 runs of each broker-reading check (8 at a time) against real workers
  on Redis and RabbitMQ: the Redis keys of the test's DB, the queues of the
  session vhost, the waiting messages (count and order) and the broker's
  connections are the same afterwards. Reply queues (ping) and event queues
  (events) are deleted by the check itself; nothing is left to expire.
- 50 checks at once against the same broker all answer correctly.
- A password given by --broker, --broker-file, $CELERY_BROKER_URL or --store
  never appears in stdout or stderr, at -v 0 to 3 (the trigger: -v, its only
  level, prints the traceback), on success and on failure; --broker-file and
  the variable keep it out of /proc/<pid>/cmdline.
- Passwords that are words of our own output (celery, OK, queue, messages,
  wrong, password, x, ab, the queue's and the user's name), really checked
  by a Redis ACL user and a RabbitMQ user of ours: every executable that
  takes a URL, every way of giving it, on paths that succeed and paths that
  fail, at every -v, prints exactly what it prints with a random password
  (durations aside), which never shows.

The trigger writes by design (one heartbeat and one store record per
queue) and is left out of the "nothing changes" runs.
"""

import json
import os
import re
import subprocess
import time
import uuid

import pytest

from celery_checks.store import tasks as task_store
from tests.kit import project
from tests.kit import rabbitmq as rabbitmq_kit
from tests.kit.faults import Listener, closed_port
from tests.kit.plugin import broker_scripts, executable, fork_runs, help_text, run_check, run_parallel
from tests.kit.producers import publish
from tests.kit.waiting import wait_for
from tests.kit.workers import WorkerFactory

RUNS = 200
PID = os.getpid()
SECRET = "Leak-s3cret-%d" % PID
REDIS_USER = "cc-leaks-%d" % PID
AMQP_USER = "cc-leaks-%d" % PID
BROKER_SCRIPTS = broker_scripts()


# ------------------------------------------------------------ the snapshot

def redis_state(client, db):
    """Every key of the DB with its type and content, and our DB's clients."""
    keys = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key).decode()
        if kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "hash":
            value = sorted(client.hgetall(key).items())
        elif kind == "zset":
            # members only: kombu >= 5.5 keeps the expiry deadline of the
            # workers' own pidbox bindings here and the workers renew it
            value = sorted(client.zrange(key, 0, -1))
        else:
            value = client.get(key) if kind == "string" else kind
        keys[key] = (kind, value)
    clients = [c for c in client.client_list() if str(c.get("db")) == str(db)
               and c.get("cmd") not in ("client", "client|list")]
    return keys, len(clients)


def rabbit_state(vhost):
    """The vhost's queues with their ready counts, and its connections."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages_ready",
                          "--no-table-headers"], capture_output=True, text=True, check=True).stdout
    queues = sorted(tuple(line.split("\t")) for line in out.splitlines() if line.strip())
    out = subprocess.run(["rabbitmqctl", "-q", "list_connections", "vhost", "--no-table-headers"],
                         capture_output=True, text=True, check=True).stdout
    return queues, sum(1 for line in out.splitlines() if line.strip() == vhost)


def queue_bodies(url, queue):
    """The messages of a RabbitMQ queue, in order, without consuming them
    for good: got, then all nacked back in one go (requeue keeps order).
    On a connection of its own, closed at once: the connection count of the
    vhost is part of the snapshot."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        bodies = []
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            bodies.append(body)
        if bodies:
            channel.basic_nack(0, multiple=True, requeue=True)
        return bodies
    finally:
        connection.close()


@pytest.fixture(scope="module")
def brokers(tmp_path_factory, rabbitmq_vhost, redis_server, redis_dbs):
    """A worker on each broker, 5 messages waiting in a queue nobody
    consumes on each, a heartbeat record in the store: shared by the tests
    of this module, which change nothing."""
    import pika

    waiting = "leak-wait-%s" % uuid.uuid4().hex[:6]
    factory = WorkerFactory(tmp_path_factory.mktemp("leak-workers"))
    rabbitmq = rabbitmq_kit.Queues(rabbitmq_vhost)
    with redis_dbs.take(from_top=True) as db:
        redis_url = redis_server.url(db)
        client = redis_server.client(db)
        try:
            workers = {kind: factory.start(url, queues=["leak-work"], wait=False)
                       for kind, url in (("redis", redis_url), ("amqp", rabbitmq.url))}
            # 5 messages waiting on each broker, as kombu lays them out on Redis
            for number in range(5):
                client.lpush(waiting, json.dumps({"body": number}))
            channel = rabbitmq.channel()
            channel.queue_declare(waiting, durable=True)
            rabbitmq.queues.append(waiting)
            for number in range(5):
                channel.basic_publish("", waiting, json.dumps({"body": number}),
                                      pika.BasicProperties(delivery_mode=2))
            for worker in workers.values():
                factory.wait_ready(worker, 60, "ready.")
            assert run_check("trigger_celery_heartbeat", "-b", redis_url, "-q", "leak-work").rc == 0
            rabbitmq.queues.append("leak-work")
            # the worker records the heartbeat task it ran (check_celery_tasks)
            wait_for(lambda: client.sismember(task_store.index_key(), "celery_checks.heartbeat"),
                     20, "the heartbeat task's record")
            # On Redis a worker subscribes to broadcasts a moment after "ready.".
            for kind, url in (("redis", redis_url), ("amqp", rabbitmq.url)):
                wait_for(lambda: run_check("check_celery_workers", "-b", url, "--expect",
                                           workers[kind].name).rc == 0, 20, "%s worker" % kind)
            yield dict(redis=redis_url, amqp=rabbitmq.url, workers=workers, waiting=waiting,
                       client=client, db=db, vhost=rabbitmq_vhost, rabbitmq=rabbitmq,
                       state=str(tmp_path_factory.mktemp("leak-state") / "tasks.json"))
        finally:
            factory.stop_all()
            rabbitmq.cleanup()
            client.close()


def read_only_jobs(b, runs):
    """``runs`` runs of each check that reads a broker, spread over the
    brokers and sources it supports, each with the answer it must give."""
    per = {
        "check_celery_queue": [
            (["-b", b["redis"], "-q", b["waiting"], "--unacked-per-queue"], "OK"),
            (["-b", b["amqp"], "-q", b["waiting"], "--orphan-state", "ok"], "OK"),
        ],
        "check_celery_heartbeat": [(["--store", b["redis"], "-q", "leak-work"], "OK")],
        # the heartbeat the fixture sent is a task the worker recorded
        "check_celery_tasks": [(["--store", b["redis"], "-T", "celery_checks.heartbeat",
                                 "--state-file", b["state"]], "OK")],
        "check_celery_workers": [
            (["-b", b[kind], "--expect", b["workers"][kind].name, "--source", source,
              wait, "3", "-t", "10"], "OK")
            for kind in ("redis", "amqp")
            for source, wait in (("ping", "--reply-timeout"), ("events", "--window"))
        ],
    }
    jobs = []
    for name in BROKER_SCRIPTS:
        if not name.startswith("check_"):
            continue  # the trigger writes by design
        choices = per.get(name, [(["-b", b["redis"]], None)])
        for index in range(runs):
            args, state = choices[index % len(choices)]
            jobs.append((name, args, state))
    return jobs


def assert_answer(job, result):
    name, args, state = job
    assert "Traceback" not in result.stdout + result.stderr, result.describe("traceback")
    if state:
        result.assert_state(state)
    else:
        result.assert_well_formed()


@pytest.mark.slow
def test_many_runs_change_nothing_and_leave_nothing(brokers):
    b = brokers
    bodies_before = queue_bodies(b["amqp"], b["waiting"])
    redis_before = redis_state(b["client"], b["db"])
    rabbit_before = rabbit_state(b["vhost"])
    assert len(bodies_before) == 5 and len(b["client"].lrange(b["waiting"], 0, -1)) == 5

    jobs = read_only_jobs(b, RUNS)
    # 200 runs of each check: forked from one process that imported the
    # check once (tests/forkrun.py), 8 at a time, so that they cost seconds
    # rather than minutes; the broker sees the same connections either way.
    results = []
    for name in sorted({name for name, _, _ in jobs}):
        mine = [job for job in jobs if job[0] == name]
        results += list(zip(mine, fork_runs(name, [args for _, args, _ in mine], parallel=8)))
    jobs = [job for job, _ in results]
    results = [result for _, result in results]
    for job, result in zip(jobs, results):
        assert_answer(job, result)
    queue_runs = [r for (name, _, _), r in zip(jobs, results) if name == "check_celery_queue"]
    assert all(r.perfdata[b["waiting"]].value == 5 for r in queue_runs)

    # Nothing created, consumed, reordered; no connection left behind. The
    # checks delete their reply/event queues themselves: allow the broker a
    # moment to process the last deletes, nothing more.
    deadline = time.monotonic() + 10
    while redis_state(b["client"], b["db"]) != redis_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert redis_state(b["client"], b["db"]) == redis_before, \
        _diff(redis_before, redis_state(b["client"], b["db"]))
    while rabbit_state(b["vhost"]) != rabbit_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rabbit_state(b["vhost"]) == rabbit_before
    assert queue_bodies(b["amqp"], b["waiting"]) == bodies_before


def _diff(before, after):
    keys_before, keys_after = before[0], after[0]
    return {"new": sorted(set(keys_after) - set(keys_before))[:5],
            "gone": sorted(set(keys_before) - set(keys_after))[:5],
            "changed": [k for k in keys_before if k in keys_after and keys_before[k] != keys_after[k]][:5],
            "clients": (before[1], after[1])}


@pytest.mark.slow
def test_fifty_checks_at_once_all_answer_correctly(brokers):
    jobs = read_only_jobs(brokers, 50)
    jobs = [jobs[i * len(jobs) // 50] for i in range(50)]  # every kind of run, 50 in all
    # 50 processes (and the workers) share 2 cores here: each gets a 25th
    # of one, so -t and the windows are generous (the checks still return
    # as soon as the expected worker answered); the point is that none of
    # them is confused by the others.
    def generous(args):
        args = list(args)
        for option, value in (("-t", "40"), ("--window", "15"), ("--reply-timeout", "15")):
            if option in args:
                args[args.index(option) + 1] = value
        return args if "-t" in args else args + ["-t", "40"]

    jobs = [(name, generous(args), state) for name, args, state in jobs]
    results = run_parallel([(name, args, {}) for name, args, _ in jobs], parallel=50)
    for job, result in zip(jobs, results):
        assert_answer(job, result)


# ------------------------------------------------------------------ secrets

@pytest.fixture(scope="module")
def secret_users(rabbitmq_vhost, redis_server):
    """A Redis ACL user and a RabbitMQ user whose password is SECRET, so the
    success path authenticates with it; both deleted afterwards."""
    client = redis_server.client()
    client.execute_command("ACL", "SETUSER", REDIS_USER, "on", ">" + SECRET, "~*", "&*", "+@all")
    subprocess.run(["rabbitmqctl", "-q", "add_user", AMQP_USER, SECRET], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", rabbitmq_vhost, AMQP_USER,
                    ".*", ".*", ".*"], check=True, capture_output=True)
    yield
    client.execute_command("ACL", "DELUSER", REDIS_USER)
    client.close()
    subprocess.run(["rabbitmqctl", "-q", "delete_user", AMQP_USER], capture_output=True)


def secret_runs(name, redis_server, redis_db, vhost, tmp_path):
    """(label, args, extra_env) for every way to hand ``name`` a URL with
    SECRET in it, on a path that succeeds and one that fails, with -v 0..3
    spread so that every level meets every path."""
    good_redis = redis_server.url(redis_db, auth="%s:%s" % (REDIS_USER, SECRET))
    bad_redis = "redis://%s:%s@127.0.0.1:%d/0" % (REDIS_USER, SECRET, closed_port())
    good_amqp = rabbitmq_kit.url(vhost, AMQP_USER, SECRET)
    is_trigger = name.startswith("trigger")
    text = help_text(name)
    urls = [("redis-ok", good_redis), ("redis-down", bad_redis)]
    if name not in project.STORE_CHECKS:
        urls.append(("amqp-ok", good_amqp))
    runs = []
    for path_index, (path, url) in enumerate(urls):
        file = tmp_path / ("%s-%s.url" % (name, path))
        file.write_text(url + "\n")
        sources = [("--broker", ["-b", url], {}),
                   ("--broker-file", ["--broker-file", str(file)], {}),
                   ("$CELERY_BROKER_URL", [], {"CELERY_BROKER_URL": url})]
        if "--store" in text and path.startswith("redis"):
            sources.append(("--store", ["--store", url] + (["-b", good_amqp] if is_trigger else []), {}))
        if is_trigger and path.startswith("amqp"):  # a RabbitMQ shop names its Redis store
            sources = [(source, args + ["--store", good_redis], env) for source, args, env in sources]
        for index, (source, args, env) in enumerate(sources):
            level = (index + path_index) % 4
            if is_trigger:
                verbosity = ["-v"] if level else []
                args = args + ["-q", "leak-secret-%s" % uuid.uuid4().hex[:4]]
            else:
                verbosity = ["-" + "v" * level] if level else []
            runs.append(("%s %s %s" % (path, source, verbosity), args + verbosity + ["-t", "5"], env))
        # and -vvv (the traceback) on every path, by the option
        runs.append(("%s --broker -vvv" % path, ["-b", url, "-v" if is_trigger else "-vvv", "-t", "5"]
                     + (["-q", "leak-secret"] if is_trigger else []), {}))
    return runs


@pytest.mark.parametrize("name", BROKER_SCRIPTS)
def test_password_never_in_any_output(name, secret_users, redis_server, redis_db, rabbitmq_vhost,
                                      tmp_path):
    runs = secret_runs(name, redis_server, redis_db, rabbitmq_vhost, tmp_path)
    results = run_parallel([(name, args, {"extra_env": env}) for _, args, env in runs], parallel=6)
    for (label, args, env), result in zip(runs, results):
        output = result.stdout + result.stderr
        assert SECRET not in output, result.describe("password leaked (%s)" % label)
        assert result.rc in (0, 1, 2, 3), result.describe(label)
        if "-down" in label:  # the failure path really failed, naming the URL
            assert result.rc in (1, 2) and "***" in output, result.describe(label)
        else:  # the password was really used: the broker let us in
            assert result.rc != 3 and not re.search(
                r"refused|cannot reach|did not answer|timed out", output), result.describe(label)
        if label.endswith("-vvv") and "-down" in label:
            assert "Traceback" in output, result.describe("-vvv shows the traceback")


@pytest.mark.parametrize("how", ["--broker-file", "$CELERY_BROKER_URL"])
def test_file_and_variable_keep_the_password_out_of_the_process_list(how, tmp_path):
    """Every broker-using executable at once, kept alive by a silent broker
    while we read its /proc/<pid>/cmdline as ps would."""
    silent = Listener("silent")
    url = "redis://:%s@127.0.0.1:%d/0" % (SECRET, silent.port)
    file = tmp_path / "url"
    file.write_text(url + "\n")
    env = dict(os.environ)
    env.pop("CELERY_BROKER_URL", None)
    env.pop("CELERY_CHECKS_STORE_URL", None)
    if how == "--broker-file":
        args = ["--broker-file", str(file)]
    else:
        args, env["CELERY_BROKER_URL"] = [], url
    processes = {name: subprocess.Popen([executable(name)] + args + ["-t", "3"], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in BROKER_SCRIPTS}
    try:
        wait_for(lambda: len(silent.connections) >= len(processes), 10, "every process to connect")
        for name, process in processes.items():
            with open("/proc/%d/cmdline" % process.pid, "rb") as handle:
                cmdline = handle.read().decode(errors="replace")
            assert executable(name) in cmdline and SECRET not in cmdline, (name, cmdline)
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=10)
            assert SECRET not in stdout + stderr, (name, stdout, stderr)
            assert process.returncode in (1, 2), (name, stdout, stderr)  # the silent broker
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(5)
        silent.close()


# ------------------------------------- passwords that are words of our output

WORD_USER = "cc-words-%d" % PID   # a Redis ACL user and a RabbitMQ user of ours
WORD_QUEUE = "mail"               # the queue every run names
#: words of our own output, one and two characters, the queue's and the
#: user's name (not guest: that is the real password of the user guest)
ORDINARY = ["celery", "OK", "queue", "messages", "wrong", "password", "x", "ab",
            WORD_QUEUE, WORD_USER]
#: what legitimately differs from one run to the next: durations (ages,
#: waits, round-trip times in the text and in perfdata). Nothing else is
#: normalised; a closed port is chosen once for the whole test.
DURATION = re.compile(r"\b\d+(?:\.\d+)?s\b")


#: Not legitimate, but not this test's subject: the events source reports a
#: node's counters only when its last event carried them (issue 13, item 11,
#: fixed apart); until then they are left out of the comparison, on events
#: runs only.
EVENT_COUNTERS = re.compile(r" '(?:active|processed)_[^']*'=\d+c?;;;0|, (?:active|processed) \d+")


def _normalised(text, label=""):
    text = DURATION.sub("<t>s", text)
    return EVENT_COUNTERS.sub("", text) if " events " in label else text


@pytest.fixture
def words_vhost():
    """A vhost of the test's own: the module's other workers (``brokers``)
    must not answer its pings (they would be unexpected nodes)."""
    with rabbitmq_kit.Vhost("cc-words") as vhost:
        queues = rabbitmq_kit.Queues(vhost.name)
        yield queues
        queues.cleanup()


@pytest.fixture
def word_fleet(redis_server, redis_db, redis_dbs, words_vhost, celery_worker, celery_apps):
    """Workers on each broker (on a queue of their own, so that WORD_QUEUE
    keeps what it holds), a Redis ACL user and a RabbitMQ user (allowed on
    the session vhost) whose password :func:`set_password` changes; both
    users deleted afterwards. The trigger runs get a Redis database of their
    own (``trigger_db``), so that what they record never changes what
    check_celery_heartbeat reads from ``redis_db``: one record, made here."""
    rabbitmq = words_vhost
    workers = {"redis": celery_worker.start(redis_server.url(redis_db), queues=["leak-work"], wait=False),
               "amqp": celery_worker.start(rabbitmq.url, queues=["leak-work"], wait=False)}
    admin = redis_server.client()
    rabbitmq_kit.rabbitmqctl("add_user", WORD_USER, uuid.uuid4().hex)
    try:
        with redis_dbs.take() as trigger_db:
            rabbitmq_kit.rabbitmqctl("set_permissions", "-p", rabbitmq.vhost, WORD_USER, ".*", ".*", ".*")
            # WORD_QUEUE declared as an application declares it (kombu's
            # binding on Redis, a durable queue on RabbitMQ): the trigger
            # publishes to a queue that exists.
            for db in (redis_db, trigger_db):
                publish(celery_apps(redis_server.url(db)), WORD_QUEUE, 1)
            rabbitmq.queues.append(WORD_QUEUE)
            rabbitmq.channel().queue_declare(WORD_QUEUE, durable=True)
            # a heartbeat record in the store from the start: every round reads it
            assert run_check("trigger_celery_heartbeat", "-b", redis_server.url(redis_db),
                             "-q", WORD_QUEUE).rc == 0
            for worker in workers.values():
                celery_worker.wait_ready(worker, 60, "ready.")
            # On Redis a worker subscribes to broadcasts a moment after "ready.".
            for kind, url in (("redis", redis_server.url(redis_db)), ("amqp", rabbitmq.url)):
                wait_for(lambda: run_check("check_celery_workers", "-b", url, "--expect",
                                           workers[kind].name).rc == 0, 20, "the %s worker" % kind)
            yield dict(workers=workers, admin=admin, trigger_db=trigger_db)
    finally:
        admin.execute_command("ACL", "DELUSER", WORD_USER)
        admin.close()
        rabbitmq_kit.rabbitmqctl("delete_user", WORD_USER, check=False)


def set_password(fleet, password):
    """The ACL user and the RabbitMQ user now authenticate with ``password``."""
    fleet["admin"].execute_command("ACL", "SETUSER", WORD_USER, "reset", "on", ">" + password,
                                   "~*", "&*", "+@all")
    rabbitmq_kit.rabbitmqctl("change_password", WORD_USER, password)


def reset_queue(redis_client, rabbitmq):
    """WORD_QUEUE holds 2 messages on each broker, whatever the trigger
    runs of the previous round added."""
    import pika

    redis_client.delete(WORD_QUEUE, *["%s\x06\x16%d" % (WORD_QUEUE, step) for step in (3, 6, 9)])
    redis_client.rpush(WORD_QUEUE, b'{"body": 1}', b'{"body": 2}')
    channel = rabbitmq.channel()
    channel.queue_purge(WORD_QUEUE)
    for number in (1, 2):
        channel.basic_publish("", WORD_QUEUE, b'{"body": %d}' % number, pika.BasicProperties(delivery_mode=2))


def word_runs(password, redis_server, redis_db, trigger_db, vhost, closed, workers, tmp_path):
    """{label: (name, argv, env)}: every executable that takes a URL, every
    way of giving it (-b, --broker-file, $CELERY_BROKER_URL, --store), on
    paths that succeed and paths that fail, -v 0..3 (the trigger: -v)."""
    from urllib.parse import quote

    pw, user = quote(password, safe=""), quote(WORD_USER, safe="")
    redis_at = "redis://%%s:%s@%s:%d/%%s" % (pw, redis_server.host, redis_server.port)
    amqp_at = "amqp://%%s:%s@%s:%d/%%s" % (pw, rabbitmq_kit.HOST, rabbitmq_kit.PORT)
    def urls_for(db):
        return {
            "redis-ok": redis_at % (user, db),
            "redis-wrongpass": redis_at % ("nobody", db),              # WRONGPASS
            "redis-closed": "redis://%s:%s@127.0.0.1:%d/0" % (user, pw, closed),
            "amqp-ok": amqp_at % (user, quote(vhost, safe="")),
            "amqp-wrongpass": amqp_at % ("guest", quote(vhost, safe="")),  # refused login
            "amqp-denied": amqp_at % (user, "cc-no-such-vhost"),      # refused vhost
        }

    per_check = {
        # Nobody consumes WORD_QUEUE: not an orphan here, the words are the point.
        "check_celery_queue": (["-q", WORD_QUEUE, "-w", "5", "--orphan-state", "ok"],
                               list(urls_for(0))),
        "check_celery_heartbeat": (["-q", WORD_QUEUE, "-w", "3600", "-c", "7200",
                                    "--latency-warning", "3600", "--latency-critical", "7200"],
                                   ["redis-ok", "redis-wrongpass", "redis-closed", "amqp-ok"]),
        "check_celery_workers ping": (["--source", "ping", "--reply-timeout", "3", "-t", "10"],
                                      list(urls_for(0))),
        "check_celery_workers events": (["--source", "events", "--window", "4", "-t", "10"],
                                        list(urls_for(0))),
        "trigger_celery_heartbeat": (["-q", WORD_QUEUE], list(urls_for(0))),
    }
    runs = {}
    for what, (fixed, paths) in per_check.items():
        name = what.split()[0]
        is_trigger = name.startswith("trigger")
        urls = urls_for(trigger_db if is_trigger else redis_db)
        store_ok = urls["redis-ok"]
        levels = [[], ["-v"]] if is_trigger else [[], ["-v"], ["-vv"], ["-vvv"]]
        for path_index, path in enumerate(paths):
            url = urls[path]
            options = list(fixed)
            if name == "check_celery_workers":  # the worker on that broker
                options += ["--expect", workers[path.split("-")[0]].name]
            # a RabbitMQ broker needs the Redis store named: the store's
            # password is the same word
            store = ["--store", store_ok] if path.startswith("amqp") and "--store" in help_text(name) else []
            file = tmp_path / ("%s-%s.url" % (what.replace(" ", "-"), path))
            file.write_text(url + "\n")
            sources = [("-b", ["-b", url], {}, levels),
                       ("--broker-file", ["--broker-file", str(file)], {}, None),
                       ("$CELERY_BROKER_URL", [], {"CELERY_BROKER_URL": url}, None)]
            if "--store" in help_text(name) and path.startswith("redis"):
                # the store named by --store (the broker: RabbitMQ, for the trigger)
                broker = ["-b", urls["amqp-ok"]] if is_trigger else []
                sources.append(("--store", broker + ["--store", url], {}, None))
                store = []
            for source_index, (source, args, env, at) in enumerate(sources):
                # -b at every level; each other source at one, turning with the path
                for verbose in at or [levels[(source_index + path_index) % len(levels)]]:
                    label = "%s %s %s %s" % (what, path, source, " ".join(verbose) or "-v0")
                    argv = args + (store if source != "--store" else []) + options + verbose
                    runs[label] = (name, argv, env)
    return runs


def run_words(runs):
    """{label: (rc, stdout, stderr)} of every run, forked 8 at a time."""
    outputs = {}
    for name in sorted({name for name, _, _ in runs.values()}):
        labels = [label for label, (n, _, _) in runs.items() if n == name]
        results = fork_runs(name, [runs[label][1] for label in labels], parallel=8,
                            envs=[runs[label][2] for label in labels])
        outputs.update((label, result) for label, result in zip(labels, results))
    return outputs


def test_ordinary_word_passwords_change_nothing_but_never_show(
        word_fleet, redis_server, redis_db, redis_client, words_vhost, tmp_path):
    rabbitmq = words_vhost
    closed = closed_port()
    workers = word_fleet["workers"]

    def round_of(password):
        set_password(word_fleet, password)
        reset_queue(redis_client, rabbitmq)
        runs = word_runs(password, redis_server, redis_db, word_fleet["trigger_db"], rabbitmq.vhost,
                         closed, workers, tmp_path)
        # the trigger last: it adds to WORD_QUEUE, which the checks count
        checks = {label: run for label, run in runs.items() if not run[0].startswith("trigger")}
        outputs = run_words(checks)
        outputs.update(run_words({label: run for label, run in runs.items() if label not in checks}))
        return outputs

    random_pw = "Rnd-%s" % uuid.uuid4().hex
    reference = round_of(random_pw)
    for label, result in reference.items():
        assert random_pw not in result.stdout + result.stderr, result.describe(label)
        # the success paths really authenticated and judged; the failure
        # paths failed as they should, naming the URL with *** for the password
        succeeds = "-ok " in label  # the path named in the label (for --store: the store's)
        if label.startswith("trigger"):
            if succeeds:
                assert result.rc == 0 and result.stdout.startswith("published 1 heartbeat"), \
                    result.describe(label)
            else:
                assert result.rc == 1 and "***" in result.stderr, result.describe(label)
        elif not succeeds:
            result.assert_critical()
            assert "***" in result.first_line, result.describe(label)
        elif label.startswith("check_celery_heartbeat"):  # judged the record it read
            assert result.rc in (0, 1, 2) and WORD_QUEUE in result.first_line and not re.search(
                r"refused|cannot reach|did not answer|timed out", result.stdout), result.describe(label)
        elif label.startswith("check_celery_queue"):
            result.assert_ok("queue %s has 2 waiting" % WORD_QUEUE)
            assert result.perfdata[WORD_QUEUE].value == 2
        else:  # the workers check: the broker's worker answered
            result.assert_ok()
            assert result.perfdata["online"].value == 1, result.describe(label)
    assert any("%s:***@" % WORD_USER in result.stdout for result in reference.values())

    for password in ORDINARY:
        outputs = round_of(password)
        assert sorted(outputs) == sorted(reference)
        for label, result in outputs.items():
            expected = reference[label]
            assert (result.rc, _normalised(result.stdout, label), _normalised(result.stderr, label)) == (
                expected.rc, _normalised(expected.stdout, label), _normalised(expected.stderr, label)), \
                "password %r, %s\n%s\n--- with a random password:\n%s" % (
                    password, label, result.describe("differs"), expected.describe(""))
