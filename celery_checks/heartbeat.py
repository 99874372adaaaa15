"""check_celery_heartbeat: does a heartbeat go through each queue in time?

``trigger_celery_heartbeat`` (cron) or celery beat publishes a tiny task to
each queue; a worker of an app that called ``celery_checks.install(app)``
runs it and records the start in the heartbeat store (heartbeat_store.py has
the key layout and the clock rule). This check reads the store only: it
imports redis, not celery, and asks once, in one round trip (TIME and one
HGETALL per queue), so every age is measured on the store's clock.

acquire:  Heartbeats reads the records, QueueHeartbeat derives age and wait
evaluate: contexts judge the age (-w/-c), the wait (--latency-*) and queues
          never seen (--missing-state), each wording its diagnosis: healthy,
          trigger stale (nothing published) or stuck (published, not started)
present:  HeartbeatSummary words the status line and the long output
"""

import logging
import textwrap

import nagiosplugin

from celery_checks import cli
from celery_checks import heartbeat_store as store
from celery_checks.broker import sentinel_options_used, unused_options_line
from celery_checks.perfdata import ThresholdContext, label, unique_label, violation
from celery_checks.policy import CheckError
from celery_checks.secrets import redact_url
from celery_checks.summary import ProblemSummary

log = logging.getLogger("nagiosplugin")

WARNING_AGE = "300"
CRITICAL_AGE = "600"
STATES = {0: nagiosplugin.Ok, 1: nagiosplugin.Warn, 2: nagiosplugin.Critical, 3: nagiosplugin.Unknown}
#: the -O keys the check reads (and, for a sentinel:// store, how to find
#: its master): the store is Redis, read with redis-py alone.
STORE_OPTIONS_USED = ("global_keyprefix",)
INSTALL_HINT = "no consumer, or its app lacks celery_checks.install(app)?"

HELP = dict(
    check="""\
For each queue (-q, repeatable, default celery), from the heartbeat store:
age      now - when a worker last started a heartbeat of the queue (a queue
         that never started one counts from its first publish)
latency  how long the last heartbeat waited in the queue: start - publish;
         a heartbeat published and not yet started counts its wait so far
Heartbeats are published by trigger_celery_heartbeat (cron) or by celery
beat (celery_checks.beat_schedule) and run by workers whose app calls
celery_checks.install(app). All times are the store's own clock (Redis
TIME), so clock skew between hosts neither raises nor hides an alert.
The store is the broker when it is Redis; with RabbitMQ name it (--store).
One round trip for all queues; reads only.""",
    perfdata="""\
QUEUE_age      per queue: age in s, warn/crit from -w/-c, min 0
QUEUE_latency  per queue: latency in s, warn/crit from --latency-*, min 0
               (absent until a heartbeat carried its publish time)
A queue never seen has no perfdata. Values are never negative.""",
    states="""\
OK        every queue's heartbeat is younger than -w, waited less than
          --latency-warning
WARNING   a queue's age is outside -w or its latency outside
          --latency-warning; the line says why: "trigger stale" (nothing
          published since the last heartbeat), "trigger failing" (the
          trigger could not publish: its reason), "stuck" (a heartbeat is
          published but no worker started it)
CRITICAL  the same outside -c / --latency-critical; a queue never seen
          (--missing-state); the store cannot be reached""",
    examples="""\
check_celery_heartbeat -q celery -q mail
check_celery_heartbeat --broker-file /etc/celery/broker -w 180 -c 600
check_celery_heartbeat --store redis://cache:6379/3 -q celery \\
    --latency-warning 30 --latency-critical 120""",
)


