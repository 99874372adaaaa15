"""Every executable and every source, run from a plain install.

The README's quick start is ``python3 -m venv v && v/bin/pip install .``:
no extras, no editable install. The suite's own .venv has the ``test``
extra, whose pytest brings ``packaging`` and so hid that kombu 5.7's Redis
transport needs it (kombu lists it only under its ``redis`` extra). So this
module builds such a venv from a copy of the checkout (once per content of
pyproject.toml and the package, cached under the temp dir) and runs from
it: the pulse file check, the queue check on Redis and RabbitMQ, the
trigger and the heartbeat check with a real worker (Redis; RabbitMQ broker
with a Redis store), the workers check with --source ping and events on
both brokers and stdin fed by a real ``celery status``.

The workers run from the fresh venv too (tests/app.py copied alone onto
their path), so the worker-side parts (install(app), the heartbeat task)
are proven with only the declared dependencies as well.
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import (
    AMQP_HOST, AMQP_PORT, REDIS_HOST, REDIS_PORT, ROOT, Worker, WorkerFactory, locked_redis_db,
)
from tests.plugin import Result

pytestmark = pytest.mark.slow

CACHE = Path(tempfile.gettempdir()) / "celery-checks-fresh-install"
# What `pip install .` builds from; a change to any of them is a new venv.
BUILD_INPUTS = ("pyproject.toml", "README.md", "celery_checks")
HOST = socket.gethostname()


# ------------------------------------------------------------ the fresh venv

def _inputs():
    """(relative path, absolute path) of every file the build reads."""
    files = []
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            files += sorted(p for p in path.rglob("*")
                            if p.is_file() and "__pycache__" not in p.parts)
        else:
            files.append(path)
    return [(p.relative_to(ROOT).as_posix(), p) for p in files]


def _content_hash(files):
    digest = hashlib.sha256(("%d.%d" % sys.version_info[:2]).encode())
    for relative, path in files:
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _build(target, files):
    """python -m venv + pip install <copy of the checkout>, nothing else."""
    work = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        source = work / "src"
        for relative, path in files:
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / relative)
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", str(source)],
            capture_output=True, text=True, cwd=str(work), timeout=600,
        )
        assert proc.returncode == 0, "pip install of a plain checkout failed:\n%s%s" % (
            proc.stdout, proc.stderr)
        shutil.rmtree(source)
        # A venv is not relocatable: it stays where it was built and the
        # finished marker is a symlink to it, renamed into place atomically.
        link = work.with_suffix(".link")
        os.symlink(venv, link)
        os.replace(link, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _prune(keep, days=2):
    """Remove cached venvs of other contents unused for ``days`` (never one
    another run holds the lock of)."""
    for lock_path in CACHE.glob("*.lock"):
        target = Path(str(lock_path)[: -len(".lock")])
        if target == keep or not target.is_symlink():
            continue
        if time.time() - target.lstat().st_mtime < days * 86400:
            continue
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            real = target.resolve().parent  # the build's work directory
            target.unlink()
            if real.parent == CACHE:
                shutil.rmtree(real, ignore_errors=True)


@pytest.fixture(scope="module")
def fresh():
    """The bin directory of a venv holding the project and its declared
    dependencies only."""
    files = _inputs()
    CACHE.mkdir(exist_ok=True)
    target = CACHE / _content_hash(files)
    with open(str(target) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions build it once
        if not (target / "bin" / "python").exists():
            _build(target, files)
        os.utime(target, follow_symlinks=False)  # last used: see _prune
    _prune(keep=target)
    bin_dir = target / "bin"
    # The product comes from the venv, and nothing of the test extra does.
    probe = subprocess.run(
        [str(bin_dir / "python"), "-c",
         "import importlib.util as u, celery_checks\n"
         "print(celery_checks.__file__)\n"
         "print([m for m in ('pytest', 'hypothesis', 'gevent') if u.find_spec(m)])"],
        capture_output=True, text=True, cwd="/", env=_environment(),
    )
    lines = probe.stdout.splitlines()
    assert probe.returncode == 0 and os.path.realpath(lines[0]).startswith(str(target.resolve())), probe
    assert "site-packages" in lines[0] and lines[1] == "[]", probe.stdout
    return bin_dir


def _environment(**extra):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("PYTHONPATH", "CELERY_BROKER_URL", "VIRTUAL_ENV")}
    environment.update(extra)
    return environment


@pytest.fixture(scope="module")
def run(fresh, tmp_path_factory):
    """``run(name, *args, stdin=None)``: the fresh venv's executable as a
    process, from a directory holding nothing of the checkout."""
    cwd = tmp_path_factory.mktemp("cwd")

    def run(name, *args, stdin=None, timeout=60):
        command = [str(fresh / name)] + [str(a) for a in args]
        started = time.monotonic()
        proc = subprocess.run(command, input=stdin, capture_output=True, text=True,
                              env=_environment(), cwd=str(cwd), timeout=timeout)
        return Result(command, proc.returncode, proc.stdout, proc.stderr,
                      time.monotonic() - started)

    return run


# -------------------------------------------------- brokers, store, workers

@pytest.fixture(scope="module")
def redis_url():
    with locked_redis_db(range(15, 0, -1)) as number:
        yield "redis://%s:%d/%d" % (REDIS_HOST, REDIS_PORT, number)


@pytest.fixture(scope="module")
def amqp_url():
    """A vhost of our own: ping broadcasts reach only this module's worker."""
    vhost = "cc-fresh-%d-%s" % (os.getpid(), uuid.uuid4().hex[:6])
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    yield "amqp://guest:guest@%s:%d/%s" % (AMQP_HOST, AMQP_PORT, vhost)
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


