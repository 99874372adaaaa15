"""check_celery_queue: how many messages wait in each Celery queue?

Counts what a worker would still have to take, the way kombu stores it:
on Redis the queue's list *and* its priority sub-lists (which `redis-cli
llen` and most exporters miss), on RabbitMQ the ready count of a passive
queue_declare. Never consumes, declares or writes.

acquire:  redis_depths() / amqp_depths(), chosen by the broker URL's scheme,
          one round trip (Redis pipeline) or one connection (RabbitMQ)
evaluate: contexts judge each queue's count (-w/-c), its consumers
          (--consumers-warning/--consumers-critical) and missing queues
present:  QueueSummary names the worst queue; -v lists every queue

Imports neither celery nor kombu; the Redis path imports only redis, the
RabbitMQ path only pika.
"""

import argparse
import json

import nagiosplugin

from celery_checks import broker, cli
from celery_checks.perfdata import ThresholdContext, unique_label, violation
from celery_checks.policy import CheckError, Unreachable
from celery_checks.summary import ProblemSummary

DEFAULT_QUEUE = "celery"
# kombu's Redis transport defaults (kombu/transport/redis.py, Channel).
KOMBU_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_UNACKED_KEY = "unacked"
KOMBU_BINDING_PREFIX = "_kombu.binding."
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
queues in one pipeline. A queue Redis does not know counts 0. Messages that
workers reserved but did not acknowledge (kombu's unacked hash) are reported
apart. RabbitMQ: the ready count and the consumer count of a passive
queue_declare per queue, on one connection.
--all-queues (Redis only) checks every queue named in kombu's
_kombu.binding.* sets, i.e. every queue a worker or producer declared,
leaving out Celery's pidbox, reply and celeryev queues.""",
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
          --consumers-critical; a RabbitMQ queue does not exist; the
          broker is down, refuses us or does not answer within -t""",
    examples="""\
check_celery_queue -b redis://redis:6379/0 -q celery -q mail -w 100 -c 1000
check_celery_queue --broker-file /etc/celery/broker_url --all-queues -c 5000
check_celery_queue -b amqp://nagios@rabbit/prod -q celery -c 1000 \\
    --consumers-critical 1:
check_celery_queue -O global_keyprefix=myapp: -O 'priority_steps=[0,5,9]'""",
)


def parse_args(argv=None):
    parser = cli.make_parser(
        "check_celery_queue",
        "Alert when messages pile up in Celery queues.",
        thresholds=("each queue's waiting messages", None, None),
        broker=True,
        **HELP,
    )
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
    args = parser.parse_args(argv)
    args.transport = broker.transport_of(args.broker_url)
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
            args.layout = RedisLayout(args.transport_options)
        except CheckError as exc:
            parser.error(str(exc))
    # Keep the order given, drop repeats (a repeated label breaks perfdata).
    args.queues = list(dict.fromkeys(args.queues or ([] if args.all_queues else [DEFAULT_QUEUE])))
    return args


def _queue_name(text):
    if not text:
        raise argparse.ArgumentTypeError("a queue name cannot be empty")
    return text


# ------------------------------------------------------------------- acquire

class Depth:
    """One queue as the broker sees it."""

    def __init__(self, name, waiting=None, buckets=(), consumers=None, unacked=None):
        self.name = name
        self.waiting = waiting  # None: the queue does not exist (RabbitMQ)
        self.buckets = list(buckets)  # [(priority step, count)] on Redis
        self.consumers = consumers  # RabbitMQ only
        self.unacked = unacked  # Redis with --unacked-per-queue only

    @property
    def missing(self):
        return self.waiting is None

    def describe(self):
        if self.missing:
            return "%s: not found" % shown(self.name)
        facts = ["%d waiting" % self.waiting]
        if any(n for step, n in self.buckets if step):
            facts[0] += " (priority %s)" % ", ".join(
                "%s: %d" % (priorities, n) for priorities, n in _bucket_names(self.buckets) if n)
        if self.consumers is not None:
            facts.append("%d consumers" % self.consumers)
        if self.unacked is not None:
            facts.append("%d unacked" % self.unacked)
        return "%s: %s" % (shown(self.name), ", ".join(facts))


def _bucket_names(buckets):
    """[(priorities a bucket holds, count)]: kombu files priority p under the
    largest step <= p, and clamps priorities to 0-9."""
    steps = sorted(step for step, _n in buckets)
    names = []
    for step, count in buckets:
        last = min([s - 1 for s in steps if s > step] + [9])
        names.append(("%d-%d" % (step, last) if last > step else "%d" % step, count))
    return names


def shown(name):
    """A queue name safe inside the status line (no perfdata pipe, no
    control characters such as kombu's separator)."""
    text = name.replace("|", "/")
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in text)


class RedisLayout:
    """Where kombu's Redis transport keeps things, from the transport options
    (kombu/transport/redis.py: Channel._q_for_pri, keyprefix_queue, and the
    global_keyprefix that PrefixedStrictRedis puts before every key)."""

    def __init__(self, options):
        self.sep = str(options.get("sep", KOMBU_SEP))
        self.prefix = str(options.get("global_keyprefix") or "")
        self.unacked_key = self.prefix + str(options.get("unacked_key") or KOMBU_UNACKED_KEY)
        steps = options.get("priority_steps", KOMBU_PRIORITY_STEPS)
        if not isinstance(steps, (list, tuple)) or not steps or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps):
            raise CheckError("transport option priority_steps must be a JSON list of "
                             "whole numbers >= 0, e.g. -O 'priority_steps=[0,3,6,9]'")
        self.steps = list(dict.fromkeys(steps))

    def keys(self, queue):
        """[(step, key)]: the list for priority 0 is the queue itself."""
        base = self.prefix + queue
        return [(step, "%s%s%d" % (base, self.sep, step) if step else base) for step in self.steps]

    def binding_pattern(self):
        return _glob_escape(self.prefix + KOMBU_BINDING_PREFIX) + "*"

    def queues_of_binding(self, key, members):
        """Queue names in one _kombu.binding.EXCHANGE set, Celery's internal
        exchanges and queues (pidbox, replies, events) left out."""
        exchange = key[len(self.prefix + KOMBU_BINDING_PREFIX):]
        if exchange == "celeryev" or exchange.endswith("pidbox"):
            return []
        names = []
        for member in members:
            # member = routing_key <sep> pattern <sep> queue
            queue = _text(member).split(self.sep)[-1]
            if queue and not queue.startswith("celeryev.") and not queue.endswith("pidbox"):
                names.append(queue)
        return names


