"""check_celery_heartbeat's words for given facts, in-process (seconds for
the whole module): literal store records at a literal store time go through
the check's evaluate and present parts; the exact lines are asserted.

tests/test_heartbeat.py runs the real trigger, workers and store."""

import pytest

from celery_checks.heartbeat import check as heartbeat
from celery_checks.plugin.runner import Deadline
from tests.kit.plugin import render

pytestmark = pytest.mark.quick

NOW = 1_800_000_000.0  # the store's TIME
STORE = ["--store", "redis://127.0.0.1:1/0"]  # parsed, never connected to


def answer(records, *args, verbose=1):
    argv = STORE + [a for q in records for a in ("-q", q)] + list(args)
    settings = heartbeat.parse_args(argv)
    facts = [heartbeat.QueueHeartbeat(q, record, NOW) for q, record in records.items()]
    return render(heartbeat.make_check(settings, Deadline(settings.timeout), facts), verbose)


def ago(seconds):
    return NOW - seconds


HEALTHY = dict(published=ago(12), started=ago(12), worker="w1@h", latency=0.004,
               publisher="trigger@m")


def test_healthy_queue():
    result = answer({"celery": HEALTHY})
    assert result.stdout.splitlines() == [
        "CELERY_HEARTBEAT OK - celery healthy: heartbeat 12.0s ago, waited 0.004s",
        "celery: started 12.0s ago by w1@h, waited 0.004s, last published 12.0s ago by trigger@m",
        "| celery_age=12s;300;600;0 celery_latency=0.004s;60;300;0",
    ]


def test_queue_never_seen_has_no_perfdata():
    result = answer({"celery": {}})
    assert result.rc == 2
    assert result.first_line == (
        "CELERY_HEARTBEAT CRITICAL - celery: no heartbeat ever recorded: trigger not "
        "scheduled for it? worker app lacks celery_checks.install(app)?")
    assert result.long_output[-1] == "celery: never seen" and not result.perfdata
    assert answer({"celery": {}}, "--missing-state", "warning").rc == 1


def test_record_under_another_prefix_is_named():
    queue = heartbeat.QueueHeartbeat("celery", {}, NOW)
    queue.elsewhere = [(None, "app1:")]
    settings = heartbeat.parse_args(STORE)
    result = render(heartbeat.make_check(settings, Deadline(10), [queue]))
    assert result.first_line == ("CELERY_HEARTBEAT CRITICAL - celery: no heartbeat record "
                                 "here; one exists with -O global_keyprefix=app1:")


def test_record_in_another_db_is_named():
    queue = heartbeat.QueueHeartbeat("celery", {}, NOW)
    queue.elsewhere = [(None, ""), (3, None), (5, "app1:")]
    settings = heartbeat.parse_args(STORE)
    result = render(heartbeat.make_check(settings, Deadline(10), [queue]), verbose=1)
    assert result.first_line == (
        "CELERY_HEARTBEAT CRITICAL - celery: no heartbeat record here; one exists with no "
        "global_keyprefix, in DB 3, in DB 5 with -O global_keyprefix=app1:")
    assert result.long_output[-1] == (
        "celery: never seen, a record exists with no global_keyprefix, in DB 3, "
        "in DB 5 with -O global_keyprefix=app1:")


def test_first_heartbeat_waiting_is_never_called_healthy():
    waiting = dict(published=ago(11), pending_since=ago(11), publisher="trigger@m")
    assert answer({"archive": waiting}).first_line == (
        "CELERY_HEARTBEAT OK - archive: first heartbeat waiting 11.0s, none started yet")
    waiting = dict(published=ago(70), pending_since=ago(70), publisher="trigger@m")
    result = answer({"archive": waiting})
    assert result.first_line == (
        "CELERY_HEARTBEAT WARNING - archive: first heartbeat waiting 70.0s, none started yet: "
        "no consumer, or its app lacks install(app) or checks_store_url? (latency > 60s)")
    assert result.perfdata["archive_latency"].value == 70


def test_stuck_queue_is_stuck_not_a_trigger_problem():
    # cron every minute, the worker gone 310 s ago: the next heartbeat has
    # been waiting since 60 s after the last start
    stuck = dict(published=ago(10), pending_since=ago(250), started=ago(310), worker="w1@h",
                 latency=0.01)
    result = answer({"mail": stuck})
    assert result.stdout.splitlines()[:3] == [
        "CELERY_HEARTBEAT WARNING - mail stuck: heartbeat waiting 250s, last started 310s ago "
        "(age > 300s) (+1 more)",
        "WARNING: mail stuck: heartbeat waiting 250s, last started 310s ago (age > 300s)",
        "WARNING: mail stuck: heartbeat waiting 250s, last started 310s ago (latency > 60s)",
    ]


def test_trigger_stale_only_when_nothing_was_published():
    stale = dict(published=ago(310), started=ago(310), worker="w1@h", latency=0.01)
    assert answer({"mail": stale}).first_line == (
        "CELERY_HEARTBEAT WARNING - mail trigger stale: last heartbeat 310s ago, none published "
        "since (age > 300s)")
    # published again after a gap, not yet started: the trigger was stale
    resumed = dict(published=ago(0.5), pending_since=ago(0.5), started=ago(610), worker="w1@h")
    assert answer({"mail": resumed}).first_line == (
        "CELERY_HEARTBEAT CRITICAL - mail trigger stale: last heartbeat 610s ago, next published "
        "only 0.500s ago (age > 600s)")


def test_failing_trigger_names_its_reason():
    failing = dict(published=ago(400), started=ago(400), worker="w1@h", latency=0.01, failed=ago(5),
                   failure="cannot publish to broker redis://:***@h/0: Connection refused")
    assert answer({"mail": failing}).first_line == (
        "CELERY_HEARTBEAT WARNING - mail trigger failing: last heartbeat 400s ago; cannot publish "
        "to broker redis://:***@h/0: Connection refused (age > 300s)")


def test_an_age_never_reads_equal_to_its_threshold():
    late = dict(published=ago(300.04), started=ago(300.04), worker="w1@h")
    assert answer({"mail": late}).first_line == (
        "CELERY_HEARTBEAT WARNING - mail trigger stale: last heartbeat 300.04s ago, none published "
        "since (age > 300s)")


def test_several_queues():
    other = dict(published=ago(30), started=ago(30), worker="w2@h", latency=1.5)
    result = answer({"celery": HEALTHY, "mail": other})
    assert result.first_line == ("CELERY_HEARTBEAT OK - 2 queues healthy, oldest mail: "
                                 "heartbeat 30.0s ago, waited 1.5s")
    assert list(result.perfdata) == ["celery_age", "celery_latency", "mail_age", "mail_latency"]
    waiting = dict(published=ago(11), pending_since=ago(11))
    assert answer({"celery": HEALTHY, "new": waiting}).first_line == (
        "CELERY_HEARTBEAT OK - 2 queues OK, new: first heartbeat waiting 11.0s, none started yet")


def test_settings_at_vv_show_the_store_redacted():
    settings = heartbeat.parse_args(["--store", "redis://:celery@127.0.0.1:1/0", "-vv"])
    facts = [heartbeat.QueueHeartbeat("celery", HEALTHY, NOW)]
    result = render(heartbeat.make_check(settings, Deadline(10), facts), verbose=2)
    assert result.long_output[-1] == "heartbeat store redis://:***@127.0.0.1:1/0"
    assert "OK - celery healthy" in result.first_line  # the password is a word of the output
