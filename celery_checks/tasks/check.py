"""check_celery_tasks: do tasks fail, retry, run long, or stop succeeding?

Workers of an app that called ``celery_checks.install(app)`` count, per task
name, what they finished (celery_checks/worker/tasks.py) in the store
(celery_checks/store/tasks.py has the key layout). This check reads the
store only (redis, not celery), keeps the counters of its previous run in
a state file (nagiosplugin's Cookie) and judges the interval between the
two runs; the age of each task's last success needs no state.

acquire:  Tasks reads the records (two round trips), the previous run's
          counters from the state file, and writes the new ones;
          TaskStats derives the interval's counts, ratio and runtimes
evaluate: Thresholds on the interval's failures (-w/-c), failure ratio
          and p95 runtime, and on the age of the last success
          (--max-age: the dead-man's switch); Conditions for a pattern
          that matches no recorded task
present:  TasksSummary names the worst task and why; -v lists every task
"""

import argparse

import nagiosplugin

from celery_checks.plugin import cli, runner, thresholds
from celery_checks.plugin.contexts import Condition, Threshold
from celery_checks.plugin.perfdata import label, number, plural, seconds, violation
from celery_checks.plugin.policy import CheckError, nagios_state
from celery_checks.plugin.resource import Resource
from celery_checks.plugin.summary import ProblemSummary
from celery_checks.store import tasks as store
from celery_checks.tasks.facts import (
    STATE_DIR, Absent, TaskStats, ago, judged, max_age, select, state_key, state_path)

INSTALL_HINT = "worker app lacks celery_checks.install(app)?"

HELP = dict(
    check="""\
For each task name recorded by workers whose app calls
celery_checks.install(app) (-T, repeatable shell globs; default: all):
the runs that succeeded, failed (with the last exception's class name),
retried, were rejected or revoked; the age of the last success; and, over
the interval since the previous run of this check, the failures, the
failure ratio (failed / (succeeded + failed)) and the 95th percentile
runtime (from fixed buckets, 5ms to 1h). The previous run's counters are
kept in --state-file; the first run judges no interval and says so.
--max-age TASK=DURATION (a glob; 90s, 15m, 26h, 2d) is the dead-man's
switch: CRITICAL when a matching task's last success is older, when it
never succeeded, or when no task matches. All times are the store's own
clock. Reads only the store (two round trips); writes the state file.""",
    perfdata="""\
TASK_succeeded         runs that succeeded, a counter (c)
TASK_failed            runs that failed, a counter (c)
TASK_failed_interval   failures in the interval, warn/crit from -w/-c
TASK_failure_ratio     % of the interval's runs that failed
TASK_runtime           the interval's p95 runtime in s
TASK_success_age       s since the last success, crit from --max-age
Interval values are U on the first run and when no run finished.""",
    states="""\
OK        every task inside its thresholds (none by default)
WARNING   a task outside -w, --failure-ratio-warning, --runtime-warning;
          the line names it and why ("mail.send: 12 of 40 failed (30%),
          last ZeroDivisionError (failed > 10)")
CRITICAL  the same outside the critical ranges; a --max-age task whose
          last success is too old or that never succeeded ("reports.
          nightly: last success 27h ago (> 26h)"); a -T pattern matching
          no recorded task (--missing-state); the store cannot be reached
UNKNOWN   the state file cannot be written (the reason is given)""",
    examples="""\
check_celery_tasks --store redis://cache:6379/3 -w 10 \\
    --failure-ratio-critical 50 --max-age reports.nightly=26h
check_celery_tasks -T 'mail.*' --runtime-warning 30 -v""",
    prog="check_celery_tasks", broker=True,
    summary="Alert when Celery tasks fail, run long or stop succeeding.",
)


