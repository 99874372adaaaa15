"""What each check imports (not timed; the benchmark measures the cost).

Start-up is most of a check's cost, and the heavy client libraries are most
of start-up: celery alone costs more than the whole pulse file check. Each
case runs the real installed executable, in a subprocess, against the real
service, with an atexit hook that writes ``sys.modules`` when it exits, and
asserts which top-level packages it must not (and must) have imported. The
check has to get as far as its status line, so a check failing early cannot
pass by importing little.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.plugin import executable

EVERY_CLIENT = ("celery", "kombu", "billiard", "redis", "pika", "amqp")

# Runs the console script as `python SCRIPT ARGS` would, after registering
# the hook (atexit runs after nagiosplugin's sys.exit()).
CHILD = textwrap.dedent("""\
    import atexit, runpy, sys
    out, script = sys.argv[1], sys.argv[2]

    def dump():
        with open(out, "w") as handle:
            handle.write("\\n".join(sorted(sys.modules)))

    atexit.register(dump)
    sys.argv = [script] + sys.argv[3:]
    runpy.run_path(script, run_name="__main__")
""")


def imported(tmp_path, name, *args):
    """(exit code, first output line, top-level packages imported)."""
    listing = tmp_path / ("%s.modules" % name)
    env = dict(os.environ)
    env.pop("CELERY_BROKER_URL", None)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(listing), executable(name)] + [str(a) for a in args],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert listing.exists(), "no module listing; stderr: %s" % proc.stderr[-2000:]
    packages = {line.split(".")[0] for line in listing.read_text().split()}
    first_line = (proc.stdout or proc.stderr).split("\n", 1)[0]
    return proc.returncode, first_line, packages


def assert_imports(packages, forbidden, required):
    leaked = sorted(set(forbidden) & packages)
    assert not leaked, "imports %s" % ", ".join(leaked)
    absent = sorted(set(required) - packages)
    assert not absent, "expected to import %s (did the check run?)" % ", ".join(absent)


def test_pulsefile_imports_no_client_library(tmp_path):
    pulse = tmp_path / "worker.pulse"
    pulse.write_text('{"state": "running"}')
    rc, line, packages = imported(tmp_path, "check_celery_pulsefile", "-f", pulse)
    assert (rc, line.split(" - ")[0]) == (0, "CELERY_PULSEFILE OK"), line
    assert_imports(packages, EVERY_CLIENT, ["nagiosplugin"])


def test_queue_on_redis_imports_redis_only(tmp_path, redis_url):
    rc, line, packages = imported(tmp_path, "check_celery_queue", "-b", redis_url, "-q", "celery")
    assert (rc, line.split(" - ")[0]) == (0, "CELERY_QUEUE OK"), line
    assert_imports(packages, ["celery", "kombu", "billiard", "pika", "amqp"], ["redis"])


def test_queue_on_rabbitmq_imports_pika_only(tmp_path, rabbitmq):
    queue = rabbitmq.queue_name()
    rabbitmq.channel().queue_declare(queue, durable=True)
    rc, line, packages = imported(tmp_path, "check_celery_queue", "-b", rabbitmq.url, "-q", queue)
    assert (rc, line.split(" - ")[0]) == (0, "CELERY_QUEUE OK"), line
    assert_imports(packages, ["celery", "kombu", "billiard", "redis", "amqp"], ["pika"])


def test_heartbeat_imports_redis_only(tmp_path, redis_url):
    # No record yet: CRITICAL "never seen", after the same one round trip.
    rc, line, packages = imported(tmp_path, "check_celery_heartbeat", "--store", redis_url,
                                  "-q", "celery")
    assert (rc, line.split(" - ")[0]) == (2, "CELERY_HEARTBEAT CRITICAL"), line
    assert_imports(packages, ["celery", "kombu", "billiard", "pika", "amqp"], ["redis"])


@pytest.mark.parametrize("source", ["ping", "events"])
def test_workers_never_import_celery(tmp_path, redis_url, source):
    # No worker on this DB: the broadcast goes out and nobody answers.
    rc, line, packages = imported(
        tmp_path, "check_celery_workers", "-b", redis_url, "--source", source,
        "--expect", "nobody@nowhere", "--reply-timeout", "0.2", "--window", "0.3")
    assert (rc, line.split(" - ")[0]) == (2, "CELERY_WORKERS CRITICAL"), line
    if source == "ping":  # on Redis the ping speaks kombu's format through redis-py
        assert_imports(packages, ["celery", "kombu", "billiard", "pika", "amqp"], ["redis"])
    else:
        assert_imports(packages, ["celery", "pika"], ["kombu", "redis"])
