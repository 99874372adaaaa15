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
import difflib
import json
import time

import nagiosplugin

from celery_checks import broker, cli
from celery_checks.perfdata import ThresholdContext, plural, unique_label, violation
from celery_checks.policy import CheckError, Unreachable
from celery_checks.summary import ProblemSummary

DEFAULT_QUEUE = "celery"
# kombu's Redis transport defaults (kombu/transport/redis.py, Channel).
KOMBU_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_UNACKED_KEY = "unacked"
KOMBU_BINDING_PREFIX = "_kombu.binding."
CELERY_DEFAULT_EXCHANGE = "celery"  # Celery's task_default_exchange

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
    group.add_argument(
        "--missing-state", metavar="STATE", type=cli.state_name, default=2,
        help="state for a queue the broker does not know (Redis: not "
        "declared, RabbitMQ: not found) or no queue found by --all-queues "
        "(default: critical)",
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

class Depth:
    """One queue as the broker sees it."""

    def __init__(self, name, waiting=None, buckets=(), consumers=None, unacked=None,
                 declared=True):
        self.name = name
        self.waiting = waiting  # None: the queue does not exist (RabbitMQ)
        self.buckets = list(buckets)  # [(priority step, count)] on Redis
        self.consumers = consumers  # RabbitMQ only
        self.unacked = unacked  # Redis with --unacked-per-queue only
        # Redis: False when no message waits and no binding names the queue
        # under the key prefix and DB checked (nobody ever declared it).
        self.declared = declared
        self.absence = None  # Redis: why it is missing, and where it is instead

    @property
    def missing(self):
        return self.waiting is None or not self.declared

    def describe(self):
        if self.missing:
            return "%s: %s" % (shown(self.name), "not declared" if self.waiting is not None
                               else "not found")
        facts = ["%d waiting" % self.waiting]
        if any(n for step, n in self.buckets if step):
            facts[0] += " (priority %s)" % ", ".join(
                "%s: %d" % (priorities, n) for priorities, n in _bucket_names(self.buckets) if n)
        if self.consumers is not None:
            facts.append(plural(self.consumers, "consumer"))
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
    (kombu/transport/redis.py: Channel._q_for_pri, keyprefix_queue,
    _queue_bind, and the global_keyprefix that PrefixedStrictRedis puts
    before every key; the same in kombu 5.2.4 and 5.7)."""

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

    def bucket_of(self, name):
        """(queue, step) when ``name`` is the key of a priority sub-list
        (QUEUE<sep>STEP), which kombu cannot tell from a queue of that name."""
        for step in self.steps:
            suffix = "%s%d" % (self.sep, step)
            if step and name.endswith(suffix) and len(name) > len(suffix):
                return name[:-len(suffix)], step
        return None

    def binding_key(self, exchange):
        """The set kombu adds a queue's binding to (SADD) when a worker or
        producer declares it: Celery names a queue's exchange after it."""
        return self.prefix + KOMBU_BINDING_PREFIX + exchange

    def binding_pattern(self, prefix=None):
        return _glob_escape(self.prefix if prefix is None else prefix) + \
            _glob_escape(KOMBU_BINDING_PREFIX) + "*"

    def bound_queues(self, members):
        """Queue names in the members of one _kombu.binding.EXCHANGE set."""
        names = []
        for member in members:
            # member = routing_key <sep> pattern <sep> queue (neither the
            # routing key nor a topic pattern holds the separator)
            parts = _text(member).split(self.sep, 2)
            if len(parts) == 3 and parts[2]:
                names.append(parts[2])
        return names

    def check_separator(self, queue, members):
        """CheckError when ``queue``'s own binding (QUEUE sep sep QUEUE, as
        Celery binds a queue to the exchange named after it) was written
        with another separator: every priority sub-list would be missed."""
        for member in members:
            text = _text(member)
            middle = text[len(queue):-len(queue)] if len(text) > 2 * len(queue) else ""
            half = len(middle) // 2
            if text.startswith(queue) and text.endswith(queue) and middle and \
                    middle[:half] == middle[half:] and middle[:half] != self.sep:
                raise CheckError(
                    "the bindings of queue %s use the separator %s, not %s: give -O sep=%s "
                    "as in the app's broker_transport_options" % (
                        shown(queue), _quoted(middle[:half]), _quoted(self.sep),
                        shown(middle[:half])))

    def queues_of_binding(self, key, members):
        """Queue names in one _kombu.binding.EXCHANGE set, Celery's internal
        exchanges and queues (pidbox, replies, events) left out."""
        exchange = key[len(self.prefix + KOMBU_BINDING_PREFIX):]
        if exchange == "celeryev" or exchange.endswith("pidbox"):
            return []
        return [queue for queue in self.bound_queues(members)
                if not queue.startswith("celeryev.") and not queue.endswith("pidbox")]


def _glob_escape(text):
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class RedisFindings:
    """What one run read from Redis."""

    def __init__(self, db, depths=(), unacked=None, absence=None):
        self.db = db  # the database number checked
        self.depths = list(depths)
        self.unacked = unacked
        self.absence = absence  # --all-queues found nothing: why, and where instead


def redis_depths(url, queues, layout, options, timeout, all_queues=False, per_queue=False):
    """RedisFindings, in one pipeline: each queue's lists, the binding set
    of the exchange named after it (Celery's automatic queues) and that of
    Celery's default exchange (task_queues naming no exchange), the unacked
    hash. Only an empty queue bound in neither costs more (_not_declared)."""
    client = broker.redis_client(url, options, timeout)
    try:
        with broker.redis_errors(url):
            db = int(client.connection_pool.connection_kwargs.get("db") or 0)
            absence = None
            if all_queues:
                queues = discover_redis_queues(client, layout)
                if not queues:
                    places = _bound_elsewhere(client, layout, db, None, _deadline(timeout))
                    absence = Absence(None, layout, db, places)
            pipe = client.pipeline(transaction=False)
            plan, asked = [], []
            for queue in queues:
                keys = layout.keys(queue)
                for _step, key in keys:
                    pipe.llen(key)
                    asked.append(key)
                pipe.smembers(layout.binding_key(queue))
                asked.append(layout.binding_key(queue))
                plan.append((queue, keys))
            # Celery binds the queues of task_queues that name no exchange
            # to its default exchange, "celery" unless task_default_exchange
            # says otherwise: one more small set covers them.
            pipe.smembers(layout.binding_key(CELERY_DEFAULT_EXCHANGE))
            asked.append(layout.binding_key(CELERY_DEFAULT_EXCHANGE))
            pipe.hlen(layout.unacked_key)
            asked.append(layout.unacked_key)
            if per_queue:
                pipe.hvals(layout.unacked_key)
                asked.append(layout.unacked_key)
            replies = _checked(pipe.execute(raise_on_error=False), asked)
            replies.reverse()  # pop() from the front
            depths = []
            for queue, keys in plan:
                buckets = [(step, replies.pop()) for step, _key in keys]
                waiting = sum(n for _s, n in buckets)
                members = replies.pop()
                bound = queue in layout.bound_queues(members)
                if not bound:
                    layout.check_separator(queue, members)
                declared = all_queues or bound or bool(waiting)
                depths.append(Depth(queue, waiting, buckets, declared=declared))
            by_default = set(layout.bound_queues(replies.pop()))
            for depth in depths:
                depth.declared = depth.declared or depth.name in by_default
            unacked = replies.pop()
            if per_queue:
                routed = _unacked_by_routing_key(replies.pop())
                for depth in depths:
                    depth.unacked = routed.get(depth.name, 0)
            undeclared = [d for d in depths if not d.declared]
            if undeclared:
                _not_declared(client, layout, db, undeclared, _deadline(timeout))
    finally:
        client.connection_pool.disconnect()
    return RedisFindings(db, depths, unacked, absence)


def discover_redis_queues(client, layout, internals=False):
    found = []
    for key, members in _bindings(client, layout.binding_pattern()):
        found.extend(layout.bound_queues(members) if internals
                     else layout.queues_of_binding(key, members))
    return sorted(set(found))


def _bindings(client, pattern, deadline=None):
    """[(key, members)] of the binding sets matching ``pattern`` (SCAN, then
    SMEMBERS in one pipeline); ``client`` may be a _RawDb."""
    keys = sorted({_text(k) for k in _scan(client, pattern, deadline)})
    if not keys:
        return []
    return list(zip(keys, _checked(client.smembers_all(keys) if isinstance(client, _RawDb)
                                   else _smembers_all(client, keys), keys)))


def _smembers_all(client, keys):
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.smembers(key)
    return pipe.execute(raise_on_error=False)


# SCAN calls (COUNT 1000 keys each) the search for a misplaced queue may make
# per database, and the share of the network timeout it may take, so that a
# huge keyspace cannot turn "not declared" into a timeout: the search stops
# and the hint is left out.
SCAN_BUDGET = 200
SEARCH_SHARE = 0.5


def _deadline(timeout):
    return time.monotonic() + timeout * SEARCH_SHARE


def _scan(client, pattern, deadline=None):
    """Keys matching ``pattern``: all of them, or (with ``deadline``) those
    found within SCAN_BUDGET calls and before the deadline."""
    if deadline is None and not isinstance(client, _RawDb):
        return list(client.scan_iter(match=pattern, count=1000))
    call = client.call if isinstance(client, _RawDb) else client.execute_command
    cursor, keys = 0, []
    for _ in range(SCAN_BUDGET):
        cursor, batch = call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        keys.extend(batch)
        if not int(cursor) or (deadline is not None and time.monotonic() > deadline):
            break
    return keys


class Absence:
    """Why a queue (or, for --all-queues, any queue) reads as missing on
    Redis, and where its bindings are instead."""

    def __init__(self, queue, layout, db, places=(), similar=None):
        self.queue = queue  # None: --all-queues found none
        self.prefix = layout.prefix
        self.db = db
        self.places = sorted(places, key=lambda p: (p[0] != db, p[0], p[1]))  # [(db, prefix)]
        self.similar = similar

    def text(self):
        what = "queue %s not declared" % shown(self.queue) if self.queue is not None \
            else "no queues declared"
        text = "%s under key prefix %s in DB %d" % (what, _quoted(self.prefix), self.db)
        if self.places:
            db, prefix = self.places[0]
            where = []
            if db != self.db:
                where.append("in DB %d" % db)
            if prefix != self.prefix:
                where.append("under prefix %s" % _quoted(prefix))
            text += "; found " + " ".join(where)
            if db == self.db:
                text += " (-O global_keyprefix=%s)" % shown(prefix) if prefix \
                    else " (without -O global_keyprefix)"
            if len(self.places) > 1:
                text += " (+%d more)" % (len(self.places) - 1)
        elif self.similar:
            text += "; did you mean %s?" % shown(self.similar)
        elif self.queue is not None and "," in self.queue:
            text += " (-q takes one name: repeat -q for each queue)"
        return text

    def places_text(self):
        return ["bindings found in DB %d under key prefix %s" % (db, _quoted(prefix))
                for db, prefix in self.places]


def _quoted(text):
    return "'%s'" % shown(text).replace("'", "\\'")


def _not_declared(client, layout, db, depths, deadline):
    """The failure path for queues with no message and no binding in the
    exchange named after them: a binding through another exchange still
    declares them (one SCAN of this prefix's binding sets); the rest get an
    Absence saying where their bindings are, if anywhere."""
    bindings = _bindings(client, layout.binding_pattern())
    here = {q for _key, members in bindings for q in layout.bound_queues(members)}
    missing = []
    for depth in depths:
        if depth.name in here:
            depth.declared = True
        else:
            missing.append(depth)
    if not missing:
        return
    places = _bound_elsewhere(client, layout, db, {d.name for d in missing}, deadline)
    visible = sorted({queue for key, members in bindings
                      for queue in layout.queues_of_binding(key, members)})
    for depth in missing:
        found = places.get(depth.name, [])
        close = difflib.get_close_matches(depth.name, visible, n=1, cutoff=0.75)
        depth.absence = Absence(depth.name, layout, db, found, close[0] if close else None)


def _bound_elsewhere(client, layout, db, queues, deadline):
    """Where else in this Redis queues are bound: {queue: [(db, prefix)]}
    for the names in ``queues``, or [(db, prefix)] with any (non-internal)
    binding when ``queues`` is None. Other key prefixes of this DB (one
    SCAN), then every other DB INFO keyspace lists. Best effort: a server
    that refuses INFO or SELECT (ACLs) only leaves the hint out."""
    import redis

    found = {}
    places = set()

    def collect(number, key_members):
        for key, members in key_members:
            at = key.find(KOMBU_BINDING_PREFIX)
            prefix = key[:at]
            if at < 0 or (number == db and prefix == layout.prefix):
                continue
            other = RedisLayout(dict(sep=layout.sep, global_keyprefix=prefix,
                                     priority_steps=layout.steps))
            names = other.queues_of_binding(key, members)
            if queues is None:
                if names:
                    places.add((number, prefix))
                continue
            for name in names:
                if name in queues:
                    found.setdefault(name, set()).add((number, prefix))

    pattern = "*" + _glob_escape(KOMBU_BINDING_PREFIX) + "*"
    try:
        collect(db, _bindings(client, pattern, deadline))
        keyspace = client.info("keyspace")
    except redis.ResponseError:
        keyspace = {}
    for name in sorted(keyspace, key=lambda n: int(n[2:]) if n[2:].isdigit() else -1):
        if not (name.startswith("db") and name[2:].isdigit()) or int(name[2:]) == db:
            continue
        if time.monotonic() > deadline:
            break
        other = _RawDb(client, int(name[2:]))
        try:
            collect(int(name[2:]), _bindings(other, pattern, deadline))
        except redis.ResponseError:
            continue
        finally:
            other.close()
    if queues is None:
        return sorted(places)
    return {name: sorted(where) for name, where in found.items()}


class _RawDb:
    """One connection of its own to another database of the same server
    (same address, credentials and TLS as the check's client), never
    returned to the pool, so the check's own client never changes DB."""

    def __init__(self, client, db):
        pool = client.connection_pool
        self.connection = pool.connection_class(**dict(pool.connection_kwargs, db=db))
        # connect() first, as a pool does: a sentinel-managed connection
        # asks the sentinels for the master there, while the first command
        # would connect it to its default address (localhost:6379).
        self.connection.connect()

    def call(self, *args):
        self.connection.send_command(*args)
        return self.connection.read_response()

    def smembers_all(self, keys):
        import redis

        self.connection.send_packed_command(
            self.connection.pack_commands([("SMEMBERS", key) for key in keys]))
        replies = []
        for _key in keys:
            try:
                replies.append(self.connection.read_response())
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies

    def close(self):
        self.connection.disconnect()


def _checked(replies, keys=None):
    """Raise the first error a pipeline returned; a key of the wrong type
    (somebody else's data under a queue's name) cannot be judged."""
    import redis

    for index, reply in enumerate(replies):
        if isinstance(reply, redis.ResponseError):
            if str(reply).startswith("WRONGTYPE"):
                key = keys[index] if keys and index < len(keys) else None
                raise CheckError("key %s holds another type of data than kombu keeps "
                                 "there: not a Celery queue (WRONGTYPE)" % (
                                     _quoted(key) if key is not None else "?"))
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
        self.db = None  # Redis: the database checked
        self.absence = None  # Redis --all-queues: nothing found under the prefix
        self.by_metric = {}
        self.labels = {"unacked"}  # the total's label is taken

    def probe(self):
        args = self.args
        # Import the client first: on a busy host that alone can take a
        # good part of -t, which the network timeout must leave out.
        __import__("redis" if args.transport == "redis" else "pika")
        timeout = cli.network_timeout(args)
        if args.transport == "redis":
            found = redis_depths(
                args.broker_url, args.queues, args.layout, args.transport_options,
                timeout, args.all_queues, args.unacked_per_queue)
            self.depths, self.unacked, self.db = found.depths, found.unacked, found.db
            self.absence = found.absence
        else:
            self.depths = amqp_depths(args.broker_url, args.queues, timeout)
        if self.absence is not None:
            # "=" cannot be in a label, so this name never meets a queue's.
            yield nagiosplugin.Metric("=no queues", 0, context="missing")
        for depth in self.depths:
            if depth.missing:
                # A missing queue has no perfdata; its metric is named so that
                # no queue's label can equal it ("missing mail" is a queue's).
                self.by_metric["=missing=" + depth.name] = depth
                yield nagiosplugin.Metric("=missing=" + depth.name, 0, context="missing")
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
        what = "%s has %s" % (
            "queue " + shown(depth.name) if depth else metric.name, plural(metric.value, self.noun))
        for state, limit in ((nagiosplugin.Critical, self.critical), (nagiosplugin.Warn, self.warning)):
            if not limit.match(metric.value):
                return self.result_cls(state, "%s (%s)" % (what, violation(limit)), metric)
        return self.result_cls(nagiosplugin.Ok, what, metric)


class MissingContext(nagiosplugin.Context):
    """A queue the broker does not know, or --all-queues finding none:
    --missing-state."""

    def __init__(self, name, state):
        super().__init__(name)
        self.state = state

    def evaluate(self, metric, resource):
        if metric.name == "=no queues":
            return self.result_cls(self.state, resource.absence.text(), metric)
        depth = resource.by_metric[metric.name]
        if depth.absence is not None:
            hint = depth.absence.text()
        else:
            hint = "queue %s not found on vhost %s" % (
                shown(depth.name), shown(broker.vhost_of(resource.args.broker_url)))
        return self.result_cls(self.state, hint, metric)


# ------------------------------------------------------------------- present

class QueueSummary(ProblemSummary):
    def __init__(self, verbose=0):
        self.verbosity = verbose

    def ok(self, results):
        resource = results[0].resource if results else None
        if resource is not None and resource.absence is not None:
            return resource.absence.text()  # --missing-state ok
        depths = [d for d in resource.depths if not d.missing] if resource else []
        absent = len(resource.depths) - len(depths) if resource else 0
        if not depths:
            return str(results[0]) if absent else "no queues found"
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
        lines = [d.describe() for d in resource.depths]
        absences = [d.absence for d in resource.depths if d.absence] + (
            [resource.absence] if resource.absence else [])
        for absence in absences:
            if len(absence.places) > 1:
                lines.extend(absence.places_text())
        if resource.unacked is not None:
            lines.append("unacked (reserved by workers): %d" % resource.unacked)
        if self.verbosity >= 2:
            args = resource.args
            lines.append("broker: %s" % broker.redact_url(args.broker_url))
            if args.transport == "redis":
                layout = args.layout
                lines.append("DB %s, priority steps %s, separator %s, key prefix %r, "
                             "unacked hash %s" % (resource.db, layout.steps, shown(layout.sep),
                                                  layout.prefix, shown(layout.unacked_key)))
        return lines


@cli.guarded("CELERY_QUEUE")
def main(argv=None):
    args = parse_args(argv)
    check = nagiosplugin.Check(
        Queues(args),
        CountContext("waiting", args.warning, args.critical, "waiting message"),
        CountContext("consumers", args.consumers_warning, args.consumers_critical, "consumer"),
        CountContext("unacked", None, None, "unacked message"),
        MissingContext("missing", _state(args.missing_state)),
        QueueSummary(args.verbose),
    )
    check.name = "celery_queue"
    cli.run(check, args)


def _state(code):
    return {0: nagiosplugin.Ok, 1: nagiosplugin.Warn, 2: nagiosplugin.Critical,
            3: nagiosplugin.Unknown}[code]


if __name__ == "__main__":
    main()
