"""check_celery_queue: how many messages wait in each Celery queue?

Counts what a worker would still have to take, the way kombu stores it:
on Redis the queue's list *and* its priority sub-lists (which `redis-cli
llen` and most exporters miss), on RabbitMQ the ready count of a passive
queue_declare. Never consumes, declares or writes.

acquire:  Queues asks queue/redis.py or queue/amqp.py, by the broker URL's
          transport: one round trip (Redis pipeline) or one connection
evaluate: Thresholds judge each queue's count (-w/-c), its consumers
          (--consumers-*) and unacked; a Condition missing queues
          (--missing-state)
present:  QueueSummary names the worst queue; -v lists every queue

Imports neither celery nor kombu; the Redis path only hiredis (through
connect/redis.py), the RabbitMQ path only pika.
"""

import argparse


from celery_checks.connect.layout import RedisLayout
from celery_checks.connect.options import sentinel_options_used, unused_options_line
from celery_checks.plugin import cli, runner
from celery_checks.plugin.contexts import Condition, Threshold
from celery_checks.plugin.perfdata import plural, shown, violation
from celery_checks.plugin.policy import CheckError, nagios_state
from celery_checks.plugin.resource import Resource
from celery_checks.plugin.summary import ProblemSummary
from celery_checks.queue.facts import Depth, Findings

DEFAULT_QUEUE = "celery"
#: the -O keys the Redis path reads (RedisLayout; redis_client the sentinel
#: ones of a sentinel:// URL); the RabbitMQ path reads none: pika takes where
#: and as whom from the URL and its timeouts from -t.
REDIS_OPTIONS_USED = ("sep", "global_keyprefix", "unacked_key", "priority_steps")

HELP = dict(
    check="""\
Messages waiting in each queue: published, not yet delivered to a worker.
Redis: the sum of LLEN over the queue's list and its priority sub-lists
(QUEUE, QUEUE<sep>3, QUEUE<sep>6, QUEUE<sep>9 for kombu's defaults; the sep,
priority_steps and global_keyprefix transport options are honoured), all
queues in one pipeline. A queue counts as declared when messages wait in
it or kombu's _kombu.binding.* sets bind it (every worker and producer
declaring it writes one); an empty queue nobody declared under the key
prefix and DB given is "not declared" (--missing-state), with where its
bindings are when they exist under another key prefix or in another DB
(a wrong -O global_keyprefix or DB number), or a close name (a typo).
Messages that workers reserved but did not acknowledge (kombu's unacked
hash) are reported apart. RabbitMQ: the ready count and the consumer
count of a passive queue_declare per queue, on one connection; a queue
the vhost does not have is "not found" (--missing-state).
--all-queues (Redis only) checks every queue named in kombu's
_kombu.binding.* sets, i.e. every queue a worker or producer declared,
leaving out Celery's pidbox, reply and celeryev queues; none found is
judged like a queue not declared.""",
    perfdata="""\
QUEUE            waiting messages in QUEUE, labelled with the queue's name
                 (only characters perfdata forbids become _), with
                 warn/crit from -w/-c, min 0
consumers_QUEUE  RabbitMQ: consumers of QUEUE, with the --consumers-*
                 ranges, min 0
unacked          Redis: messages reserved by workers, not yet acknowledged,
                 over all queues
unacked_QUEUE    Redis, with --unacked-per-queue: the same for one QUEUE
                 (attributed by the message's routing key)""",
    states="""\
OK        every queue's count is inside the ranges
WARNING   a queue's count is outside -w, or its consumers outside
          --consumers-warning
CRITICAL  a queue's count is outside -c, or its consumers outside
          --consumers-critical; a queue not declared on Redis or not
          found on RabbitMQ, or no queue found by --all-queues (the
          default of --missing-state); the broker is down, refuses us
          or does not answer within -t""",
    examples="""\
check_celery_queue -b redis://redis:6379/0 -q celery -q mail -w 100 -c 1000
check_celery_queue --broker-file /etc/celery/broker_url --all-queues -c 5000
check_celery_queue -b amqp://nagios@rabbit/prod -q celery -c 1000 \\
    --consumers-critical 1:
check_celery_queue -O global_keyprefix=myapp: -O 'priority_steps=[0,5,9]'""",
    prog="check_celery_queue", broker=True,
    summary="Alert when messages pile up in Celery queues.",
    thresholds=("each queue's waiting messages", None, None),
)


