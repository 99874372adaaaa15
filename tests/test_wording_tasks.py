"""check_celery_tasks' words for given facts, in-process: literal task
records (and the previous run's counters) at a literal store time go
through the check's evaluate and present parts; exact lines are asserted.

tests/test_tasks.py runs real workers, the store and the executable."""

import pytest

from celery_checks.plugin.runner import Deadline
from celery_checks.store import tasks as store
from celery_checks.tasks import check as tasks
from celery_checks.tasks.facts import Absent, TaskStats, ago, judged, percentile, select
from tests.kit.plugin import render

pytestmark = pytest.mark.quick

NOW = 1_800_000_000.0  # the store's TIME
STORE = ["--store", "redis://127.0.0.1:1/0", "--state-file", "/nonexistent/state"]
HOUR = 3600.0


def record(succeeded=0, failed=0, retried=0, rejected=0, revoked=0, success=None,
           failure=None, exception=None, runs=None):
    """A decoded record; ``runs``: {bucket bound: count}."""
    buckets = [0] * (len(store.BUCKETS) + 1)
    for bound, count in (runs or {}).items():
        buckets[store.bucket_of(bound)] += count
    return dict(succeeded=succeeded, failed=failed, retried=retried, rejected=rejected,
                revoked=revoked, runtime_sum=0.0, buckets=buckets,
                last_success=None if success is None else NOW - success,
                last_failure=None if failure is None else NOW - failure,
                last_exception=exception)


def answer(records, *args, previous=None, since=None, verbose=0):
    """The check's output for ``records`` ({name: record}); ``previous``
    ({name: counters}) at ``since`` seconds before NOW, else a first run."""
    settings = tasks.parse_args(STORE + list(args))
    state = None if previous is None else {"tasks": previous}
    facts = judged(settings, NOW, records, select(records, settings.tasks, settings.max_age),
                   state, None if since is None else NOW - since)
    first = None if previous is not None else "first run"
    check = tasks.make_check(settings, Deadline(settings.timeout), facts, first)
    return render(check, verbose)


def counters(**values):
    r = record(**{k: v for k, v in values.items() if k != "runs"}, runs=values.get("runs"))
    return {c: r[c] for c in store.COUNTERS + ("buckets",)}


MAIL_BEFORE = counters(succeeded=100, failed=2, runs={0.01: 102})
MAIL_NOW = record(succeeded=128, failed=14, success=5, failure=3,
                  exception="ZeroDivisionError", runs={0.01: 130, 0.5: 12})


def test_first_run_judges_no_interval_and_says_so():
    result = answer({"mail.send": MAIL_NOW}, "-w", "1", verbose=1)
    assert result.stdout.splitlines() == [
        "CELERY_TASKS OK - 1 task recorded; first run, rates judged from the next run on",
        "mail.send: 128 succeeded, 14 failed (last ZeroDivisionError 3.0s ago), 0 retried, "
        "0 rejected, 0 revoked; last success 5.0s ago",
        "first run: no interval judged (state /nonexistent/state)",
        "| 'mail.send_failed'=14c;;;0 'mail.send_failed_interval'=U;1;;0 "
        "'mail.send_failure_ratio'=U;;;0;100 'mail.send_runtime'=U;;;0 "
        "'mail.send_succeeded'=128c;;;0 'mail.send_success_age'=5s;;;0",
    ]


