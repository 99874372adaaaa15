"""Where kombu's Redis transport keeps things: the one place that knows.

From kombu/transport/redis.py (the same in kombu 5.2.4 and 5.7): a queue is
a list named after it, with one more list per priority step (QUEUE<sep>3,
...), every key behind the ``global_keyprefix`` transport option; declaring
a queue adds ``routing_key<sep>pattern<sep>queue`` to the set
``_kombu.binding.<exchange>``; reserved messages wait in the ``unacked``
hash; a broadcast (fanout) is a PUBLISH on ``/{db}.<exchange>``.

The second half reads those sets from a client of
:mod:`celery_checks.connect.redis` (the caller's connection and errors).
"""

from celery_checks.plugin.policy import CheckError

# kombu's Redis transport defaults (kombu/transport/redis.py, Channel).
KOMBU_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_UNACKED_KEY = "unacked"
KOMBU_BINDING_PREFIX = "_kombu.binding."
KOMBU_PERMANENT_BINDING_PREFIX = "_kombu.binding_permanent."  # kombu >= 5.6
CELERY_DEFAULT_EXCHANGE = "celery"  # Celery's task_default_exchange
#: the header celery_checks.install(app) adds to every task a process
#: publishes: its publish time (seconds since the epoch, the producer's clock)
PUBLISH_TIME_HEADER = "celery_checks_sent"


def priority_steps(steps):
    """The priority_steps transport option as a list without repeats;
    CheckError (a usage error) for anything kombu could not use."""
    if not isinstance(steps, (list, tuple)) or not steps or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps):
        raise CheckError("transport option priority_steps must be a JSON list of "
                         "whole numbers >= 0, e.g. -O 'priority_steps=[0,3,6,9]'")
    return list(dict.fromkeys(steps))


class RedisLayout:
    """Where kombu's Redis transport keeps things, from the transport options
    (kombu/transport/redis.py: Channel._q_for_pri, keyprefix_queue,
    _queue_bind, and the global_keyprefix that PrefixedStrictRedis puts
    before every key; the same in kombu 5.2.4 and 5.7)."""

    def __init__(self, options):
        self.sep = str(options.get("sep", KOMBU_SEP))
        self.prefix = str(options.get("global_keyprefix") or "")
        self.unacked_key = self.prefix + str(options.get("unacked_key") or KOMBU_UNACKED_KEY)
        self.steps = priority_steps(options.get("priority_steps", KOMBU_PRIORITY_STEPS))
        self._suffixes = [(step, "%s%d" % (self.sep, step) if step else "") for step in self.steps]

    def keys(self, queue):
        """[(step, key)]: the list for priority 0 is the queue itself."""
        base = self.prefix + queue
        return [(step, base + suffix) for step, suffix in self._suffixes]

    def list_keys(self, queues):
        """Every list of these queues, queue by queue, in the order of
        ``steps`` (``keys()`` of each, keys only: 4,000 for 1,000 queues)."""
        suffixes = [suffix for _step, suffix in self._suffixes]
        prefix = self.prefix
        return [prefix + queue + suffix for queue in queues for suffix in suffixes]

    def bucket_of(self, name):
        """(queue, step) when ``name`` is the key of a priority sub-list
        (QUEUE<sep>STEP), which kombu cannot tell from a queue of that name."""
        if self.sep not in name:
            return None
        for step in self.steps:
            suffix = "%s%d" % (self.sep, step)
            if step and name.endswith(suffix) and len(name) > len(suffix):
                return name[:-len(suffix)], step
        return None

    def binding_key(self, exchange):
        """The set kombu adds a queue's binding to (SADD) when a worker or
        producer declares it: Celery names a queue's exchange after it."""
        return self.prefix + KOMBU_BINDING_PREFIX + exchange

    def binding_tables(self, exchange):
        """The set of an exchange's bindings and its kombu >= 5.6 permanent
        mirror (kombu's binding sweep keeps a table while that has members)."""
        return [self.prefix + KOMBU_BINDING_PREFIX + exchange,
                self.prefix + KOMBU_PERMANENT_BINDING_PREFIX + exchange]

    def binding_member(self, routing_key, queue, pattern=""):
        """A binding as kombu writes it: routing_key<sep>pattern<sep>queue."""
        return self.sep.join([routing_key, pattern, queue])

    def fanout_topic(self, exchange, db, fanout_prefix=True):
        """The channel a fanout exchange publishes on: ``/{db}.`` before the
        exchange (kombu's fanout_prefix option: True, False or a string)."""
        fanout = fanout_prefix if isinstance(fanout_prefix, str) else ("/{db}." if fanout_prefix else "")
        return self.prefix + fanout.replace("{db}", str(db)) + exchange

    def binding_pattern(self, prefix=None):
        return glob_escape(self.prefix if prefix is None else prefix) + \
            glob_escape(KOMBU_BINDING_PREFIX) + "*"

    def bound_queues(self, members):
        """Queue names in the members of one _kombu.binding.EXCHANGE set."""
        names = []
        for member in members:
            # member = routing_key <sep> pattern <sep> queue (neither the
            # routing key nor a topic pattern holds the separator)
            parts = as_text(member).split(self.sep, 2)
            if len(parts) == 3 and parts[2]:
                names.append(parts[2])
        return names

    def check_separator(self, queue, members):
        """CheckError when ``queue``'s own binding (QUEUE sep sep QUEUE, as
        Celery binds a queue to the exchange named after it) was written
        with another separator: every priority sub-list would be missed."""
        # Imported here: the worker side and the trigger read this module
        # (through the store) and need not load nagiosplugin.
        from celery_checks.plugin.perfdata import quoted, shown

        for member in members:
            text = as_text(member)
            middle = text[len(queue):-len(queue)] if len(text) > 2 * len(queue) else ""
            half = len(middle) // 2
            if text.startswith(queue) and text.endswith(queue) and middle and \
                    middle[:half] == middle[half:] and middle[:half] != self.sep:
                raise CheckError(
                    "the bindings of queue %s use the separator %s, not %s: give -O sep=%s "
                    "as in the app's broker_transport_options" % (
                        shown(queue), quoted(middle[:half]), quoted(self.sep),
                        shown(middle[:half])))

    def queues_of_binding(self, key, members):
        """Queue names in one _kombu.binding.EXCHANGE set, Celery's internal
        exchanges and queues (pidbox, replies, events) left out."""
        exchange = key[len(self.prefix + KOMBU_BINDING_PREFIX):]
        if exchange == "celeryev" or exchange.endswith("pidbox"):
            return []
        return [queue for queue in self.bound_queues(members) if not celery_internal(queue)]