def _glob_escape(text):
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def redis_depths(url, queues, layout, options, timeout, all_queues=False, per_queue=False):
    """([Depth], unacked total) in one pipeline (plus SCAN for --all-queues)."""
    client = broker.redis_client(url, options, timeout)
    try:
        with broker.redis_errors(url):
            if all_queues:
                queues = discover_redis_queues(client, layout)
            pipe = client.pipeline(transaction=False)
            plan = []
            for queue in queues:
                keys = layout.keys(queue)
                for _step, key in keys:
                    pipe.llen(key)
                plan.append((queue, keys))
            pipe.hlen(layout.unacked_key)
            if per_queue:
                pipe.hvals(layout.unacked_key)
            replies = _checked(pipe.execute(raise_on_error=False))
    finally:
        client.connection_pool.disconnect()
    replies.reverse()  # pop() from the front
    depths = []
    for queue, keys in plan:
        buckets = [(step, replies.pop()) for step, _key in keys]
        depths.append(Depth(queue, sum(n for _s, n in buckets), buckets))
    unacked = replies.pop()
    if per_queue:
        routed = _unacked_by_routing_key(replies.pop())
        for depth in depths:
            depth.unacked = routed.get(depth.name, 0)
    return depths, unacked


def discover_redis_queues(client, layout):
    keys = sorted(set(client.scan_iter(match=layout.binding_pattern(), count=1000)))
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.smembers(key)
    found = []
    for key, members in zip(keys, _checked(pipe.execute(raise_on_error=False))):
        found.extend(layout.queues_of_binding(_text(key), sorted(members)))
    return sorted(set(found))


def _checked(replies):
    """Raise the first error a pipeline returned; a key of the wrong type
    (somebody else's data under a queue's name) cannot be judged."""
    import redis

    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            if str(reply).startswith("WRONGTYPE"):
                raise CheckError("a queue key holds something other than a list: %s" % reply)
            raise reply
        if isinstance(reply, Exception):
            raise reply
    return list(replies)


def _unacked_by_routing_key(values):
    """kombu stores each unacked message as JSON [message, exchange,
    routing_key]; Celery's routing key is the queue's name."""
    counts = {}
    for value in values:
        try:
            routing_key = json.loads(value)[2]
        except (ValueError, TypeError, IndexError, KeyError):
            continue
        counts[routing_key] = counts.get(routing_key, 0) + 1
    return counts


def amqp_depths(url, queues, timeout):
    """[Depth] from passive declares on one connection, closed always."""
    import pika
    from pika.exceptions import AMQPError, ChannelClosedByBroker

    depths = []
    with broker.amqp_errors(url):
        connection = pika.BlockingConnection(broker.pika_parameters(url, timeout))
        try:
            channel = connection.channel()
            for queue in queues:
                try:
                    ok = channel.queue_declare(queue=queue, passive=True)
                except ChannelClosedByBroker as exc:
                    if exc.reply_code != 404:
                        raise Unreachable("broker %s refused queue %s: %s %s" % (
                            broker.redact_url(url), shown(queue), exc.reply_code, exc.reply_text))
                    depths.append(Depth(queue))
                    channel = connection.channel()  # a 404 closes the channel
                    continue
                depths.append(Depth(queue, ok.method.message_count,
                                    consumers=ok.method.consumer_count))
        finally:
            try:
                connection.close()
            except (AMQPError, OSError):
                pass  # already closed or gone: nothing left to leak
    return depths