def test_failures_in_the_interval_name_the_task_the_ratio_and_the_exception():
    result = answer({"mail.send": MAIL_NOW, "reports.nightly": record(succeeded=3, success=HOUR)},
                    "-w", "10", "-c", "20", "--failure-ratio-critical", "25",
                    previous={"mail.send": MAIL_BEFORE}, since=300, verbose=1)
    assert result.stdout.splitlines()[:4] == [
        "CELERY_TASKS CRITICAL - mail.send: 12 of 40 failed (30%), last ZeroDivisionError "
        "(ratio > 25%) (+1 more)",
        "CRITICAL: mail.send: 12 of 40 failed (30%), last ZeroDivisionError (ratio > 25%)",
        "WARNING: mail.send: 12 of 40 failed (30%), last ZeroDivisionError (failed > 10)",
        "mail.send: 128 succeeded, 14 failed (last ZeroDivisionError 3.0s ago), 0 retried, "
        "0 rejected, 0 revoked; last success 5.0s ago; in 5m: 40 runs, 12 failed, "
        "p95 0.458s",
    ]
    perf = result.perfdata
    assert perf["mail.send_failed_interval"].value == 12
    assert (perf["mail.send_failed_interval"].warn, perf["mail.send_failed_interval"].crit) == (
        "10", "20")
    assert perf["mail.send_failure_ratio"].value == 30 and perf["mail.send_failure_ratio"].uom == "%"
    assert perf["mail.send_runtime"].value == 0.458 and perf["mail.send_runtime"].uom == "s"
    # a task new since the previous run counts all its runs in the interval
    assert perf["reports.nightly_failed_interval"].value == 0
    assert perf["reports.nightly_runtime"].value == "U"  # no timed run


def test_quiet_interval_ok_line_sums_runs_and_failures():
    result = answer({"mail.send": MAIL_NOW}, previous={"mail.send": counters(
        succeeded=120, failed=14, runs={0.01: 130, 0.5: 4})}, since=61)
    assert result.first_line == "CELERY_TASKS OK - 1 task recorded: 8 runs in 61.0s, 0 failed"
    assert result.perfdata["mail.send_failure_ratio"].value == 0


def test_an_edited_state_entry_counts_as_zero():
    result = answer({"mail.send": record(succeeded=3, failed=1, runs={0.01: 4})}, "-w", "0",
                    previous={"mail.send": {"failed": "x", "buckets": [1, "y"]}}, since=60)
    assert result.first_line == "CELERY_TASKS WARNING - mail.send: 1 of 4 failed (25%) (failed > 0)"
    assert result.perfdata["mail.send_runtime"].value == 0.01


def test_counters_that_went_down_were_reset():
    result = answer({"mail.send": record(succeeded=3, failed=1, runs={0.01: 4})}, "-w", "0",
                    previous={"mail.send": MAIL_BEFORE}, since=60)
    assert result.first_line == "CELERY_TASKS WARNING - mail.send: 1 of 4 failed (25%) (failed > 0)"


def test_runtime_threshold_on_the_interval_p95():
    result = answer({"reports.build": record(succeeded=40, success=1, runs={20: 40})},
                    "--runtime-warning", "25", "--runtime-critical", "28",
                    previous={"reports.build": counters()}, since=600)
    assert result.first_line == (
        "CELERY_TASKS CRITICAL - reports.build: p95 runtime 29.0s (> 28s) over 40 runs")


def test_max_age_is_the_dead_mans_switch():
    nightly = record(succeeded=30, success=27 * HOUR)
    result = answer({"reports.nightly": nightly}, "--max-age", "reports.nightly=26h")
    assert result.first_line == (
        "CELERY_TASKS CRITICAL - reports.nightly: last success 27h ago (> 26h)")
    assert result.perfdata["reports.nightly_success_age"].crit == "93600"
    just = record(succeeded=30, success=26 * HOUR + 36)
    assert answer({"reports.nightly": just}, "--max-age", "reports.nightly=26h").first_line == (
        "CELERY_TASKS CRITICAL - reports.nightly: last success 26.01h ago (> 26h)")
    assert answer({"reports.nightly": record(succeeded=1, success=25 * HOUR)},
                  "--max-age", "reports.nightly=26h").rc == 0


