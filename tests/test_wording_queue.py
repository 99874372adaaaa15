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
    result = answer(Findings(None, [Depth("celery", 0, consumers=0)]), *AMQP,
                    "--consumers-critical", "1:")
    assert result.first_line == "CELERY_QUEUE CRITICAL - queue celery has 0 consumers (< 1)"
    assert result.perfdata["consumers_celery"].crit == "1:"
    # Messages wait and nobody consumes them: the orphan is the headline.
    result = answer(Findings(None, [Depth("celery", 5, consumers=0)]), *AMQP,
                    "--consumers-critical", "1:")
    assert result.first_line == "CELERY_QUEUE CRITICAL - queue celery: 5 waiting, no consumer " \
        "(+1 more)"
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


def counted(name, waiting, workers):
    """A Redis queue whose consumers the active_queues broadcast counted."""
    depth = on_redis(name, waiting)
    depth.workers, depth.consumers = list(workers), len(workers)
    return depth


def test_orphan_state_and_consumers_on_redis():
    findings = Findings(0, [counted("mail", 120, []), counted("celery", 3, ["w1@h", "w2@h"])],
                        unacked=0)
    result = answer(findings, *REDIS, "-q", "mail", "-q", "celery", "--consumers")
    assert result.stdout.splitlines() == [
        "CELERY_QUEUE CRITICAL - queue mail: 120 waiting, no consumer",
        "CRITICAL: queue mail: 120 waiting, no consumer",
        "mail: 120 waiting, 0 consumers, consumed by nobody that answered",
        "celery: 3 waiting, 2 consumers, consumed by w1@h, w2@h",
        "unacked (reserved by workers): 0",
        "| celery=3;;;0 consumers_celery=2;;;0 consumers_mail=0;;;0 mail=120;;;0 unacked=0;;;0",
    ]
    result = answer(findings, *REDIS, "-q", "mail", "-q", "celery", "--orphan-state", "warning")
    assert result.first_line == "CELERY_QUEUE WARNING - queue mail: 120 waiting, no consumer"
    result = answer(findings, *REDIS, "-q", "mail", "-q", "celery", "--orphan-state", "ok",
                    "--consumers-warning", "2:")
    assert result.first_line == "CELERY_QUEUE WARNING - queue mail has 0 consumers (< 2)"


def test_unacked_ranges_and_management_facts():
    findings = Findings(None, [Depth("celery", 7, consumers=1, unacked=3)])
    result = answer(findings, *AMQP, "--management-url", "http://127.0.0.1:1/",
                    "--unacked-warning", "2", "--unacked-critical", "5")
    assert result.stdout.splitlines() == [
        "CELERY_QUEUE WARNING - queue celery has 3 unacked messages (> 2)",
        "WARNING: queue celery has 3 unacked messages (> 2)",
        "celery: 7 waiting, 1 consumer, 3 unacked",
        "| celery=7;;;0 consumers_celery=1;;;0 unacked_celery=3;2;5;0",
    ]


def aged(name, waiting, oldest=None, unstamped=False, ahead=None):
    depth = on_redis(name, waiting)
    depth.oldest, depth.unstamped, depth.ahead = oldest, unstamped, ahead
    return depth