def parse_args(argv=None):
    parser = cli.make_parser(
        "check_celery_heartbeat",
        "Alert when heartbeats stop going through Celery queues.",
        thresholds=("each queue's heartbeat age in seconds", WARNING_AGE, CRITICAL_AGE),
        broker=True,
        **HELP,
    )
    parser.add_argument(
        "-q", "--queue", metavar="QUEUE", action="append", dest="queues",
        help="queue whose heartbeat to check; repeatable (default: celery)",
    )
    parser.add_argument(
        "--latency-warning", metavar="RANGE", type=cli.threshold_range,
        help="warning range on each queue's latency in seconds (default: none)",
    )
    parser.add_argument(
        "--latency-critical", metavar="RANGE", type=cli.threshold_range,
        help="critical range on each queue's latency in seconds (default: none)",
    )
    parser.add_argument(
        "--missing-state", metavar="STATE", type=cli.state_name, default=2,
        help="state of a queue with no heartbeat record at all (default: critical)",
    )
    store.add_store_options(parser)
    args = parser.parse_args(argv)
    try:
        args.store_url = store.resolve_store_url(args.store, args.store_file, args.broker_url)
    except CheckError as exc:
        parser.error(str(exc))
    args.queues = list(dict.fromkeys(q.strip() for q in args.queues or ["celery"]))
    if not all(args.queues):
        parser.error("a queue name cannot be empty")
    return args


# ------------------------------------------------------------------- acquire

class QueueHeartbeat:
    """One queue's record, read at store time ``now``."""

    def __init__(self, name, record, now):
        self.name = name
        self.label = label(name)
        self.record = record
        self.seen = "started" in record or "pending_since" in record
        self.started = "started" in record
        self.pending = "pending_since" in record
        self.worker = record.get("worker", "")
        # The trigger's last attempt failed after a success (or before any).
        failed = record.get("failed")
        self.failure = None
        if failed is not None and failed > record.get("started", 0):
            self.failure = textwrap.shorten(record.get("failure") or "?", 90, placeholder="...")
        self.wait = max(0.0, now - record["pending_since"]) if self.pending else None
        self.published_ago = max(0.0, now - record["published"]) if "published" in record else None
        if self.started:
            self.age = max(0.0, now - record["started"])
        else:
            self.age = self.wait
        latencies = [v for v in (record.get("latency"), self.wait) if v is not None]
        self.latency = max(0.0, max(latencies)) if latencies else None

    def diagnosis(self, limit=None):
        """Why this queue's heartbeat is late, in words. A heartbeat waiting
        within ``limit`` (the warning range) is not why: it was published
        after a gap, so the trigger was stale."""
        if not self.started:
            return "%s never started a heartbeat, one waiting %s: %s" % (
                self.name, seconds(self.wait), INSTALL_HINT)
        if self.pending and (limit is None or not limit.match(self.wait)):
            return "%s stuck: heartbeat waiting %s, last started %s ago" % (
                self.name, seconds(self.wait), seconds(self.age))
        if self.pending:
            return "%s trigger stale: last heartbeat %s ago, next published only %s ago" % (
                self.name, seconds(self.age), seconds(self.wait))
        if self.failure:
            return "%s trigger failing: last heartbeat %s ago; %s" % (
                self.name, seconds(self.age), self.failure)
        return "%s trigger stale: last heartbeat %s ago, none published since" % (
            self.name, seconds(self.age))

    def describe(self):
        if not self.seen:
            return "%s: never seen%s" % (self.name, ", trigger failing" if self.failure else "")
        facts = []
        if self.started:
            facts.append("started %s ago by %s" % (seconds(self.age), self.worker or "?"))
        if self.record.get("latency") is not None:
            facts.append("waited %s" % seconds(self.record["latency"]))
        if self.pending:
            facts.append("one waiting %s" % seconds(self.wait))
        if self.failure:
            facts.append("trigger failing: %s" % self.failure)
        if self.published_ago is not None:
            facts.append("last published %s ago by %s" % (
                seconds(self.published_ago), self.record.get("publisher", "?")))
        return "%s: %s" % (self.name, ", ".join(facts))


def seconds(value):
    if value >= 100:
        return "%ds" % value
    if value >= 1:
        return "%.1fs" % value
    return "%.3fs" % value