def parse_args(argv=None):
    parser = cli.make_parser(**HELP)
    group = parser.add_argument_group("queues")
    group.add_argument(
        "-q", "--queue", metavar="NAME", action="append", dest="queues", type=_queue_name,
        help="queue to count; repeatable (default: %s)" % DEFAULT_QUEUE,
    )
    group.add_argument(
        "--all-queues", action="store_true",
        help="every queue the Redis broker has bindings for (see Check:)",
    )
    group.add_argument(
        "--unacked-per-queue", action="store_true",
        help="Redis: also count unacknowledged messages per queue (reads "
        "every reserved message, costly when there are many)",
    )
    group.add_argument(
        "--consumers-warning", metavar="RANGE", type=cli.threshold_range,
        help="RabbitMQ: warning range on each queue's consumers (e.g. 1:)",
    )
    group.add_argument(
        "--consumers-critical", metavar="RANGE", type=cli.threshold_range,
        help="RabbitMQ: critical range on each queue's consumers (e.g. 1:)",
    )
    cli.add_state_option(
        group, "--missing-state", "state for a queue the broker does not know (Redis: "
        "not declared, RabbitMQ: not found) or no queue found by --all-queues", 2)
    args = parser.parse_args(argv)
    args.transport = args.broker.transport
    if args.all_queues and args.queues:
        parser.error("use either -q/--queue or --all-queues, not both")
    if args.transport == "amqp":
        if args.all_queues:
            parser.error("--all-queues needs a Redis broker: AMQP cannot list "
                         "queues, name them with -q")
        if args.unacked_per_queue:
            parser.error("--unacked-per-queue needs a Redis broker")
        too_long = [q for q in args.queues or () if len(q.encode("utf-8")) > 255]
        if too_long:
            parser.error("AMQP queue names are at most 255 bytes: %.40s..." % too_long[0])
    else:
        if args.consumers_warning or args.consumers_critical:
            parser.error("--consumers-warning/--consumers-critical need a RabbitMQ "
                         "broker (Redis does not know its consumers)")
        try:
            args.layout = RedisLayout(args.broker.options)
        except CheckError as exc:
            parser.error(str(exc))
        for queue in args.queues or ():
            bucket = args.layout.bucket_of(queue)
            if bucket:
                parser.error("%s is the key of queue %s's priority %d sub-list, not a queue "
                             "(kombu cannot tell them apart)" % (shown(queue), shown(bucket[0]),
                                                                bucket[1]))
    # Keep the order given, drop repeats (a repeated label breaks perfdata).
    args.queues = list(dict.fromkeys(args.queues or ([] if args.all_queues else [DEFAULT_QUEUE])))
    return args


def _queue_name(text):
    if not text:
        raise argparse.ArgumentTypeError("a queue name cannot be empty")
    return text


# ------------------------------------------------------------------- acquire

class Queues(Resource):
    """Facts: Findings (queue/facts.py): each queue's Depth, and on Redis
    the unacked total, the DB and --all-queues' absence."""

    def __init__(self, args, deadline, facts=None):
        super().__init__(facts)
        self.args, self.deadline = args, deadline

    def acquire(self):
        args = self.args
        # Import the client first: on a busy host that alone can take a
        # good part of -t, which the network timeout must leave out.
        __import__("celery_checks.connect.redis" if args.transport == "redis" else "pika")
        timeout = self.deadline.network_timeout()
        if args.transport == "redis":
            from celery_checks.queue.redis import redis_depths

            return redis_depths(args.broker, args.queues, args.layout, timeout,
                                args.all_queues, args.unacked_per_queue)
        from celery_checks.queue.amqp import amqp_depths

        return Findings(None, amqp_depths(args.broker, args.queues, timeout))

    def metrics(self, findings):
        # The unacked total keeps its label on both brokers: a queue named
        # "unacked" is "unacked_2" in perfdata wherever it lives.
        if findings.unacked is not None:
            yield self.metric("unacked", findings.unacked, "unacked", min=0)
        else:
            self._labels.add("unacked")
        if findings.absence is not None:
            # "=" cannot be in a label, so this name never meets a queue's.
            yield self.metric("=no queues", 1, "missing", findings.absence)
        for depth in findings.depths:
            if depth.missing:
                # No perfdata; named so that no queue's label can equal it
                # ("missing mail" may be a queue's).
                yield self.metric("=missing=" + depth.name, 1, "missing", depth)
                continue
            yield self.metric(depth.name, depth.waiting, "waiting", depth, min=0)
            if depth.consumers is not None:
                yield self.metric("consumers_" + depth.name, depth.consumers, "consumers", depth,
                                  min=0)
            if depth.unacked is not None:
                yield self.metric("unacked_" + depth.name, depth.unacked, "unacked", depth, min=0)


