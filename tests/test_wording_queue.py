"""check_celery_queue's words for given facts, in-process: literal depths
(what Redis or RabbitMQ would have said) go through the check's evaluate and
present parts; the exact lines are asserted. tests/test_queue.py runs the
check against real brokers, workers and producers."""

import pytest

from celery_checks.connect.layout import RedisLayout
from celery_checks.plugin.runner import Deadline
from celery_checks.queue import check as queue
from celery_checks.queue.facts import Depth, Findings
from celery_checks.queue.redis import Absence
from tests.kit.plugin import render

pytestmark = pytest.mark.quick

REDIS = ["-b", "redis://127.0.0.1:1/0"]  # parsed, never connected to
AMQP = ["-b", "amqp://guest:guest@127.0.0.1:1/prod"]
STEPS = (0, 3, 6, 9)


def answer(findings, *args, verbose=1):
    settings = queue.parse_args(list(args))
    return render(queue.make_check(settings, Deadline(settings.timeout), findings), verbose)


def on_redis(name, *per_step):
    """A Redis queue with these counts in its priority lists (0, 3, 6, 9)."""
    counts = per_step + (0,) * (4 - len(per_step))
    return Depth(name, sum(counts), list(zip(STEPS, counts)))


def test_one_redis_queue_singular_counts():
    result = answer(Findings(0, [on_redis("celery", 1)], unacked=0), *REDIS)
    assert result.stdout.splitlines() == [
        "CELERY_QUEUE OK - queue celery has 1 waiting message",
        "celery: 1 waiting",
        "unacked (reserved by workers): 0",
        "| celery=1;;;0 unacked=0;;;0",
    ]


def test_worst_queue_named_and_priorities_listed():
    findings = Findings(0, [on_redis("celery", 3, 0, 4), on_redis("mail", 130)], unacked=2)
    result = answer(findings, *REDIS, "-q", "celery", "-q", "mail", "-w", "100", "-c", "1000")
    assert result.stdout.splitlines() == [
        "CELERY_QUEUE WARNING - queue mail has 130 waiting messages (> 100)",
        "WARNING: queue mail has 130 waiting messages (> 100)",
        "celery: 7 waiting (priority 0-2: 3, 6-8: 4)",
        "mail: 130 waiting",
        "unacked (reserved by workers): 2",
        "| celery=7;100;1000;0 mail=130;100;1000;0 unacked=2;;;0",
    ]
    findings = Findings(0, [on_redis("celery", 3), on_redis("mail", 7)], unacked=0)
    assert answer(findings, *REDIS, "-q", "celery", "-q", "mail").first_line == (
        "CELERY_QUEUE OK - 2 queues, 10 messages waiting, most in mail (7)")


def test_queue_nobody_declared_says_where_it_is():
    depth = Depth("celery", 0, [(0, 0)], declared=False)
    depth.absence = Absence("celery", RedisLayout({}), 0, [(0, "pfx:")])
    result = answer(Findings(0, [depth], unacked=0), *REDIS)
    assert result.first_line == (
        "CELERY_QUEUE CRITICAL - queue celery not declared under key prefix '' in DB 0; "
        "found under prefix 'pfx:' (-O global_keyprefix=pfx:)")
    assert "celery" not in result.perfdata and result.long_output[1] == "celery: not declared"
    depth.absence = Absence("celery", RedisLayout({}), 3, [(1, "")])
    assert answer(Findings(3, [depth], unacked=0), *REDIS).first_line == (
        "CELERY_QUEUE CRITICAL - queue celery not declared under key prefix '' in DB 3; "
        "found in DB 1")
    depth.absence = Absence("celry", RedisLayout({}), 0, similar="celery")
    assert answer(Findings(0, [depth], unacked=0), *REDIS, "--missing-state", "warning").first_line \
        == ("CELERY_QUEUE WARNING - queue celry not declared under key prefix '' in DB 0; "
            "did you mean celery?")


def test_rabbitmq_consumers_and_missing_queue():
    result = answer(Findings(None, [Depth("celery", 1, consumers=1)]), *AMQP)
    assert result.stdout.splitlines() == [
        "CELERY_QUEUE OK - queue celery has 1 waiting message, 1 consumer",
        "celery: 1 waiting, 1 consumer",
        "| celery=1;;;0 consumers_celery=1;;;0",
    ]
    result = answer(Findings(None, [Depth("celery", 5, consumers=0)]), *AMQP,
                    "--consumers-critical", "1:")
    assert result.first_line == "CELERY_QUEUE CRITICAL - queue celery has 0 consumers (< 1)"
    assert result.perfdata["consumers_celery"].crit == "1:"
    result = answer(Findings(None, [Depth("celery")]), *AMQP)
    assert result.first_line == "CELERY_QUEUE CRITICAL - queue celery not found on vhost prod"
    assert not result.perfdata


def test_a_missing_queue_never_takes_a_real_queues_label():
    findings = Findings(None, [Depth("mail"), Depth("missing mail", 2, consumers=1)])
    result = answer(findings, *AMQP, "-q", "mail", "-q", "missing mail")
    assert sorted(result.perfdata) == ["consumers_missing mail", "missing mail"]


def test_settings_at_vv():
    result = answer(Findings(2, [on_redis("celery")], unacked=0),
                    "-b", "redis://:queue@127.0.0.1:1/2", "-vv", verbose=2)
    assert result.long_output[-2:] == [
        "broker: redis://:***@127.0.0.1:1/2",
        "DB 2, priority steps [0, 3, 6, 9], separator \\x06\\x16, key prefix '', "
        "unacked hash unacked",
    ]
    assert result.first_line == "CELERY_QUEUE OK - queue celery has 0 waiting messages"
