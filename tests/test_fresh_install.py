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

import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from tests.kit import rabbitmq as rabbitmq_kit
from tests.kit import venvs
from tests.kit.plugin import Result
from tests.kit.producers import publish
from tests.kit.project import ROOT
from tests.kit.waiting import wait_for
from tests.kit.workers import WorkerFactory

# Its executables run from an install of its own, the same in every run
# of the suite (scripts/test --debian leaves it out).
pytestmark = [pytest.mark.own_install, pytest.mark.slow]

HOST = socket.gethostname()


# ------------------------------------------------------------ the fresh venv

@pytest.fixture(scope="module")
def fresh():
    """The bin directory of a venv holding the project and its declared
    dependencies only."""
    bin_dir = venvs.plain_venv()
    target = bin_dir.parent
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
def redis_url(redis_server, redis_dbs):
    with redis_dbs.take(from_top=True) as number:
        yield redis_server.url(number)


@pytest.fixture(scope="module")
def amqp_url():
    """A vhost of our own: ping broadcasts reach only this module's worker."""
    with rabbitmq_kit.Vhost("cc-fresh") as vhost:
        yield vhost.url


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
    factory = WorkerFactory(tmp_path_factory.mktemp("workers"))
    specs = {
        "redis": (redis_url, "tests.app", "hb-redis", {}),
        "amqp": (amqp_url, "tests.heartbeat_app", "hb-amqp", {"TEST_HEARTBEAT_STORE": redis_url}),
    }
    workers = {}
    try:
        for kind, (url, app, queue, env) in specs.items():
            workers[kind] = factory.start(
                url, name="fresh-%s-%s@%s" % (kind, uuid.uuid4().hex[:6], HOST), queues=[queue],
                app=app, env=env, celery=fresh / "celery", pythonpath=app_path, wait=False)
        for worker in workers.values():
            factory.wait_ready(worker, 60, "ready.")
        yield workers
    finally:
        factory.stop_all()


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
def test_queue(run, redis_url, amqp_url, kind, celery_apps):
    url = redis_url if kind == "redis" else amqp_url
    queue = "fresh-q-%s" % uuid.uuid4().hex[:8]
    publish(celery_apps(url), queue, 3)
    result = run("check_celery_queue", "-b", url, "-q", queue, "-w", "5", "-c", "10")
    result.assert_ok("queue %s has 3 waiting messages" % queue)
    perf = result.perfdata[queue]
    assert (perf.value, perf.warn, perf.crit, perf.min) == (3, "5", "10", "0")
    if kind == "amqp":
        assert result.perfdata["consumers_" + queue].value == 0
    else:
        assert result.perfdata["unacked"].value == 0
    # one more than -w allows
    publish(celery_apps(url), queue, 3)
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

    from celery_checks.store.heartbeats import key_for

    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: (lambda r: r.get(b"started_id") and r.get(b"started_id") == r.get(b"published_id"))(
            client.hgetall(key_for(queue))), 30, "the worker to run the heartbeat of %s" % queue)
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