def celery_internal(queue):
    """Celery's own queues: workers' mailboxes and reply queues (pidbox),
    event receivers (celeryev.*), on any broker."""
    return queue.startswith("celeryev.") or queue.endswith("pidbox")


def glob_escape(text):
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def as_text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# ------------------------------------------------------ reading the bindings
# From a client of celery_checks.connect.redis (the caller's connection and
# errors).

def discover_redis_queues(client, layout, internals=False):
    found = []
    for key, members in bindings(client, layout.binding_pattern()):
        found.extend(layout.bound_queues(members) if internals
                     else layout.queues_of_binding(key, members))
    return sorted(set(found))


def bindings(client, pattern, deadline=None):
    """[(key, members)] of the binding sets matching ``pattern`` (SCAN, then
    SMEMBERS in one pipeline; with ``deadline``, a bounded SCAN)."""
    keys = sorted({as_text(k) for k in client.scan(pattern, deadline=deadline)})
    if not keys:
        return []
    commands = [("SMEMBERS", key) for key in keys]
    return list(zip(keys, checked(client.pipeline(commands, raise_errors=False), commands)))


def each_db(client, db, deadline=None):
    """(number, client) for this DB (``client`` itself), then a client of
    its own (``client.other_db``) for every other DB INFO keyspace lists,
    lowest first, until ``deadline``: where a search for misplaced keys (a
    wrong DB number) looks. Best effort: a server that refuses INFO or
    SELECT (ACLs) yields only what it allows (callers skip a DB whose
    commands fail with ReplyError); each other client is closed when the
    loop moves on."""
    import time

    from celery_checks.connect.redis import ReplyError

    yield db, client
    try:
        numbers = keyspace_dbs(client.call("INFO", "keyspace"))
    except ReplyError:
        return
    for number in numbers:
        if number == db:
            continue
        if deadline is not None and time.monotonic() > deadline:
            return
        other = client.other_db(number)
        try:
            yield number, other
        finally:
            other.close()


def keyspace_dbs(info):
    """The DB numbers of INFO keyspace (lines ``db3:keys=1,expires=0,...``)."""
    numbers = []
    for line in as_text(info).splitlines():
        name = line.split(":", 1)[0]
        if name.startswith("db") and name[2:].isdigit():
            numbers.append(int(name[2:]))
    return sorted(numbers)


def exchange_bound_elsewhere(client, layout, exchange, db, deadline=None):
    """None when ``exchange`` has bindings where ``layout`` and ``db`` say;
    else [(db, prefix)]: the other key prefixes and DBs of this server
    where it has some (a wrong -O global_keyprefix or DB number: the
    workers' celery.pidbox bindings are there, not here)."""
    from celery_checks.connect.redis import ReplyError

    name = KOMBU_BINDING_PREFIX + exchange
    places = []
    for number, where in each_db(client, db, deadline):
        try:
            found = bindings(where, "*" + glob_escape(name), deadline)
        except ReplyError:
            continue
        for key, members in found:
            prefix = key[:-len(name)]
            if not members:
                continue
            if (number, prefix) == (db, layout.prefix):
                return None
            places.append((number, prefix))
    return places


def checked(replies, commands=None):
    """Raise the first error a pipeline returned; a key of the wrong type
    (somebody else's data under a queue's name) cannot be judged.
    ``commands``: what was sent, (NAME, key, ...) each, to name the key."""
    from celery_checks.connect.redis import ReplyError
    from celery_checks.plugin.perfdata import quoted

    if ReplyError not in set(map(type, replies)):  # hiredis makes each: at C speed
        return list(replies)
    for index, reply in enumerate(replies):
        if isinstance(reply, ReplyError):
            if reply.code == "WRONGTYPE":
                command = commands[index] if commands and index < len(commands) else ()
                key = command[1] if len(command) > 1 else None
                raise CheckError("key %s holds another type of data than kombu keeps "
                                 "there: not a Celery queue (WRONGTYPE)" % (
                                     quoted(key) if key is not None else "?"))
            raise reply
    return list(replies)
