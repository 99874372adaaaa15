"""What check_celery_tasks knows of a task, from its record, the previous
run's counters and the store's time, and whose counters a state file holds:
pure, no I/O (celery_checks/tasks/check.py reads and judges)."""

import argparse
import fnmatch
import hashlib
import json
import os
import re

from celery_checks.plugin.perfdata import number, plural, seconds
from celery_checks.store import tasks as store

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
STATE_DIR = "/var/tmp"


def max_age(spec):
    """argparse type: TASK=DURATION -> (pattern, seconds, text)."""
    pattern, _, text = spec.rpartition("=")
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", text)
    if not pattern.strip() or not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            "invalid --max-age %r (expected TASK=DURATION, e.g. reports.nightly=26h, "
            "billing.*=15m, 90s, 2d)" % spec)
    number_, unit = match.groups()
    return pattern.strip(), float(number_) * UNITS[unit or "s"], number_ + (unit or "s")


def ago(value, limit=None):
    """A duration in the largest unit that keeps it readable: 45s, 15m, 27h, 2d;
    against ``limit`` (seconds), with the decimals that tell them apart."""
    unit = next(u for u in "dhms" if value >= 2 * UNITS[u] or u == "s")
    if unit == "s":
        return seconds(value, limit)
    scale, places = UNITS[unit], 0
    while places < 4 and limit is not None and value > limit \
            and round(value / scale, places) <= limit / scale:
        places += 1
    return "%s%s" % (number(value / scale, places), unit)


def percentile(buckets, share=0.95):
    """The runtime below which ``share`` of the runs counted in ``buckets``
    fell, interpolated in its bucket (the last bound for the open one)."""
    total = sum(buckets)
    if not total:
        return None
    wanted, seen, lower = share * total, 0, 0.0
    for count, upper in zip(buckets, store.BUCKETS + (store.BUCKETS[-1],)):
        if count and seen + count >= wanted:
            return lower + (upper - lower) * (wanted - seen) / count
        seen, lower = seen + count, upper
    return store.BUCKETS[-1]


def _counters(entry, size):
    """({counter: int}, [bucket counts]) of a state file's entry; whatever
    is missing or not a count (an edited, older or damaged file) is 0."""
    entry = entry if isinstance(entry, dict) else {}

    def count(value):
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    buckets = entry.get("buckets") if isinstance(entry.get("buckets"), list) else []
    buckets = [count(b) for b in buckets[:size]]
    return ({c: count(entry.get(c)) for c in store.COUNTERS},
            buckets + [0] * (size - len(buckets)))


class TaskStats:
    """One task's record at store time ``now``; ``previous`` its counters at
    the previous run, ``since`` that run's store time (None: no state)."""

    def __init__(self, name, record, now, previous=None, since=None, max_age=None):
        self.name, self.record, self.max_age = name, record, max_age
        self.age = None if record["last_success"] is None else max(0.0, now - record["last_success"])
        self.failure_age = None if record["last_failure"] is None else max(
            0.0, now - record["last_failure"])
        self.interval = None if since is None else max(0.0, now - since)
        self.delta = None
        if since is not None:
            before, old = _counters(previous, len(record["buckets"]))
            # A counter that went down was reset (the store was flushed).
            self.delta = {c: record[c] - before[c] if record[c] >= before[c] else record[c]
                          for c in store.COUNTERS}
            buckets = [n - o if n >= o else n for n, o in zip(record["buckets"], old)]
            self.runs = sum(buckets)
            self.runtime = percentile(buckets)
            finished = self.delta["succeeded"] + self.delta["failed"]
            self.ratio = 100.0 * self.delta["failed"] / finished if finished else None

    def counters(self):
        return dict({c: self.record[c] for c in store.COUNTERS}, buckets=self.record["buckets"])

    def failures(self):
        d = self.delta
        text = "%s: %d of %d failed" % (self.name, d["failed"], d["failed"] + d["succeeded"])
        if self.ratio is not None:
            text += " (%s%%)" % number(self.ratio, 1)
        return text + (", last %s" % self.record["last_exception"]
                       if self.record["last_exception"] else "")

    def describe(self):
        r = self.record
        facts = ["%d succeeded" % r["succeeded"], "%d failed" % r["failed"]]
        if r["last_failure"] is not None:
            facts[-1] += " (last %s %s ago)" % (r["last_exception"] or "?", ago(self.failure_age))
        facts += ["%d %s" % (r[c], c) for c in ("retried", "rejected", "revoked")]
        text = "%s: %s; last success %s" % (
            self.name, ", ".join(facts), "never" if self.age is None else ago(self.age) + " ago")
        if self.delta is not None:
            text += "; in %s: %s, %d failed" % (ago(self.interval), plural(self.runs, "run"),
                                                self.delta["failed"])
            if self.runtime is not None:
                text += ", p95 %s" % seconds(self.runtime)
        return text


class Absent:
    """A -T or --max-age pattern that matches no recorded task."""

    def __init__(self, name, max_age=None):
        self.name, self.max_age = name, max_age


def select(records, patterns, max_ages):
    """The recorded names matched by -T (all without) or by a --max-age."""
    wanted = [p for p in patterns or ["*"]] + [m[0] for m in max_ages]
    return [n for n in records if any(fnmatch.fnmatchcase(n, p) for p in wanted)]


def judged(args, now, records, names, state, since):
    """TaskStats of ``names``, then an Absent per pattern matching none."""
    indexed = list(enumerate(args.max_age))
    found = []
    for name in names:
        rule = next(((i, m) for i, m in indexed if fnmatch.fnmatchcase(name, m[0])), None)
        previous = (state or {}).get("tasks", {}).get(name)
        found.append(TaskStats(name, records[name], now, previous, since, rule))
    judged_by_age = {rule[0] for rule in args.max_age}
    for pattern in args.tasks or ["*"]:
        if pattern not in judged_by_age and not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            found.append(Absent(pattern))
    for i, rule in indexed:
        if not any(fnmatch.fnmatchcase(n, rule[0]) for n in names):
            found.append(Absent(rule[0], (i, rule)))
    return found


def state_path(args):
    if args.state_file:
        return os.path.join(STATE_DIR, os.path.expanduser(args.state_file))
    name = "check_celery_tasks.%d.%s.json" % (os.getuid(), state_key(args, judging=True)[:12])
    return os.path.join(STATE_DIR, name)


def state_key(args, judging=False):
    """Whose counters a state holds: the store (password left out), -T and
    the --max-age patterns. The default file name adds the thresholds: two
    services sharing one state would each see only the interval since the
    other's run."""
    facts = [args.store.shown, args.store.options.get("global_keyprefix") or "",
             sorted(args.tasks or []), sorted(m[0] for m in args.max_age)]
    if judging:
        facts += [getattr(args, o) for o in (
            "max_age", "failed_warning", "failed_critical", "failure_ratio_warning",
            "failure_ratio_critical", "runtime_warning", "runtime_critical")]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()
