"""check_celery_workers' words for given facts, in-process: literal replies
(what a source heard) go through the inventory, the check's evaluate and
present parts; the exact lines are asserted. tests/test_workers.py runs the
check against real workers on Redis and RabbitMQ."""

import pytest

from celery_checks.plugin.runner import Deadline
from celery_checks.workers import check as workers
from celery_checks.workers.options import parse_args
from celery_checks.workers.inventory import Inventory
from celery_checks.workers.replies import Observed, Reply
from tests.kit.plugin import render

pytestmark = pytest.mark.quick

BROKER = ["-b", "redis://127.0.0.1:1/0"]  # parsed, never connected to
PAIR = [Reply("special-1@serverA", rtt=0.0123), Reply("special-2@serverA", rtt=0.0311)]


def answer(replies, *args, note=None, verbose=1):
    # the stdin source names no broker (-b with it is a usage error)
    settings = parse_args(([] if "stdin" in args else BROKER) + list(args))
    heard = Observed(replies)
    heard.note = note
    seen = workers.Seen(heard, Inventory(settings.expect))
    return render(workers.make_check(settings, Deadline(settings.timeout), seen), verbose)


def test_all_expected_present():
    result = answer(list(PAIR), "--expect", "special-*@serverA=2")
    assert result.stdout.splitlines() == [
        "CELERY_WORKERS OK - 2 workers online, all 2 expected present (max rtt 0.031s)",
        "special-1@serverA: online, rtt 0.012s [special-*@serverA]",
        "special-2@serverA: online, rtt 0.031s [special-*@serverA]",
        "| 'rtt_special-1@serverA'=0.012s;;;0 'rtt_special-2@serverA'=0.031s;;;0 expected=2;;;0 "
        "missing=0;;;0 online=2;;;0 unexpected=0;;;0",
    ]


def test_missing_node_is_named():
    result = answer(PAIR[:1], "--expect", "special-1@serverA", "--expect", "special-2@serverA")
    assert result.first_line == ("CELERY_WORKERS CRITICAL - 1 of 2 expected workers missing: "
                                 "special-2@serverA")
    assert result.long_output[0] == "MISSING special-2@serverA: 0 of 1 online"
    result = answer([], "--expect", "special-*@serverA=4")
    assert result.first_line == ("CELERY_WORKERS CRITICAL - 4 of 4 expected workers missing: "
                                 "special-*@serverA (only 0 of 4)")
    assert answer([], "--expect", "w1@vm").first_line == (
        "CELERY_WORKERS CRITICAL - 1 of 1 expected worker missing: w1@vm")


def test_unexpected_node_warns():
    result = answer(list(PAIR) + [Reply("extra@h", rtt=0.01)], "--expect", "special-*@serverA=2")
    assert result.first_line == "CELERY_WORKERS WARNING - 1 unexpected: extra@h"
    assert "extra@h: online, rtt 0.01s [unexpected]" in result.long_output
    assert result.perfdata["unexpected"].value == 1


def test_long_lists_are_shortened_to_the_line():
    names = ["special-%d@host%d" % (i, i) for i in range(6)]
    args = [a for name in names for a in ("--expect", name)]
    assert answer([], *args).first_line == (
        "CELERY_WORKERS CRITICAL - 6 of 6 expected workers missing: special-0@host0, +5 more")
    # at least one name, however long
    long_names = [a for i in range(3) for a in ("--expect", "special-%d@%s" % (i, "h" * 60))]
    assert answer([], *long_names).first_line == (
        "CELERY_WORKERS CRITICAL - 3 of 3 expected workers missing: special-0@%s, +2 more" % ("h" * 60))


def test_no_inventory_no_thresholds_and_nobody_answers():
    assert answer([]).first_line == "CELERY_WORKERS CRITICAL - no worker answered"
    assert answer(list(PAIR), "-c", "3:").first_line == "CELERY_WORKERS CRITICAL - 2 online (< 3)"


def test_celerys_own_words_on_stdin():
    result = answer([], "--source", "stdin", "--expect", "w1@vm",
                    note="celery: No nodes replied within time constraint")
    assert result.first_line == (
        "CELERY_WORKERS CRITICAL - celery: No nodes replied within time constraint; "
        "1 of 1 expected worker missing: w1@vm")


def test_events_versions_and_counts_only_in_long_output():
    heard = [Reply("a@h", hb_age=0.4, freq=2.0, sw_ver="5.7.0", active=1, processed=10),
             Reply("b@h", hb_age=0.2, freq=2.0, sw_ver="5.2.6")]
    result = answer(heard, "--source", "events", "--versions-differ-state", "warning")
    assert result.stdout.splitlines() == [
        "CELERY_WORKERS WARNING - workers run celery 5.2.6, 5.7.0",
        "a@h: online, heartbeat 0.4s ago, active 1, processed 10, celery 5.7.0",
        "b@h: online, heartbeat 0.2s ago, celery 5.2.6",
        "| 'hb_age_a@h'=0.4s;;;0 'hb_age_b@h'=0.2s;;;0 expected=0;;;0 missing=0;;;0 "
        "online=2;;;0 unexpected=0;;;0",
    ]


def test_settings_at_vv():
    result = answer(list(PAIR), "-vv", "-O", "visibility_timeout=60", verbose=2)
    assert result.long_output[-2:] == [
        "source ping on broker redis://127.0.0.1:1/0",
        "transport options not used by this check: visibility_timeout",
    ]