# ------------------------------------------------------------------ evaluate

class Count(Threshold):
    """A count against -w/-c style ranges, worded per queue."""

    def __init__(self, name, warning, critical, noun):
        super().__init__(name, warning, critical)
        self.noun = noun

    def words(self, depth, value, broken):
        what = "%s has %s" % ("queue " + shown(depth.name) if depth else self.name,
                              plural(value, self.noun))
        return what if broken is None else "%s (%s)" % (what, violation(broken))


def missing(vhost):
    def words(item, value):
        if not isinstance(item, Depth):  # --all-queues found none: its Absence
            return item.text()
        if item.absence is not None:  # Redis: not declared, and where it is
            return item.absence.text()
        return "queue %s not found on vhost %s" % (shown(item.name), shown(vhost))
    return words


# ------------------------------------------------------------------- present

class QueueSummary(ProblemSummary):
    def ok(self, results):
        findings = results[0].resource.facts if results else None
        if findings is not None and findings.absence is not None:
            return findings.absence.text()  # --missing-state ok
        depths = [d for d in findings.depths if not d.missing] if findings else []
        absent = len(findings.depths) - len(depths) if findings else 0
        if not depths:
            # --missing-state ok: the first missing queue's words
            missing = next(r for r in results if r.context and r.context.name == "missing") \
                if absent else None
            return str(missing) if missing else "no queues found"
        if len(depths) == 1:
            text = "queue %s has %s" % (shown(depths[0].name),
                                        plural(depths[0].waiting, "waiting message"))
            if depths[0].consumers is not None:
                text += ", " + plural(depths[0].consumers, "consumer")
        else:
            total = sum(d.waiting for d in depths)
            top = max(depths, key=lambda d: d.waiting)
            text = "%d queues, %s" % (len(depths), "no messages waiting" if not total else
                                      "%s waiting, most in %s (%d)" % (
                                          plural(total, "message"), shown(top.name), top.waiting))
        if absent:
            text += "; %s missing" % plural(absent, "queue")
        return text

    def item_lines(self, resource):
        if resource is None:
            return []
        findings = resource.facts
        lines = [d.describe() for d in findings.depths]
        absences = [d.absence for d in findings.depths if d.absence] + (
            [findings.absence] if findings.absence else [])
        for absence in absences:
            if len(absence.places) > 1:
                lines.extend(absence.places_text())
        if findings.unacked is not None:
            lines.append("unacked (reserved by workers): %d" % findings.unacked)
        return lines

    def settings_lines(self, resource):
        if resource is None:
            return []
        args = resource.args
        lines = ["broker: %s" % args.broker.shown]
        if args.transport == "redis":
            layout = args.layout
            lines.append("DB %s, priority steps %s, separator %s, key prefix %r, "
                         "unacked hash %s" % (resource.facts.db, layout.steps, shown(layout.sep),
                                              layout.prefix, shown(layout.unacked_key)))
        used = () if args.transport == "amqp" else \
            REDIS_OPTIONS_USED + sentinel_options_used(args.broker.url)
        unused = unused_options_line(args.broker.options, used)
        return lines + ([unused] if unused else [])


def make_check(args, deadline, facts=None):
    """The check for parsed ``args``; ``facts`` (Findings) instead of
    asking the broker, for tests."""
    return runner.check_of(
        "celery_queue",
        Queues(args, deadline, facts),
        Count("waiting", args.warning, args.critical, "waiting message"),
        Count("consumers", args.consumers_warning, args.consumers_critical, "consumer"),
        Count("unacked", None, None, "unacked message"),
        Condition("missing", nagios_state(args.missing_state),
                  missing(args.broker.parsed.virtual_host)),
        QueueSummary(args.verbose),
    )


main = runner.entry_point("CELERY_QUEUE", parse_args, make_check)


if __name__ == "__main__":
    main()