@pytest.fixture(scope="module")
def app_path(tmp_path_factory):
    """tests/app.py and tests/heartbeat_app.py alone: on a worker's path they
    import celery_checks from the fresh venv, not from the checkout."""
    base = tmp_path_factory.mktemp("app")
    (base / "tests").mkdir()
    for name in ("__init__.py", "app.py", "heartbeat_app.py"):
        shutil.copy2(ROOT / "tests" / name, base / "tests" / name)
    return base


def celery(fresh, app_path, broker_url, *args, **popen):
    command = [str(fresh / "celery"), "-A", args[0]] + list(args[1:])
    env = _environment(PYTHONPATH=str(app_path), CELERY_BROKER_URL=broker_url,
                       **popen.pop("env", {}))
    return command, dict(env=env, cwd=str(app_path), **popen)


@pytest.fixture(scope="module")
def fleet(fresh, app_path, redis_url, amqp_url, tmp_path_factory):
    """One worker per broker, both run by the fresh venv's celery: on Redis
    consuming hb-redis, on RabbitMQ consuming hb-amqp with the Redis store
    named in its app.conf (tests.heartbeat_app)."""
    logs = tmp_path_factory.mktemp("workers")
    factory = WorkerFactory(logs)  # for wait_ready and stop_all only
    specs = {
        "redis": (redis_url, "tests.app", "hb-redis", {}),
        "amqp": (amqp_url, "tests.heartbeat_app", "hb-amqp", {"TEST_HEARTBEAT_STORE": redis_url}),
    }
    workers = {}
    try:
        for kind, (url, app, queue, env) in specs.items():
            name = "fresh-%s-%s@%s" % (kind, uuid.uuid4().hex[:6], HOST)
            log_path = logs / ("%s.log" % kind)
            command, popen = celery(
                fresh, app_path, url, app, "worker", "-n", name, "-P", "solo", "-Q", queue,
                "--without-mingle", "--without-gossip", "-l", "INFO", env=env)
            with open(log_path, "w") as handle:
                process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                           start_new_session=True, **popen)
            worker = Worker(name, process, log_path)
            factory.workers.append(worker)
            workers[kind] = worker
        for worker in workers.values():
            factory.wait_ready(worker, 60, "ready.")
        yield workers
    finally:
        factory.stop_all()


def wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail("timed out waiting for %s" % what)


@contextlib.contextmanager
def celery_app(broker_url):
    """The application side: a Celery app of the test process publishing
    tasks the way an application does (the product is not under test here)."""
    from celery import Celery

    app = Celery("fresh-install-test", broker=broker_url, set_as_current=False)
    app.conf.task_ignore_result = True
    try:
        yield app
    finally:
        app.close()


def publish(broker_url, queue, count):
    with celery_app(broker_url) as app, app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task("tests.add", args=(1, 2), queue=queue, producer=producer)


# -------------------------------------------------------------------- tests

def test_pulsefile(run, tmp_path):
    path = tmp_path / "worker.pulse"
    path.write_text("")
    stamp = time.time() - 4
    os.utime(path, (stamp, stamp))
    result = run("check_celery_pulsefile", "-f", path).assert_ok(str(path), "old")
    age = result.perfdata["age"]
    assert age.uom == "s" and 4 <= age.value < 30 and (age.warn, age.crit, age.min) == ("120", "300", "0")


