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

from tests.faultkit import (
    BROKER_SCRIPTS,
    Listener,
    closed_port,
    fork_runs,
    help_text,
    locked_redis_db,
    run_parallel,
    wait_for,
)
from tests.plugin import executable, run_check

RUNS = 200
PID = os.getpid()
SECRET = "Leak-s3cret-%d" % PID
REDIS_USER = "cc-leaks-%d" % PID
AMQP_USER = "cc-leaks-%d" % PID


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
def brokers(tmp_path_factory, rabbitmq_vhost):
    """A worker on each broker, 5 messages waiting in a queue nobody
    consumes on each, a heartbeat record in the store: shared by the tests
    of this module, which change nothing."""
    import pika
    import redis

    from tests.conftest import RabbitMQ, WorkerFactory

    waiting = "leak-wait-%s" % uuid.uuid4().hex[:6]
    factory = WorkerFactory(tmp_path_factory.mktemp("leak-workers"))
    rabbitmq = RabbitMQ(rabbitmq_vhost)
    with locked_redis_db() as db:
        redis_url = "redis://127.0.0.1:6379/%d" % db
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
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
            # On Redis a worker subscribes to broadcasts a moment after "ready.".
            for kind, url in (("redis", redis_url), ("amqp", rabbitmq.url)):
                wait_for(lambda: run_check("check_celery_workers", "-b", url, "--expect",
                                           workers[kind].name).rc == 0, 20, "%s worker" % kind)
            yield dict(redis=redis_url, amqp=rabbitmq.url, workers=workers, waiting=waiting,
                       client=client, db=db, vhost=rabbitmq_vhost, rabbitmq=rabbitmq)
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
            (["-b", b["amqp"], "-q", b["waiting"]], "OK"),
        ],
        "check_celery_heartbeat": [(["--store", b["redis"], "-q", "leak-work"], "OK")],
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
def secret_users(rabbitmq_vhost):
    """A Redis ACL user and a RabbitMQ user whose password is SECRET, so the
    success path authenticates with it; both deleted afterwards."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    client.execute_command("ACL", "SETUSER", REDIS_USER, "on", ">" + SECRET, "~*", "&*", "+@all")
    subprocess.run(["rabbitmqctl", "-q", "add_user", AMQP_USER, SECRET], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", rabbitmq_vhost, AMQP_USER,
                    ".*", ".*", ".*"], check=True, capture_output=True)
    yield
    client.execute_command("ACL", "DELUSER", REDIS_USER)
    client.close()
    subprocess.run(["rabbitmqctl", "-q", "delete_user", AMQP_USER], capture_output=True)


def secret_runs(name, redis_db, vhost, tmp_path):
    """(label, args, extra_env) for every way to hand ``name`` a URL with
    SECRET in it, on a path that succeeds and one that fails, with -v 0..3
    spread so that every level meets every path."""
    good_redis = "redis://%s:%s@127.0.0.1:6379/%d" % (REDIS_USER, SECRET, redis_db)
    bad_redis = "redis://%s:%s@127.0.0.1:%d/0" % (REDIS_USER, SECRET, closed_port())
    good_amqp = "amqp://%s:%s@127.0.0.1:5672/%s" % (AMQP_USER, SECRET, vhost)
    is_trigger = name.startswith("trigger")
    text = help_text(name)
    urls = [("redis-ok", good_redis), ("redis-down", bad_redis)]
    if name not in ("check_celery_heartbeat",):
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
def test_password_never_in_any_output(name, secret_users, redis_db, rabbitmq_vhost, tmp_path):
    runs = secret_runs(name, redis_db, rabbitmq_vhost, tmp_path)
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
        wait_for(lambda: len(silent.accepted) >= len(processes), 10, "every process to connect")
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
