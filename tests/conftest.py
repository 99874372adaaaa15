"""Fixtures for the real services the checks are tested against.

- ``redis_db``: a Redis database number on 127.0.0.1:6379 owned by one test
  (a lock file per number keeps parallel runs apart), flushed before and after;
  ``redis_url`` / ``redis_client`` build on it.
- ``rabbitmq``: a vhost on 127.0.0.1:5672 created for this test session and a
  helper that hands out per-test queue names and deletes them afterwards.
- ``celery_worker``: starts real ``celery worker`` processes on the tiny app in
  tests/app.py, waits until each is ready, and stops exactly the processes it
  started (by PID/process group), also when the test fails.
"""

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.plugin import run_check

ROOT = Path(__file__).resolve().parent.parent
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672
LOCK_DIR = Path(tempfile.gettempdir()) / "celery-checks-test-locks"


@pytest.fixture
def run():
    """``run(name, *args, **kw)``: run an executable, get a parsed Result."""
    return run_check


def _service_up(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


# --------------------------------------------------------------------- Redis

@contextlib.contextmanager
def locked_redis_db(numbers=range(1, 16)):
    """A Redis DB number that no other running test (or bench run) uses: a
    lock file per number keeps parallel runs apart; flushed before and after.
    Module-wide users pass the numbers in reverse to stay clear of per-test ones."""
    import redis

    if not _service_up(REDIS_HOST, REDIS_PORT):
        pytest.fail("Redis is not running on %s:%s (.ci/run starts it)" % (REDIS_HOST, REDIS_PORT))
    LOCK_DIR.mkdir(exist_ok=True)
    for number in numbers:
        handle = open(LOCK_DIR / ("redis-db-%d.lock" % number), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
        client.flushdb()
        try:
            yield number
        finally:
            client.flushdb()
            client.close()
            handle.close()
        return
    pytest.fail("no free Redis database number")


@pytest.fixture
def redis_db():
    """A Redis DB number (1-15) of this test's own, emptied."""
    with locked_redis_db() as number:
        yield number


@pytest.fixture
def redis_url(redis_db):
    return "redis://%s:%d/%d" % (REDIS_HOST, REDIS_PORT, redis_db)


@pytest.fixture
def redis_client(redis_db):
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)
    yield client
    client.close()


# ------------------------------------------------------------------ RabbitMQ

@pytest.fixture(scope="session")
def rabbitmq_vhost():
    """A vhost of our own for the whole session, deleted at the end."""
    if not _service_up(AMQP_HOST, AMQP_PORT):
        pytest.fail("RabbitMQ is not running on %s:%s (.ci/run starts it)" % (AMQP_HOST, AMQP_PORT))
    vhost = "celery-checks-test-%d" % os.getpid()
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True, capture_output=True,
    )
    yield vhost
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


class RabbitMQ:
    """Per-test queue names on the session vhost, deleted after the test."""

    def __init__(self, vhost):
        self.vhost = vhost
        self.url = "amqp://guest:guest@%s:%d/%s" % (AMQP_HOST, AMQP_PORT, vhost)
        self.queues = []
        self._connection = None

    def queue_name(self, suffix="q"):
        name = "cc-%s-%s" % (uuid.uuid4().hex[:8], suffix)
        self.queues.append(name)
        return name

    def connection(self):
        import pika

        if self._connection is None or self._connection.is_closed:
            params = pika.URLParameters(self.url)
            self._connection = pika.BlockingConnection(params)
        return self._connection

    def channel(self):
        return self.connection().channel()

    def cleanup(self):
        try:
            channel = self.channel()
            for name in self.queues:
                channel.queue_delete(name)
            self._connection.close()
        except Exception:
            pass


@pytest.fixture
def rabbitmq(rabbitmq_vhost):
    helper = RabbitMQ(rabbitmq_vhost)
    yield helper
    helper.cleanup()


# -------------------------------------------------------------------- workers

class Worker:
    def __init__(self, name, process, log_path):
        self.name = name
        self.process = process
        self.log_path = log_path

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        return Path(self.log_path).read_text(errors="replace")

    def signal(self, signum):
        os.killpg(self.process.pid, signum)

    def stop(self, timeout=15):
        """SIGTERM (warm shutdown), then SIGKILL: only our process group."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGCONT)
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        except ProcessLookupError:
            pass

    def kill(self):
        """SIGKILL the whole group: the worker gets no chance to say goodbye."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(5)


class WorkerFactory:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.workers = []

    def start(self, broker_url, name=None, queues=("celery",), pool="solo",
              concurrency=1, extra_args=(), env=None, app="tests.app",
              wait=True, ready_timeout=30, command="worker"):
        name = name or "w%s@%s" % (uuid.uuid4().hex[:6], socket.gethostname())
        log_path = self.tmp_path / ("%s.log" % name.replace("@", "_"))
        environment = dict(os.environ)
        environment.update(env or {})
        environment["CELERY_BROKER_URL"] = broker_url
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT)] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p])
        args = [sys.executable, "-m", "celery", "-A", app, command]
        if command == "worker":
            args += ["-n", name, "-P", pool, "-c", str(concurrency), "-Q", ",".join(queues),
                     "--without-mingle", "--without-gossip", "-l", "INFO"]
        else:
            args += ["-l", "INFO"]
        args += list(extra_args)
        handle = open(log_path, "w")
        process = subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, env=environment,
            cwd=str(self.tmp_path), start_new_session=True,
        )
        worker = Worker(name, process, log_path)
        self.workers.append(worker)
        if wait:
            self.wait_ready(worker, ready_timeout, "ready." if command == "worker" else "beat: Starting")
        return worker

    def wait_ready(self, worker, timeout, marker):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in worker.log():
                return worker
            if worker.process.poll() is not None:
                pytest.fail("worker %s exited with %s:\n%s" % (
                    worker.name, worker.process.returncode, worker.log()[-3000:]))
            time.sleep(0.1)
        pytest.fail("worker %s not ready after %ss:\n%s" % (worker.name, timeout, worker.log()[-3000:]))

    def stop_all(self):
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def celery_worker(tmp_path):
    """``celery_worker.start(broker_url, name=..., queues=..., pool=...)``."""
    factory = WorkerFactory(tmp_path)
    yield factory
    factory.stop_all()
