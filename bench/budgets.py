"""The budgets of issues 8 and 16, judged on the measured scenarios: each a row
(budget, measured, verdict) with verdict met / **MISSED** / why it was not
measured."""

import statistics

from bench.answering import REFERENCE
from bench.measure import HEAVY
from bench.scenarios import FLOORS

HEARTBEAT_INTERVAL = 2.0  # celery worker's default --heartbeat-interval


def paired(s, base, field="wall"):
    """Median of per-round ratios: both ran in the same round, under the
    same load from elsewhere, so the ratio is steadier than one of medians."""
    pairs = list(zip(s.samples, base.samples))
    return statistics.median(getattr(a, field) / getattr(b, field) for a, b in pairs)


def answering_taken_out(check, base, reference, reference_base):
    """(What the workers' answering adds from the smallest group to a larger
    one: the median growth of the same messages sent by redis-cli, in
    seconds; the check's per-round ratio with that growth taken out)."""
    rounds = list(zip(check.samples, base.samples, reference.samples, reference_base.samples))
    adds = statistics.median(ref.wall - ref_base.wall for _, _, ref, ref_base in rounds)
    rest = statistics.median((c.wall - (ref.wall - ref_base.wall)) / b.wall
                             for c, b, ref, ref_base in rounds)
    return adds, rest


def verdict(ok):
    return "met" if ok else "**MISSED**"


class Judge:
    """Collects the rows over the scenarios of a run, by key."""

    def __init__(self, by_key):
        self.by_key = by_key
        self.rows = []

    def get(self, key):
        s = self.by_key.get(key)
        return s if s is not None and s.status == "ok" and s.samples else None

    def missing(self, key):
        s = self.by_key.get(key)
        if s is None:
            return "not measured (--only)"
        return "not measured" if s.status == "pending" else s.status

    def limit(self, key, field, bound, unit, text):
        s = self.get(key)
        if s is None:
            self.rows.append((text, "", self.missing(key)))
            return
        value = s.stat(field)
        if field == "wall":  # CPU shows how much of the wall time load added
            shown = "%.3f s (CPU %.3f s)" % (value, s.stat("cpu"))
        else:
            shown = "%.1f %s" % (value, unit)
        self.rows.append((text, shown, verdict(value <= bound)))

    def relative(self, key, base_key, bound, text):
        s, base = self.get(key), self.get(base_key)
        if s is None or base is None:
            self.rows.append((text, "", self.missing(key if s is None else base_key)))
            return
        value = paired(s, base)
        shown = "%.3f× (medians %.3f s / %.3f s; CPU %.2f×)" % (
            value, s.stat("wall"), base.stat("wall"), paired(s, base, "cpu"))
        if bound < 1:
            shown = "%.1f× faster: %s" % (1 / value, shown)
        self.rows.append((text, shown, verdict(value <= bound)))

    def answering_out(self, keys, bound, text):
        """The check's growth (keys: larger case, smallest case, and the
        redis-cli reference of each) with the workers' answering taken out."""
        cases = [self.get(key) for key in keys]
        if None in cases:
            self.rows.append((text, "", self.missing(keys[cases.index(None)])))
            return
        adds, rest = answering_taken_out(*cases)
        self.rows.append((text, "%.3f× (the workers' answering, by redis-cli, adds %.1f ms; "
                                "%.1f× of the smallest case leaves %.1f ms)" % (
                                    rest, adds * 1000, bound,
                                    (bound - 1) * cases[1].stat("wall") * 1000),
                          verdict(rest <= bound)))

    def imports_none(self, key, text):
        s = self.get(key)
        if s is None or s.imports is None:
            self.rows.append((text, "", self.missing(key)))
            return
        heavy = sorted(set(HEAVY) & s.imports)
        self.rows.append((text, ", ".join(heavy) or "none", verdict(not heavy)))

    def largest_rss(self, bound):
        checks = [s for s in self.by_key.values() if s.kind == "check" and self.get(s.key)]
        if checks:
            worst = max(checks, key=lambda s: s.stat("rss", max))
            self.rows.append(("any check ≤ %d MiB peak RSS" % bound,
                              "largest: %s %.1f MiB (max of runs)" % (
                                  worst.key, worst.stat("rss", max)),
                              verdict(worst.stat("rss", max) <= bound)))