def test_max_age_never_succeeded_and_no_such_task():
    failing = record(failed=3, failure=10, exception="KeyError")
    result = answer({"billing.charge": failing}, "--max-age", "billing.*=15m",
                    "--max-age", "reports.nightly=1d", verbose=1)
    assert result.stdout.splitlines()[:3] == [
        "CELERY_TASKS CRITICAL - reports.nightly: never succeeded, no such task recorded "
        "(max age 1d) (+1 more)",
        "CRITICAL: reports.nightly: never succeeded, no such task recorded (max age 1d)",
        "CRITICAL: billing.charge: never succeeded (max age 15m)",
    ]
    assert result.perfdata["billing.charge_success_age"].value == "U"
    assert result.perfdata["billing.charge_success_age"].crit == "900"


def test_first_matching_max_age_counts():
    result = answer({"billing.charge": record(succeeded=1, success=1000)},
                    "--max-age", "billing.charge=20m", "--max-age", "billing.*=15m")
    assert result.rc == 0 and result.perfdata["billing.charge_success_age"].crit == "1200"


def test_pattern_matching_nothing_is_missing():
    result = answer({"mail.send": MAIL_NOW}, "-T", "mail.*", "-T", "sms.*")
    assert result.first_line == (
        "CELERY_TASKS CRITICAL - sms.*: no task recorded: worker app lacks "
        "celery_checks.install(app)?")
    assert answer({}, "--missing-state", "warning").first_line == (
        "CELERY_TASKS WARNING - no task recorded in the store: worker app lacks "
        "celery_checks.install(app)?")
    # -T selects; the others are left out, perfdata too
    result = answer({"mail.send": MAIL_NOW, "sms.send": MAIL_NOW}, "-T", "sms.*")
    assert result.rc == 0 and not any(k.startswith("mail.") for k in result.perfdata)


@pytest.mark.parametrize("spec", ["reports.nightly", "=26h", "x=26", "x=26w", "x=h", "x=-1h",
                                  "x=0s", "x=1e3s"])
def test_malformed_max_age_is_a_usage_error(spec, capsys):
    if spec == "x=26":  # a bare number is seconds
        assert tasks.parse_args(STORE + ["--max-age", spec]).max_age == [("x", 26.0, "26s")]
        return
    with pytest.raises(SystemExit) as exit_:
        tasks.parse_args(STORE + ["--max-age", spec])
    assert exit_.value.code == 3
    assert capsys.readouterr().out.startswith("CELERY_TASKS UNKNOWN - argument --max-age: "
                                              "invalid --max-age")


def test_relative_state_file_lives_in_var_tmp_and_the_default_names_the_options():
    assert tasks.parse_args(STORE[:2] + ["--state-file", "x.json"]).state_file == "/var/tmp/x.json"
    one = tasks.parse_args(STORE[:2]).state_file
    assert one.startswith("/var/tmp/check_celery_tasks.") and one.endswith(".json")
    assert tasks.parse_args(STORE[:2] + ["-T", "mail.*"]).state_file != one
    assert tasks.parse_args(STORE[:2] + ["-v", "-t", "5"]).state_file == one
    assert tasks.parse_args(["--store", "redis://:pw@127.0.0.1:1/0"]).state_file == \
        tasks.parse_args(["--store", "redis://:other@127.0.0.1:1/0"]).state_file


def test_durations_and_percentiles():
    assert [ago(v) for v in (0.5, 90, 900, 27 * HOUR, 3 * 86400)] == [
        "0.500s", "90.0s", "15m", "27h", "3d"]
    assert percentile([0] * (len(store.BUCKETS) + 1)) is None
    assert percentile([10] + [0] * len(store.BUCKETS)) == 0.00475
    assert percentile([0] * len(store.BUCKETS) + [3]) == store.BUCKETS[-1]


def test_absent_and_stats_are_the_items():
    facts = judged(tasks.parse_args(STORE + ["-T", "a*", "--max-age", "b=1h"]), NOW,
                   {"a1": record()}, ["a1"], None, None)
    assert [type(f) for f in facts] == [TaskStats, Absent]
    assert facts[1].name == "b" and facts[1].max_age[1][2] == "1h"