def test_oldest_age_ranges_unknown_and_skew():
    findings = Findings(0, [aged("mail", 50, 7200.25), aged("celery", 0, 0)], unacked=0,
                        clock="Redis TIME")
    result = answer(findings, *REDIS, "-q", "mail", "-q", "celery", "--oldest-warning", "60",
                    "--oldest-critical", "3600")
    assert result.stdout.splitlines() == [
        "CELERY_QUEUE CRITICAL - queue mail: oldest message waited 7200s (> 3600s)",
        "CRITICAL: queue mail: oldest message waited 7200s (> 3600s)",
        "mail: 50 waiting, oldest 7200s",
        "celery: 0 waiting",
        "unacked (reserved by workers): 0",
        "| celery=0;;;0 mail=50;;;0 oldest_celery=0s;60;3600;0 "
        "oldest_mail=7200.25s;60;3600;0 unacked=0;;;0",
    ]
    findings = Findings(0, [aged("mail", 50, unstamped=True), aged("celery", 2, 0.0, ahead=30)],
                        unacked=0, clock="Redis TIME")
    result = answer(findings, *REDIS, "-q", "mail", "-q", "celery", "--oldest")
    assert result.stdout.splitlines() == [
        "CELERY_QUEUE OK - 2 queues, 52 messages waiting, most in mail (50)",
        "mail: 50 waiting, oldest: age unknown",
        "celery: 2 waiting, oldest 0.000s, its stamp 30s ahead of the clock",
        "unacked (reserved by workers): 0",
        "age unknown for 1 queue: the oldest message carries no publish time "
        "(celery_checks.install(app) in the producers stamps it)",
        "clocks disagree: a publish stamp is ahead of Redis TIME (producer clock off?); "
        "its age counts as 0",
        "| celery=2;;;0 mail=50;;;0 oldest_celery=0s;;;0 unacked=0;;;0",
    ]
    single = Findings(0, [aged("mail", 4, 12.5)], unacked=0)
    assert answer(single, *REDIS, "-q", "mail", "--oldest").first_line == (
        "CELERY_QUEUE OK - queue mail has 4 waiting messages, oldest 12.5s")


def test_stamps_make_the_oldest_age():
    from celery_checks.queue.facts import publish_stamp

    depth = Depth("q", 3)
    depth.stamped([100.0, 90.5], 100.0)
    assert (depth.oldest, depth.unstamped, depth.ahead) == (9.5, False, None)
    depth = Depth("q", 3)
    depth.stamped([100.0, None], 100.0)  # one priority list's next message is unstamped
    assert (depth.oldest, depth.unstamped) == (None, True)
    depth = Depth("q", 0)
    depth.stamped([], 100.0)
    assert depth.oldest == 0
    depth = Depth("q", 1)
    depth.stamped([101.5], 100.0)  # within the tolerance: rounding, not skew
    assert (depth.oldest, depth.ahead) == (0.0, None)
    depth.stamped([110.0], 100.0)
    assert (depth.oldest, depth.ahead) == (0.0, 10.0)
    header = {"headers": {"celery_checks_sent": 12.5}, "properties": {"timestamp": 10}}
    assert publish_stamp(header, "celery_checks_sent") == 12.5
    assert publish_stamp({"headers": {}, "properties": {"timestamp": 10}}, "x") == 10.0
    assert publish_stamp({"headers": {"x": True}}, "x") is None
    assert publish_stamp(None, "x") is None


def test_consumers_judged_as_soon_as_no_reply_can_change_a_verdict():
    import nagiosplugin

    from celery_checks.queue.consumers import judged

    busy, idle = Depth("busy", 5), Depth("idle", 0)
    one = [nagiosplugin.Range("1:")]
    assert not judged([busy, idle], {}, [])  # busy has no consumer yet
    assert judged([busy, idle], {"w@h": {"busy"}}, [])
    assert not judged([busy, idle], {"w@h": {"busy"}}, one)  # idle may still get one
    assert judged([busy, idle], {"w@h": {"busy", "idle"}}, one)
    # An upper bound: one more consumer could still cross it.
    assert not judged([busy], {"w@h": {"busy"}}, [nagiosplugin.Range("2")])
    assert judged([busy], {"a": {"busy"}, "b": {"busy"}, "c": {"busy"}},
                  [nagiosplugin.Range("2")])


def test_labels_of_long_names_stay_apart_in_19_characters():
    findings = Findings(None, [Depth("notifications-email", 1, consumers=1, unacked=0),
                               Depth("notifications-sms", 2, consumers=1, unacked=0)])
    result = answer(findings, *AMQP, "-q", "notifications-email", "-q", "notifications-sms",
                    "--management-url", "http://127.0.0.1:1/")
    assert sorted(result.perfdata) == [
        "consumers_notific_2", "consumers_notifications-email", "notifications-email",
        "notifications-sms", "unacked_notificat_2", "unacked_notifications-email"]
    assert len({label[:19] for label in result.perfdata}) == 6