def parse_args(argv=None):
    parser = cli.make_parser(**HELP)
    parser.add_argument("-T", "--task", metavar="PATTERN", action="append", dest="tasks",
                        help="task names to check, a shell glob; repeatable (default: all)")
    thresholds.add_threshold_pair(parser, "each task's failures in the interval", None, None,
                           flags=(("-w", "--failed-warning"), ("-c", "--failed-critical")))
    for what in ("warning", "critical"):  # the long form every check has: --warning
        parser.add_argument("--" + what, dest="failed_" + what, type=thresholds.threshold_range,
                            help=argparse.SUPPRESS)
    for option, what in (("failure-ratio", "failure ratio in %%"),
                         ("runtime", "p95 runtime in seconds")):
        thresholds.add_threshold_pair(parser, "each task's interval " + what, None, None, flags=(
            ("--%s-warning" % option,), ("--%s-critical" % option,)))
    parser.add_argument("--max-age", metavar="TASK=DURATION", action="append", type=max_age,
                        default=[], help="CRITICAL when TASK (a glob) last succeeded longer "
                        "ago, or never; repeatable, the first match counts")
    cli.add_state_option(parser, "--missing-state",
                         "state of a -T pattern matching no recorded task", 2)
    parser.add_argument("--state-file", metavar="PATH",
                        help="the previous run's counters; a relative PATH is in %s "
                        "(default: %s/check_celery_tasks.UID.KEY.json, KEY from the "
                        "store and the options)" % (STATE_DIR, STATE_DIR))
    cli.add_store_options(parser, "celery-checks store")
    args = parser.parse_args(argv)
    args.store.role = "task store"
    args.state_file = state_path(args)
    return args


# ------------------------------------------------------------------- acquire

class Tasks(Resource):
    def __init__(self, args, deadline, facts=None):
        super().__init__(facts)
        self.args, self.target, self.deadline = args, args.store, deadline
        self.first = None  # why no interval was judged, when none was

    def acquire(self):
        from celery_checks.connect.redis import redis_client, redis_errors

        target = self.target
        with redis_errors(target.url, target.role):
            client = redis_client(target.url, target.options, self.deadline.network_timeout())
            try:
                now, records = store.read(client, target.options)
            finally:
                client.close()
        names = select(records, self.args.tasks, self.args.max_age)
        state = self.exchange(now, {n: records[n] for n in names}, state_key(self.args))
        since = state.get("time") if state else None
        return judged(self.args, now, records, names, state, since)

    def exchange(self, now, records, key):
        """The previous run's state; this run's in its place."""
        path = self.args.state_file
        try:
            cookie = nagiosplugin.Cookie(path)
            try:
                cookie.open()
            except ValueError:  # damaged: the Cookie emptied it
                self.first = "state file was damaged"
            previous = dict(cookie.data)
            cookie.data = {"key": key, "time": now, "tasks": {
                name: {c: r[c] for c in store.COUNTERS + ("buckets",)}
                for name, r in records.items()}}
            cookie.commit()
            cookie.close()
        except OSError as exc:
            raise CheckError("cannot write state file %s: %s" % (
                path, exc.strerror or exc))
        if previous.get("key") != key or not isinstance(previous.get("time"), (int, float)) \
                or not isinstance(previous.get("tasks"), dict) or previous["time"] >= now:
            self.first = self.first or "first run"
            return None
        return previous

    def metrics(self, tasks):
        for task in tasks:
            if isinstance(task, Absent):
                yield self.metric(task.name + "_missing", 1,
                                  "never" if task.max_age else "missing", task)
                continue
            name, d = task.name, task.delta
            yield self.metric(name + "_succeeded", task.record["succeeded"], "counter", task,
                              uom="c", min=0)
            yield self.metric(name + "_failed", task.record["failed"], "counter", task,
                              uom="c", min=0)
            yield self.metric(name + "_failed_interval", d and d["failed"], "failed", task, min=0)
            yield self.metric(name + "_failure_ratio", d and task.ratio, "ratio", task,
                              uom="%", min=0, max=100)
            yield self.metric(name + "_runtime", d and task.runtime, "runtime", task,
                              uom="s", min=0)
            context = "max_age_%d" % task.max_age[0] if task.max_age else "success_age"
            yield self.metric(name + "_success_age", task.age, context, task, uom="s", min=0)


# ------------------------------------------------------------------ evaluate

