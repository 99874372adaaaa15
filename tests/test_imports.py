"""What each check imports (not timed; the benchmark measures the cost).

Start-up is most of a check's cost, and the heavy client libraries are most
of start-up: celery alone costs more than the whole pulse file check. Each
case runs the real installed executable, in a subprocess, against the real
service, under ``python -X importtime`` (every import listed as it happens), and
asserts which top-level packages it must not (and must) have imported. The
check has to get as far as its status line, so a check failing early cannot
pass by importing little.
"""

import base64
import json
import subprocess
import sys

import pytest

from tests.kit.plugin import run_importing
from tests.kit.producers import declare_on_redis

EVERY_CLIENT = ("celery", "kombu", "billiard", "redis", "pika", "amqp")
EXIT = {"OK": 0, "CRITICAL": 2}

def imported(tmp_path, name, *args):
    """(exit code, first output line, top-level packages imported)."""
    result, packages = run_importing(name, *args)
    first_line = (result.stdout or result.stderr).split("\n", 1)[0]
    return result.rc, first_line, packages


class Setting:
    """What a case needs, made only when asked for (fixtures on demand)."""

    def __init__(self, request, tmp_path):
        self.request, self.tmp_path = request, tmp_path

    def pulse_file(self):
        path = self.tmp_path / "worker.pulse"
        path.write_text('{"state": "running"}')
        return str(path)

    def redis_url(self):
        return self.request.getfixturevalue("redis_url")

    def declared_redis_queue(self, queue="celery"):
        """The URL of a DB where a producer declared ``queue`` (its kombu
        binding), so the queue check answers OK with 0 waiting."""
        declare_on_redis(self.request.getfixturevalue("redis_client"), queue)
        return self.redis_url()

    def amqp_url_and_queue(self):
        rabbitmq = self.request.getfixturevalue("rabbitmq")
        queue = rabbitmq.queue_name()
        rabbitmq.channel().queue_declare(queue, durable=True)
        return rabbitmq.url, queue


def amqp_args(setting):
    url, queue = setting.amqp_url_and_queue()
    return ["-b", url, "-q", queue]


def management_args(setting):
    """The queue check through RabbitMQ's management API: http.client alone.
    A queue declared this instant has no figures yet (UNKNOWN, after the
    request): a name nobody declared is "not found" (CRITICAL) at once."""
    url, _queue = setting.amqp_url_and_queue()
    return ["-b", url, "-q", "cc-nobody-declared-this", "--management-url",
            "http://127.0.0.1:15672/", "--oldest", "--unacked-critical", "5"]


# check, its arguments, the status it must reach, what it must not import,
# what it must import (proof that it got as far as talking to the broker).
CASES = [
    pytest.param(
        "check_celery_pulsefile", lambda s: ["-f", s.pulse_file()], "OK",
        EVERY_CLIENT + ("hiredis",), ["nagiosplugin"], id="pulsefile"),
    # The Redis paths speak through connect/redis.py's own client (hiredis
    # underneath): redis-py, whose import alone costs more than the check's
    # whole budget, is not loaded.
    pytest.param(
        "check_celery_queue", lambda s: ["-b", s.declared_redis_queue(), "-q", "celery"], "OK",
        EVERY_CLIENT, ["hiredis"], id="queue-redis"),
    pytest.param(
        "check_celery_queue", amqp_args, "OK",
        ["celery", "kombu", "billiard", "redis", "amqp", "hiredis"], ["pika"], id="queue-rabbitmq"),
    pytest.param(
        "check_celery_queue", management_args, "CRITICAL",
        EVERY_CLIENT + ("hiredis",), ["http"], id="queue-rabbitmq-management"),
    # Consumers on Redis: the active_queues broadcast, through the checks'
    # own client alone.
    pytest.param(
        "check_celery_queue",
        lambda s: ["-b", s.declared_redis_queue(), "-q", "celery", "--consumers",
                   "--oldest", "--reply-timeout", "0.2"], "OK",
        EVERY_CLIENT, ["hiredis"], id="queue-redis-consumers"),
    # No record yet: CRITICAL "never seen", after the same one round trip.
    pytest.param(
        "check_celery_heartbeat", lambda s: ["--store", s.redis_url(), "-q", "celery"],
        "CRITICAL", EVERY_CLIENT, ["hiredis"], id="heartbeat"),
    # Nothing recorded: CRITICAL "no task recorded", after reading the store
    # and writing the state file.
    pytest.param(
        "check_celery_tasks",
        lambda s: ["--store", s.redis_url(), "--state-file", s.tmp_path / "state.json"],
        "CRITICAL", EVERY_CLIENT, ["hiredis"], id="tasks"),
    # No worker on this database: the broadcast goes out, nobody answers.
    pytest.param(
        "check_celery_workers",
        lambda s: ["-b", s.redis_url(), "--source", "ping", "--expect", "nobody@nowhere",
                   "--reply-timeout", "0.2"], "CRITICAL",
        EVERY_CLIENT, ["hiredis"], id="workers-ping-redis"),
    pytest.param(
        "check_celery_workers",
        lambda s: ["-b", s.redis_url(), "--source", "events", "--expect", "nobody@nowhere",
                   "--window", "0.3"], "CRITICAL",
        ["celery", "pika"], ["kombu", "redis"], id="workers-events-redis"),
]


@pytest.mark.parametrize("name, args, state, forbidden, required", CASES)
def test_check_imports_only_what_it_needs(request, tmp_path, name, args, state, forbidden,
                                          required):
    rc, line, packages = imported(tmp_path, name, *args(Setting(request, tmp_path)))
    status = "CELERY_%s %s" % (name.split("_", 2)[2].upper(), state)
    assert (rc, line.split(" - ")[0]) == (EXIT[state], status), line
    leaked = sorted(set(forbidden) & packages)
    assert not leaked, "%s imports %s" % (name, ", ".join(leaked))
    absent = sorted(set(required) - packages)
    assert not absent, "%s did not import %s (did it run?)" % (name, ", ".join(absent))


# What check_celery_workers' console script runs until the ping is out
# (runner.entry_point with start=sources.begin), then what it has imported.
PING_FIRST = """
import json, sys
from celery_checks.plugin import runner
from celery_checks.workers import options, sources
args = options.parse_args(sys.argv[1:])
begun = runner.begin(sources.begin, args, runner.Deadline(args.timeout))
sent = begun.result()
with sent:
    print(json.dumps({"receivers": sent.receivers,
                      "loaded": sorted(m for m in ("nagiosplugin", "celery_checks.workers.check")
                                       if m in sys.modules)}))
"""


def test_the_ping_is_out_before_the_check_loads_nagiosplugin(redis_server, redis_db):
    """The workers answer while the check imports nagiosplugin and its
    evaluation, not after (docs/performance.md: 10 ms later when a module
    the ping needs imported nagiosplugin). A subscriber on the pidbox topic
    stands in for a worker's mailbox."""
    mailbox = redis_server.client(redis_db).pubsub()
    mailbox.subscribe("/%d.celery.pidbox" % redis_db)
    mailbox.get_message(timeout=5)  # the subscription's confirmation
    try:
        proc = subprocess.run([sys.executable, "-c", PING_FIRST, "-b", redis_server.url(redis_db),
                               "--expect", "w1@host"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"receivers": 1, "loaded": []}
        envelope = json.loads(mailbox.get_message(timeout=5)["data"])
        assert json.loads(base64.b64decode(envelope["body"]))["method"] == "ping"
    finally:
        mailbox.close()