@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_queue(run, redis_url, amqp_url, kind):
    url = redis_url if kind == "redis" else amqp_url
    queue = "fresh-q-%s" % uuid.uuid4().hex[:8]
    publish(url, queue, 3)
    result = run("check_celery_queue", "-b", url, "-q", queue, "-w", "5", "-c", "10")
    result.assert_ok("queue %s has 3 waiting messages" % queue)
    perf = result.perfdata[queue]
    assert (perf.value, perf.warn, perf.crit, perf.min) == (3, "5", "10", "0")
    if kind == "amqp":
        assert result.perfdata["consumers_" + queue].value == 0
    else:
        assert result.perfdata["unacked"].value == 0
    # one more than -w allows
    publish(url, queue, 3)
    run("check_celery_queue", "-b", url, "-q", queue, "-w", "5", "-c", "10").assert_warning(queue)


@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_trigger_worker_heartbeat_check(run, fleet, redis_url, amqp_url, kind):
    """The trigger publishes, the fleet's worker (fresh venv) runs the
    heartbeat and records it in the Redis store, the check judges it."""
    queue = "hb-" + kind
    broker = redis_url if kind == "redis" else amqp_url
    published = run("trigger_celery_heartbeat", "-b", broker, "--store", redis_url, "-q", queue)
    assert published.rc == 0 and published.stderr == "", published.describe("trigger failed")
    assert published.stdout.startswith("published 1 heartbeat"), published.describe("trigger")

    import redis

    from celery_checks.heartbeat_store import key_for

    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: (lambda r: r.get(b"started_id") and r.get(b"started_id") == r.get(b"published_id"))(
            client.hgetall(key_for(queue))), "the worker to run the heartbeat of %s" % queue)
        assert client.hget(key_for(queue), "worker").decode() == fleet[kind].name
    finally:
        client.close()
    result = run("check_celery_heartbeat", "--store", redis_url, "-q", queue, "-v")
    result.assert_ok(queue + " healthy")
    age, latency = result.perfdata[queue + "_age"], result.perfdata[queue + "_latency"]
    assert age.uom == "s" and 0 <= age.value < 60 and (age.warn, age.crit, age.min) == ("300", "600", "0")
    assert latency.uom == "s" and 0 <= latency.value < 30 and latency.min == "0"
    assert any(fleet[kind].name in line for line in result.long_output), result.stdout


@pytest.mark.parametrize("source", ["ping", "events"])
@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_workers(run, fleet, redis_url, amqp_url, kind, source):
    url = redis_url if kind == "redis" else amqp_url
    node = fleet[kind].name
    result = run("check_celery_workers", "-b", url, "--source", source, "--expect", node, "-v")
    result.assert_ok("online", "expected present")
    perf = result.perfdata
    assert (perf["online"].value, perf["expected"].value, perf["missing"].value,
            perf["unexpected"].value) == (1, 1, 0, 0)
    assert any(line.startswith(node + ": online") for line in result.long_output), result.stdout
    if source == "ping":
        assert perf["rtt_" + node].uom == "s" and 0 <= perf["rtt_" + node].value < 5
    else:
        assert perf["hb_age_" + node].uom == "s" and 0 <= perf["hb_age_" + node].value <= 5
    # A node that is not there is missing, on the same source.
    absent = "absent@" + HOST
    wait = ["--reply-timeout", "1"] if source == "ping" else ["--window", "2.5"]
    run("check_celery_workers", "-b", url, "--source", source, "--expect", node,
        "--expect", absent, *wait).assert_critical(absent)


@pytest.mark.parametrize("form", [[], ["--json"]])
@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_workers_from_celery_status(run, fresh, app_path, fleet, redis_url, amqp_url, kind, form):
    """`celery -A proj status 2>&1 | check_celery_workers --source stdin`,
    with the celery of the fresh venv."""
    url = redis_url if kind == "redis" else amqp_url
    command, popen = celery(fresh, app_path, url, "tests.app", "status", *form,
                            env={"CELERY_CHECKS_DISABLE": "1"})
    status = subprocess.run(command, capture_output=True, text=True, timeout=60, **popen)
    assert fleet[kind].name in status.stdout, status
    node = fleet[kind].name
    result = run("check_celery_workers", "--source", "stdin", "--expect", node,
                 stdin=status.stdout + status.stderr)
    result.assert_ok("online", "expected present")
    assert (result.perfdata["online"].value, result.perfdata["missing"].value) == (1, 0)
    run("check_celery_workers", "--source", "stdin", "--expect", node, "--expect", "absent@" + HOST,
        stdin=status.stdout + status.stderr).assert_critical("absent@" + HOST)