class Interval(Threshold):
    """Judges an interval's value; None (no interval, no run) is OK, shown as U."""

    def __init__(self, name, warning, critical, words):
        super().__init__(name, warning, critical, words=words)

    def evaluate(self, metric, resource):
        if metric.value is None:
            return self.result_cls(nagiosplugin.Ok, None, metric)
        return super().evaluate(metric, resource)

    def performance(self, metric, resource):
        if metric.value is not None:
            return super().performance(metric, resource)
        # 'U' stands alone: a unit after it is more than some cores parse.
        return nagiosplugin.Performance(label(metric.name), "U", "", self.warning,
                                        self.critical, number(metric.min) if metric.min is not None
                                        else "", "" if metric.max is None else metric.max)


class MaxAge(Interval):
    def __init__(self, index, rule):
        super().__init__("max_age_%d" % index, None, "%s" % number(rule[1]), None)
        self.rule = rule

    def evaluate(self, metric, resource):
        if metric.value is None:
            return self.result_cls(nagiosplugin.Critical, "%s: never succeeded (max age %s)" % (
                resource.item(metric).name, self.rule[2]), metric)
        return super().evaluate(metric, resource)

    def words(self, task, value, broken):
        if broken is not None:
            return "%s: last success %s ago (> %s)" % (
                task.name, ago(value, self.rule[1]), self.rule[2])


def failed_words(kind):
    def words(task, value, broken):
        if broken is not None:
            return "%s (%s %s)" % (task.failures(), kind, violation(broken, "%" if kind == "ratio" else ""))
    return words


def runtime_words(task, value, broken):
    if broken is not None:
        return "%s: p95 runtime %s (%s) over %s" % (
            task.name, seconds(value, broken), violation(broken, "s"), plural(task.runs, "run"))


def absent(item, value):
    if item.max_age:
        return "%s: never succeeded, no such task recorded (max age %s)" % (
            item.name, item.max_age[1][2])
    if item.name == "*":
        return "no task recorded in the store: %s" % INSTALL_HINT
    return "%s: no task recorded: %s" % (item.name, INSTALL_HINT)


# ------------------------------------------------------------------- present

class TasksSummary(ProblemSummary):
    def ok(self, results):
        resource = results[0].resource if results else None
        tasks = [t for t in (resource.facts if resource else []) if isinstance(t, TaskStats)]
        text = "%s recorded" % plural(len(tasks), "task")
        if resource is None or resource.first:
            return text + "; %s, rates judged from the next run on" % (
                resource.first if resource else "first run")
        runs = sum(t.runs for t in tasks)
        failed = sum(t.delta["failed"] for t in tasks)
        interval = ago(tasks[0].interval) if tasks else "?"
        return text + ": %s in %s, %d failed" % (plural(runs, "run"), interval, failed)

    def item_lines(self, resource):
        if not resource:
            return []
        lines = [t.describe() for t in resource.facts if isinstance(t, TaskStats)]
        if resource.first:
            lines.append("%s: no interval judged (state %s)" % (resource.first,
                                                                  resource.args.state_file))
        return lines

    def settings_lines(self, resource):
        return ["task store %s, state file %s" % (resource.target.shown, resource.args.state_file)
                ] if resource else []


def make_check(args, deadline, facts=None, first=None):
    """The check for parsed ``args``; ``facts`` (TaskStats/Absent list)
    instead of reading the store, ``first`` the no-interval reason, for tests."""
    resource = Tasks(args, deadline, facts)
    resource.first = first
    return runner.check_of(
        "celery_tasks", resource,
        Threshold("counter"),
        Interval("failed", args.failed_warning, args.failed_critical, failed_words("failed")),
        Interval("ratio", args.failure_ratio_warning, args.failure_ratio_critical,
                 failed_words("ratio")),
        Interval("runtime", args.runtime_warning, args.runtime_critical, runtime_words),
        Interval("success_age", None, None, None),
        *[MaxAge(i, rule) for i, rule in enumerate(args.max_age)],
        Condition("missing", nagios_state(args.missing_state), absent),
        Condition("never", nagiosplugin.Critical, absent),
        TasksSummary(args.verbose),
    )


main = runner.entry_point("CELERY_TASKS", parse_args, make_check)


if __name__ == "__main__":
    main()
