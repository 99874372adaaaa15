"""Fixtures for the real services the checks are tested against (the
helpers behind them are in tests/kit/).

- ``redis_server``: a redis-server of the suite's own for the whole session,
  on a free loopback port in a temporary directory, stopped at the end;
  ``redis_db`` a database of it owned by one test (flushed before and after),
  ``redis_url`` / ``redis_client`` build on it; ``redis_dbs`` hands out
  databases to module-wide fixtures.
- ``rabbitmq_vhost``: a vhost of our own on the running RabbitMQ for the
  session; ``rabbitmq`` hands out per-test queue names on it and deletes them.
- ``celery_worker``: real ``celery worker`` / ``celery beat`` processes on
  tests/app.py, stopped by PID when the test ends, also when it fails.
- a fixture or test that needs something beyond the venv calls
  ``prerequisites.require(piece, ...)``: without it the test is reported as
  not run, with the reason (tests/kit/prerequisites.py).
- The whole run fails if it touched a Redis it did not start
  (tests/kit/foreign_redis.py).
- check_celery_tasks run without --state-file (the tests that hold every
  check to a rule) keeps its state in /var/tmp, as documented: the files it
  made there during the run are removed at the end.
"""

import glob
import os
import time


import pytest

from tests.kit import foreign_redis, prerequisites
from tests.kit import rabbitmq as rabbitmq_kit
from tests.kit.plugin import run_check
from tests.kit.producers import Apps
from tests.kit.redis_servers import Databases, RedisServer
from tests.kit.workers import WorkerFactory

_guard = foreign_redis.Guard() if foreign_redis.ADDRESS != "off" else None
_guard_problems = []


_started = time.time()


def pytest_sessionstart(session):
    if _guard is not None and not _guard.plant():
        session.config._foreign_redis = "no Redis on %s: nothing to guard" % foreign_redis.ADDRESS


def pytest_sessionfinish(session, exitstatus):
    for path in glob.glob("/var/tmp/check_celery_tasks.*.json"):
        try:
            if os.stat(path).st_mtime >= _started - 1:
                os.unlink(path)
        except OSError:
            pass
    if _guard is not None:
        _guard_problems.extend(_guard.verify())
        if _guard_problems:
            session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    for line in _guard_problems:
        terminalreporter.write_line("FAILED (foreign Redis) %s" % line, red=True)


@pytest.fixture
def run():
    """``run(name, *args, **kw)``: run an executable, get a parsed Result."""
    return run_check


# --------------------------------------------------------------------- Redis

@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The session's own redis-server."""
    prerequisites.require("redis-server")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    with server.running():
        yield server


@pytest.fixture(scope="session")
def redis_dbs(redis_server):
    return Databases(redis_server)


@pytest.fixture
def redis_db(redis_dbs):
    """A database number (1-15) of this test's own, emptied."""
    with redis_dbs.take() as number:
        yield number


@pytest.fixture
def redis_url(redis_server, redis_db):
    return redis_server.url(redis_db)


@pytest.fixture
def redis_client(redis_server, redis_db):
    client = redis_server.client(redis_db)
    yield client
    client.close()


@pytest.fixture
def own_redis(tmp_path):
    """``own_redis(*config_lines, **options)``: a RedisServer of this test's
    own (TLS, ACL users, a unix socket, a sentinel...), not yet started;
    stopped after the test."""
    prerequisites.require("redis-server")
    made = []

    def make(*config_lines, directory=None, **options):
        server = RedisServer(directory or tmp_path, *config_lines, **options)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


# ------------------------------------------------------------------ RabbitMQ

@pytest.fixture(scope="session")
def rabbitmq_vhost():
    """A vhost of our own for the whole session, deleted at the end."""
    prerequisites.require("rabbitmq")
    with rabbitmq_kit.Vhost("celery-checks-test") as vhost:
        yield vhost.name


@pytest.fixture
def rabbitmq(rabbitmq_vhost):
    helper = rabbitmq_kit.Queues(rabbitmq_vhost)
    yield helper
    helper.cleanup()


# ------------------------------------------------------------------ producers

@pytest.fixture
def celery_apps():
    """``celery_apps(broker_url, **transport_options)`` -> a Celery app that
    publishes like an application (tests.kit.producers.publish); closed after."""
    apps = Apps()
    yield apps
    apps.close()


# -------------------------------------------------------------------- workers

@pytest.fixture
def celery_worker(tmp_path):
    """``celery_worker.start(broker_url, name=..., queues=..., pool=...)``."""
    factory = WorkerFactory(tmp_path)
    yield factory
    factory.stop_all()
