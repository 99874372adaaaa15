"""check_celery_queue: how many messages wait in each Celery queue, who
consumes them, how many are unacknowledged, how old the oldest is?

Counts what a worker would still have to take, the way kombu stores it:
on Redis the queue's list *and* its priority sub-lists (which `redis-cli
llen` and most exporters miss), on RabbitMQ the ready count of a passive
queue_declare, or with --management-url the management API's figures.
Never consumes, declares, moves or writes a message.

acquire:  Queues asks queue/redis.py (+ queue/consumers.py's broadcast),
          queue/amqp.py or queue/management.py, by the broker URL's
          transport: one round trip (Redis pipeline), one connection or
          one HTTP request
evaluate: Thresholds judge each queue's count (-w/-c), its consumers
          (--consumers-*), unacked (--unacked-*) and oldest age
          (--oldest-*); Conditions orphans (--orphan-state) and missing
          queues (--missing-state)
present:  queue/present.py's QueueSummary names the worst queue; -v lists
          every queue

options:  queue/options.py

Imports neither celery nor kombu; the Redis path only hiredis (through
connect/redis.py), the RabbitMQ path only pika, or with the management API
only http.client.
"""

from celery_checks.plugin import runner
from celery_checks.plugin.contexts import Condition, Threshold
from celery_checks.plugin.perfdata import SIGNIFICANT, plural, seconds, shown, violation
from celery_checks.plugin.policy import nagios_state
from celery_checks.plugin.resource import Resource
from celery_checks.queue.facts import Depth, Findings
from celery_checks.queue.options import parse_args
from celery_checks.queue.present import QueueSummary


# ------------------------------------------------------------------- acquire

class Queues(Resource):
    """Facts: Findings (queue/facts.py): each queue's Depth, and on Redis
    the unacked total, the DB and --all-queues' absence."""

    # Up to four labels per queue: kept apart in their first 19 characters.
    significant = SIGNIFICANT

    def __init__(self, args, deadline, facts=None):
        super().__init__(facts)
        self.args, self.deadline = args, deadline

    def acquire(self):
        args = self.args
        if args.management is not None:
            from celery_checks.queue.management import management_depths

            return management_depths(args.management, args.broker.parsed.virtual_host,
                                     args.queues, self.deadline.network_timeout(),
                                     args.all_queues, args.oldest)
        # Import the client first: on a busy host that alone can take a
        # good part of -t, which the network timeout must leave out.
        __import__("celery_checks.connect.redis" if args.transport == "redis" else "pika")
        if args.transport == "amqp":
            from celery_checks.queue.amqp import amqp_depths

            return Findings(None, amqp_depths(args.broker, args.queues,
                                              self.deadline.network_timeout()))
        from celery_checks.queue.redis import redis_depths

        wait = args.reply_timeout if args.count_consumers else 0.0
        findings = redis_depths(args.broker, args.queues, args.layout,
                                self.deadline.network_timeout(wait), args.all_queues,
                                args.unacked_per_queue, args.oldest)
        if args.count_consumers:
            import nagiosplugin

            from celery_checks.queue.consumers import count_consumers

            ranges = [nagiosplugin.Range(r) for r in (args.consumers_warning,
                                                      args.consumers_critical) if r]
            findings.listened = count_consumers(args.broker, findings.depths, wait,
                                                self.deadline, ranges)
        return findings

    def metrics(self, findings):
        # The unacked total keeps its label on both brokers: a queue named
        # "unacked" is "unacked_2" in perfdata wherever it lives.
        if findings.unacked is not None:
            yield self.metric("unacked", findings.unacked, "unacked total", min=0)
        else:
            self._labels.add("unacked")
        if findings.absence is not None:
            # "=" cannot be in a label, so this name never meets a queue's.
            yield self.metric("=no queues", 1, "missing", findings.absence)
        # Labels are taken in this order, queue by queue (a later one alike
        # gets the suffix); the counts are judged in one series.
        waiting, others = [], []
        for depth in findings.depths:
            if depth.missing:
                # No perfdata; named so that no queue's label can equal it
                # ("missing mail" may be a queue's).
                others.append(self.metric("=missing=" + depth.name, 1, "missing", depth))
                continue
            waiting.append(self.entry(depth.name, depth.waiting, depth))
            if depth.consumers is not None:
                others.append(self.metric("consumers_" + depth.name, depth.consumers,
                                          "consumers", depth, min=0))
                others.append(self.metric("=orphan=" + depth.name, bool(
                    depth.waiting and not depth.consumers), "orphan", depth))
            if depth.unacked is not None:
                others.append(self.metric("unacked_" + depth.name, depth.unacked, "unacked",
                                          depth, min=0))
            if depth.oldest is not None:
                others.append(self.metric("oldest_" + depth.name, round(depth.oldest, 3),
                                          "oldest", depth, uom="s", min=0))
        yield self.series("waiting", waiting, min=0)
        yield from others


# ------------------------------------------------------------------ evaluate

class Count(Threshold):
    """A count against -w/-c style ranges, worded per queue."""

    def __init__(self, name, warning, critical, noun):
        super().__init__(name, warning, critical)
        self.noun = noun

    def words(self, depth, value, broken):
        if broken is None:  # the summary words an OK run (QueueSummary.ok)
            return None
        what = "%s has %s" % ("queue " + shown(depth.name) if depth else self.name,
                              plural(value, self.noun))
        return "%s (%s)" % (what, violation(broken))


class Age(Threshold):
    """The oldest waiting message's age against the --oldest-* ranges."""

    def words(self, depth, value, broken):
        if broken is None:
            return None
        return "queue %s: oldest message waited %s (%s)" % (
            shown(depth.name), seconds(value, broken), violation(broken, "s"))


def orphan(item, value):
    return "queue %s: %d waiting, no consumer" % (shown(item.name), item.waiting)


def missing(vhost):
    def words(item, value):
        if not isinstance(item, Depth):  # --all-queues found none: its Absence
            return item.text()
        if item.absence is not None:  # Redis: not declared, and where it is
            return item.absence.text()
        return "queue %s not found on vhost %s" % (shown(item.name), shown(vhost))
    return words


def make_check(args, deadline, facts=None):
    """The check for parsed ``args``; ``facts`` (Findings) instead of
    asking the broker, for tests."""
    return runner.check_of(
        "celery_queue",
        Queues(args, deadline, facts),
        Count("waiting", args.warning, args.critical, "waiting message"),
        Count("consumers", args.consumers_warning, args.consumers_critical, "consumer"),
        Count("unacked", args.unacked_warning, args.unacked_critical, "unacked message"),
        Count("unacked total", None, None, "unacked message"),
        Age("oldest", args.oldest_warning, args.oldest_critical),
        Condition("orphan", nagios_state(args.orphan_state), orphan),
        Condition("missing", nagios_state(args.missing_state),
                  missing(args.broker.parsed.virtual_host)),
        QueueSummary(args.verbose),
    )


main = runner.entry_point("CELERY_QUEUE", parse_args, make_check)


if __name__ == "__main__":
    main()