class Queues(nagiosplugin.Resource):
    def __init__(self, args):
        self.args = args
        self.depths = []
        self.unacked = None
        self.by_metric = {}
        self.labels = {"unacked"}  # the total's label is taken

    def probe(self):
        args = self.args
        # Import the client first: on a busy host that alone can take a
        # good part of -t, which the network timeout must leave out.
        __import__("redis" if args.transport == "redis" else "pika")
        timeout = cli.network_timeout(args)
        if args.transport == "redis":
            self.depths, self.unacked = redis_depths(
                args.broker_url, args.queues, args.layout, args.transport_options,
                timeout, args.all_queues, args.unacked_per_queue)
        else:
            self.depths = amqp_depths(args.broker_url, args.queues, timeout)
        for depth in self.depths:
            if depth.missing:
                yield self._metric("missing " + depth.name, depth, 0, "missing")
                continue
            yield self._metric(depth.name, depth, depth.waiting, "waiting")
            if depth.consumers is not None:
                yield self._metric("consumers_" + depth.name, depth, depth.consumers, "consumers")
            if depth.unacked is not None:
                yield self._metric("unacked_" + depth.name, depth, depth.unacked, "unacked")
        if self.unacked is not None:
            yield nagiosplugin.Metric("unacked", self.unacked, min=0, context="unacked")

    def _metric(self, name, depth, value, context):
        name = unique_label(name, self.labels)
        self.by_metric[name] = depth
        return nagiosplugin.Metric(name, value, min=0, context=context)


# ------------------------------------------------------------------ evaluate

class CountContext(ThresholdContext):
    """A count against -w/-c style ranges, worded per queue."""

    def __init__(self, name, warning, critical, noun):
        super().__init__(name, warning, critical)
        self.noun = noun

    def evaluate(self, metric, resource):
        depth = resource.by_metric.get(metric.name)
        what = "%s has %d %s" % (
            "queue " + shown(depth.name) if depth else metric.name, metric.value, self.noun)
        for state, limit in ((nagiosplugin.Critical, self.critical), (nagiosplugin.Warn, self.warning)):
            if not limit.match(metric.value):
                return self.result_cls(state, "%s (%s)" % (what, violation(limit)), metric)
        return self.result_cls(nagiosplugin.Ok, what, metric)


class MissingContext(nagiosplugin.Context):
    def evaluate(self, metric, resource):
        depth = resource.by_metric[metric.name]
        hint = "queue %s not found on vhost %s" % (
            shown(depth.name), shown(broker.vhost_of(resource.args.broker_url)))
        return self.result_cls(nagiosplugin.Critical, hint, metric)


# ------------------------------------------------------------------- present

class QueueSummary(ProblemSummary):
    def __init__(self, verbose=0):
        self.verbosity = verbose

    def ok(self, results):
        resource = results[0].resource if results else None
        depths = resource.depths if resource else []
        if not depths:
            return "no queues found (no _kombu.binding.* sets)"
        if len(depths) == 1:
            text = "queue %s has %d waiting messages" % (shown(depths[0].name), depths[0].waiting)
            if depths[0].consumers is not None:
                text += ", %d consumers" % depths[0].consumers
            return text
        total = sum(d.waiting for d in depths)
        if not total:
            return "%d queues, no messages waiting" % len(depths)
        top = max(depths, key=lambda d: d.waiting)
        return "%d queues, %d messages waiting, most in %s (%d)" % (
            len(depths), total, shown(top.name), top.waiting)

    def item_lines(self, resource):
        if resource is None:
            return []
        lines = [d.describe() for d in resource.depths]
        if resource.unacked is not None:
            lines.append("unacked (reserved by workers): %d" % resource.unacked)
        if self.verbosity >= 2:
            args = resource.args
            lines.append("broker: %s" % broker.redact_url(args.broker_url))
            if args.transport == "redis":
                layout = args.layout
                lines.append("priority steps %s, separator %s, key prefix %r, unacked hash %s" % (
                    layout.steps, shown(layout.sep), layout.prefix, shown(layout.unacked_key)))
            used = () if args.transport == "amqp" else \
                REDIS_OPTIONS_USED + broker.sentinel_options_used(args.broker_url)
            unused = broker.unused_options_line(args.transport_options, used)
            if unused:
                lines.append(unused)
        return lines


@cli.guarded("CELERY_QUEUE")
def main(argv=None):
    args = parse_args(argv)
    check = nagiosplugin.Check(
        Queues(args),
        CountContext("waiting", args.warning, args.critical, "waiting messages"),
        CountContext("consumers", args.consumers_warning, args.consumers_critical, "consumers"),
        CountContext("unacked", None, None, "unacked messages"),
        MissingContext("missing"),
        QueueSummary(args.verbose),
    )
    check.name = "celery_queue"
    cli.run(check, args)


if __name__ == "__main__":
    main()