def budgets(by_key, throughput=None, absent="not measured (--only)"):
    """(budget, measured, verdict) rows for the scenarios of a run (and the
    worker throughput, bench/throughput.py; ``absent`` says why there is none)."""
    judge = Judge(by_key)
    for key in ("pulsefile-1", "pulsefile-50"):
        judge.limit(key, "wall", 0.06, "s", "%s ≤ 0.06 s" % key)
        judge.limit(key, "rss", 20, "MiB", "%s ≤ 20 MiB" % key)
    judge.imports_none("pulsefile-1", "pulsefile imports none of celery/redis/pika")
    for key in ("queue-redis-1", "queue-redis-100", "queue-amqp-1", "queue-amqp-20"):
        judge.limit(key, "wall", 0.25, "s", "%s ≤ 0.25 s" % key)
    # issue 16: the Redis checks within 1.5× of their floor (importing
    # nagiosplugin, argparse and socket) and under 20 MiB
    for key in ("queue-redis-1", "heartbeat-1", "workers-ping-2"):
        judge.relative(key, "floor-socket-" + ("services" if key.startswith("queue") else "workers"),
                       1.5, "%s ≤ 1.5× its floor `%s`" % (key, FLOORS["socket"]))
        judge.limit(key, "rss", 20, "MiB", "%s ≤ 20 MiB" % key)
    # ... and their cost as queues and workers grow, against the smallest case
    judge.relative("queue-redis-100", "queue-redis-1", 1.1,
                   "queue Redis: 100 queues ≤ 1.1× 1 queue")
    judge.relative("queue-redis-1000", "queue-redis-1", 1.3,
                   "queue Redis: 1,000 queues ≤ 1.3× 1 queue")
    judge.relative("heartbeat-100", "heartbeat-1", 1.3, "heartbeat: 100 queues ≤ 1.3× 1 queue")
    judge.relative("heartbeat-1000", "heartbeat-1", 1.3, "heartbeat: 1,000 queues ≤ 1.3× 1 queue")
    for source in ("ping", "events"):
        for size in (10, 50):
            judge.relative("workers-%s-%d" % (source, size), "workers-%s-2" % source, 1.5,
                           "workers, %s: %d workers ≤ 1.5× 2 workers" % (source, size))
    judge.answering_out(("workers-ping-50", "workers-ping-2", REFERENCE % 50, REFERENCE % 2), 1.5,
                        "workers, ping: 50 workers ≤ 1.5× 2 workers, less what the "
                        "workers' answering adds")
    judge.relative("queue-amqp-20", "queue-amqp-1", 1.2,
                   "queue RabbitMQ: 20 queues ≤ 1.2× 1 queue")
    for tag in ("1", "20"):
        judge.relative("queue-mgmt-%s" % tag, "queue-amqp-%s" % tag, 1.5,
                       "queue RabbitMQ: management API ≤ 1.5× AMQP (%s queues)" % tag)
    judge.relative("queue-consumers-redis-2w", "queue-plain-redis-2w", 2.0,
                   "queue Redis: consumers broadcast ≤ 2× the plain check (issue 17)")
    judge.limit("heartbeat-100", "wall", 0.25, "s", "heartbeat-100 ≤ 0.25 s")
    judge.limit("tasks-100", "wall", 0.25, "s", "tasks-100 ≤ 0.25 s (issue 18)")
    text = "task records cost ≤ 5 % of a worker's trivial tasks/s (issue 18)"
    if throughput is None:
        judge.rows.append((text, "", absent))
    elif throughput.status != "ok":
        judge.rows.append((text, "", throughput.status))
    else:
        judge.rows.append((text, "%.1f %% fewer, estimated from CPU per task (drained: "
                           "%.1f %%)" % (100 * throughput.estimate(), 100 * throughput.cost()),
                           verdict(throughput.estimate() <= 0.05)))
    judge.limit("trigger-10", "wall", 0.5, "s", "trigger-10 ≤ 0.5 s (issue 4)")
    for tag in ("2", "10"):
        judge.relative("workers-ping-%s" % tag, "celery-status-%s" % tag, 0.2,
                       "workers-ping-%s ≥ 5× faster than `celery status` (≤ 0.20×)" % tag)
        judge.limit("workers-events-%s" % tag, "wall", HEARTBEAT_INTERVAL, "s",
                    "workers-events-%s ≤ 1 heartbeat interval (%.0f s)" % (
                        tag, HEARTBEAT_INTERVAL))
    judge.largest_rss(50)
    return judge.rows