class Heartbeats(nagiosplugin.Resource):
    def __init__(self, args):
        self.args = args
        self.queues = []
        self.by_metric = {}

    def probe(self):
        from celery_checks.broker import redis_client, redis_errors

        args = self.args
        log.info("heartbeat store %s, queues %s", redact_url(args.store_url), ", ".join(args.queues))
        with redis_errors(args.store_url, "heartbeat store"):
            client = redis_client(args.store_url, args.transport_options, cli.network_timeout(args))
            now, records = store.read(client, args.queues, args.transport_options)
        used = set()
        for name in args.queues:
            queue = QueueHeartbeat(name, records[name], now)
            queue.label = unique_label(queue.label, used)
            self.queues.append(queue)
            if not queue.seen:
                yield self._metric(queue, "missing", 1, None, "missing")
                continue
            yield self._metric(queue, "age", queue.age, "s", "age")
            if queue.latency is not None:
                yield self._metric(queue, "latency", queue.latency, "s", "latency")

    def _metric(self, queue, suffix, value, uom, context):
        name = "%s_%s" % (queue.label, suffix)
        self.by_metric[name] = queue
        return nagiosplugin.Metric(name, value, uom, min=0 if uom else None, context=context)


# ------------------------------------------------------------------ evaluate

class AgeContext(ThresholdContext):
    def evaluate(self, metric, resource):
        queue = resource.by_metric[metric.name]
        for state, limit in ((nagiosplugin.Critical, self.critical), (nagiosplugin.Warn, self.warning)):
            if not limit.match(metric.value):
                hint = "%s (age %s)" % (queue.diagnosis(self.warning), violation(limit, "s"))
                return self.result_cls(state, hint, metric)
        return self.result_cls(nagiosplugin.Ok, None, metric)


class LatencyContext(ThresholdContext):
    def evaluate(self, metric, resource):
        queue = resource.by_metric[metric.name]
        for state, limit in ((nagiosplugin.Critical, self.critical), (nagiosplugin.Warn, self.warning)):
            if not limit.match(metric.value):
                if queue.pending and queue.wait >= metric.value:
                    hint = queue.diagnosis()
                else:
                    hint = "%s slow: last heartbeat waited %s" % (queue.name, seconds(metric.value))
                hint += " (latency %s)" % violation(limit, "s")
                return self.result_cls(state, hint, metric)
        return self.result_cls(nagiosplugin.Ok, None, metric)


class MissingContext(nagiosplugin.Context):
    def __init__(self, state):
        super().__init__("missing")
        self.state = STATES[state]

    def evaluate(self, metric, resource):
        queue = resource.by_metric[metric.name]
        if queue.failure:
            return self.result_cls(self.state, "%s: no heartbeat yet, trigger failing: %s" % (
                queue.name, queue.failure), metric)
        hint = ("%s: no heartbeat ever recorded: trigger not scheduled for it? "
                "worker app lacks celery_checks.install(app)?" % queue.name)
        return self.result_cls(self.state, hint, metric)


# ------------------------------------------------------------------- present

class HeartbeatSummary(ProblemSummary):
    def ok(self, results):
        queues = results[0].resource.queues if results else []
        if len(queues) == 1:
            return "%s healthy: %s" % (queues[0].name, _brief(queues[0]))
        # --missing-state ok: a never-seen queue has no age, and is the oldest
        oldest = max(queues, key=lambda q: float("inf") if q.age is None else q.age)
        text = "%d queues healthy, oldest %s: %s" % (len(queues), oldest.name, _brief(oldest))
        return text

    def item_lines(self, resource):
        if resource is None:
            return []
        lines = [q.describe() for q in resource.queues]
        if resource.args.verbose >= 2:
            used = STORE_OPTIONS_USED + sentinel_options_used(resource.args.store_url)
            unused = unused_options_line(resource.args.transport_options, used)
            if unused:
                lines.append(unused)
        return lines


def _brief(queue):
    if not queue.seen:
        return "never seen"
    text = "heartbeat %s ago" % seconds(queue.age)
    if queue.latency is not None:
        text += ", waited %s" % seconds(queue.latency)
    return text


@cli.guarded("CELERY_HEARTBEAT")
def main(argv=None):
    args = parse_args(argv)
    check = nagiosplugin.Check(
        Heartbeats(args),
        AgeContext("age", args.warning, args.critical),
        LatencyContext("latency", args.latency_warning, args.latency_critical),
        MissingContext(args.missing_state),
        HeartbeatSummary(),
    )
    check.name = "celery_heartbeat"
    cli.run(check, args)


if __name__ == "__main__":
    main()
