"""check_celery_workers: are the expected workers there, and only those?

acquire:  one source gives a list of observed nodes with what it knows:
          ping   - one broadcast ``ping`` on the celery.pidbox exchange,
                   the messages ``celery inspect ping`` exchanges (kombu on
                   AMQP, redis-py alone on Redis), stopping as soon as the
                   inventory is complete;
          events - worker-heartbeat events on the celeryev exchange, after
                   asking every worker for one at once;
          stdin  - the text or JSON of ``celery status`` / ``celery inspect
                   ping`` piped in.
evaluate: the inventory (--expect) decides which nodes are missing and which
          are unexpected; -w/-c judge the number online
present:  WorkersSummary names what is wrong; -v lists every node

Never imports celery nor the user's app. The pure parts (inventory, parsers)
are plain functions tested on their own.
"""

import fnmatch
import json
import re
import socket
import time
import uuid

import nagiosplugin

from celery_checks import cli
from celery_checks.broker import unused_options_line
from celery_checks.perfdata import ThresholdContext, number, plural, unique_label, violation
from celery_checks.policy import CheckError, Unreachable
from celery_checks.secrets import redact_url

SOURCES = ("ping", "events", "stdin")
DEFAULT_REPLY_TIMEOUT = 1.0
DEFAULT_WINDOW = 3.0
# Once every expected node answered, unexpected ones get a grace to answer
# too: 3 times the slowest reply so far (they share its network path),
# within these bounds, so a fast local broker is not slowed to a remote's pace.
GRACE_FACTOR, GRACE_MIN, GRACE_MAX = 3, 0.03, 0.2
# Past the expiry a broadcast carries, replies sent just before it may still
# be on their way: listened for this much longer.
LATE = 0.2
HEARTBEAT_EXPIRE = 2.0  # alive while received < freq * this ago (celery's rule)
STATUS_WIDTH = 80
NO_ANSWER = "no worker answered"

HELP = dict(
    check="""\
Which Celery workers (nodes) are online, compared with an inventory.
--source ping (default): one broadcast ping, like `celery inspect ping`,
  ended as soon as every expected node answered plus a grace for
  unexpected ones (3 x the slowest reply, 0.03 to 0.2 s); else it waits
  --reply-timeout from the broadcast (workers drop the ping after it) and
  0.2 s more for replies on their way. A solo worker answers between
  tasks only: give tasks longer than that a prefork or threads pool.
--source events: listens to worker-heartbeat events on the celeryev
  exchange, asks every worker for an immediate heartbeat, ends as soon as
  the inventory is complete (plus the grace) or --window (counted from
  the request) ends. A node is
  online when we received its heartbeat less than 2 x its freq ago (our
  clock, not the sender's) and no worker-offline came after it.
--source stdin: parses `celery status` or `celery inspect ping` output
  (Celery 3 to 5, text with or without colour, or --json) piped in.
Inventory: --expect PATTERN[=COUNT], PATTERN a shell glob on the full node
name, COUNT (default 1) nodes expected to match it. A node counts for the
first pattern it matches, names without a glob first. Fewer than COUNT:
missing; a node matching no pattern, or beyond a pattern's COUNT:
unexpected. The ping and events sources only write what `celery inspect`
writes: a broadcast message and a short-lived reply/event queue that is
deleted (and auto-deleted, exclusive on RabbitMQ) when the check ends.""",
    perfdata="""\
online          nodes that answered, with warn/crit from -w/-c
expected        nodes the inventory expects (sum of COUNTs)
missing         expected nodes that did not answer
unexpected      nodes beyond the inventory
rtt_NODE        ping: seconds from broadcast to NODE's reply
hb_age_NODE     events: seconds since we received NODE's last heartbeat
NODE is the full node name, e.g. rtt_celery@web1, one label for every node
heard, on every run. Integers except rtt and hb_age. The active/processed
task counts are in -v only: the heartbeat a worker sends when asked carries
none, so they are known for some nodes on some runs. Long node names
sharing a prefix may collide in tools that keep only the first 19
characters of a label.""",
    states="""\
OK        every expected node online, nothing unexpected, count in range
WARNING   an unexpected node (--unexpected-state); online outside -w;
          workers run different Celery versions (--versions-differ-state,
          events source, default ok)
CRITICAL  an expected node missing (--missing-state); online outside -c;
          no inventory nor -w/-c and no node answered; the broker cannot
          be reached; on stdin, celery says it could not reach the broker
          or "No nodes replied" (quoted)
UNKNOWN   stdin is empty, celery itself failed (no app, bad option), or
          it is not celery status/inspect ping output""",
    examples="""\
check_celery_workers --expect 'celery@web*=4' --expect celery@beat1
check_celery_workers --expect-file /etc/celery/workers.txt -b amqp://...
check_celery_workers --source events -c 2: --versions-differ-state warn
celery -A proj status --json >status.json 2>&1
check_celery_workers --source stdin --expect 'w-[0-9]*@serverA=4' <status.json""",
)


def parse_args(argv=None):
    parser = cli.make_parser(
        "check_celery_workers",
        "Alert when expected Celery workers are missing or unknown ones appear.",
        thresholds=("the number of online nodes", None, None),
        broker=True,
        **HELP,
    )
    group = parser.add_argument_group("inventory")
    group.add_argument(
        "--expect", metavar="PATTERN[=COUNT]", action="append", type=expectation, default=[],
        help="nodes expected: a glob on the full node name and how many "
        "should match it (default 1); repeatable",
    )
    group.add_argument(
        "--expect-file", metavar="PATH",
        help="read PATTERN[=COUNT] lines from this file (# comments)",
    )
    group.add_argument(
        "--missing-state", metavar="STATE", type=cli.state_name, default=2,
        help="state when an expected node is missing (default: critical)",
    )
    group.add_argument(
        "--unexpected-state", metavar="STATE", type=cli.state_name, default=1,
        help="state when a node is not in the inventory (default: warning)",
    )
    source = parser.add_argument_group("source")
    source.add_argument(
        "--source", choices=SOURCES, default="ping",
        help="where the nodes come from (default: ping)",
    )
    source.add_argument(
        "--reply-timeout", metavar="SECONDS", type=cli.positive_float,
        help="ping: wait at most this long for replies (default: %s, at most "
        "half of -t)" % DEFAULT_REPLY_TIMEOUT,
    )
    source.add_argument(
        "--window", metavar="SECONDS", type=cli.positive_float,
        help="events: listen at most this long (default: %s, at most half of "
        "-t)" % DEFAULT_WINDOW,
    )
    source.add_argument(
        "--versions-differ-state", metavar="STATE", type=cli.state_name,
        help="events: state when nodes run different Celery versions (default: ok)",
    )
    args = parser.parse_args(argv)
    # An option another source reads would be ignored: say so rather than
    # let the user believe it took effect (these default to None for that).
    for option, source in (("reply_timeout", "ping"), ("window", "events"),
                           ("versions_differ_state", "events")):
        if getattr(args, option) is not None and args.source != source:
            parser.error("--%s applies to --source %s only, not --source %s"
                         % (option.replace("_", "-"), source, args.source))
    if args.versions_differ_state is None:
        args.versions_differ_state = 0
    if args.expect_file:
        try:
            args.expect = args.expect + read_expect_file(args.expect_file)
        except CheckError as exc:
            parser.error(str(exc))
    try:
        check_expectations(args.expect)
    except ValueError as exc:
        parser.error(str(exc))
    # Unset waits fit a short -t by themselves; given ones are checked.
    if args.reply_timeout is None:
        args.reply_timeout = min(DEFAULT_REPLY_TIMEOUT, args.timeout / 2)
    if args.window is None:
        args.window = min(DEFAULT_WINDOW, args.timeout / 2)
    limit = args.timeout - 0.5
    if args.source == "ping" and args.reply_timeout > limit:
        parser.error("--reply-timeout must stay below -t (%ss) by 0.5 s" % args.timeout)
    if args.source == "events" and args.window > limit:
        parser.error("--window must stay below -t (%ss) by 0.5 s" % args.timeout)
    return args


# ----------------------------------------------------------------- inventory

def expectation(spec):
    """argparse type: ``PATTERN[=COUNT]`` -> (pattern, count)."""
    import argparse

    try:
        return parse_expectation(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def parse_expectation(spec):
    """``'special-*@serverA=4'`` -> ``('special-*@serverA', 4)``; ValueError."""
    text = spec.strip()
    pattern, sep, count = text.rpartition("=")
    if not sep:
        pattern, count = text, "1"
    pattern = pattern.strip()
    if not pattern or any(c.isspace() for c in pattern):
        raise ValueError("invalid worker pattern %r (expected PATTERN[=COUNT])" % spec)
    try:
        value = int(count)
    except ValueError:
        raise ValueError("invalid count in %r (expected PATTERN[=COUNT])" % spec)
    if value < 1:
        raise ValueError("count in %r must be at least 1" % spec)
    return pattern, value


def check_expectations(expectations):
    """ValueError for an inventory that would count a node twice: a pattern
    given twice, or a literal name (no glob) with a COUNT above 1 (a name
    matches one node)."""
    seen = set()
    for pattern, count in expectations:
        if pattern in seen:
            raise ValueError("worker pattern %s is expected twice (a node counts once)" % pattern)
        seen.add(pattern)
        if count > 1 and not has_glob(pattern):
            raise ValueError("expected %s=%d: a name without a glob is one node, "
                             "its COUNT must be 1" % (pattern, count))


def read_expect_file(path):
    """Expectations from a file: one PATTERN[=COUNT] a line, # comments."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckError("cannot read --expect-file %s: %s" % (path, getattr(exc, "strerror", None) or exc))
    expected = []
    for number_, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            expected.append(parse_expectation(line))
        except ValueError as exc:
            raise CheckError("%s line %d: %s" % (path, number_, exc))
    return expected


def has_glob(pattern):
    return any(c in pattern for c in "*?[")


class Inventory:
    """Which nodes we expect; judges a set of online node names.

    A node counts for the first pattern it matches, literal names before
    globs, so ``--expect 'w-*@a=3' --expect w-1@a`` means w-1@a plus three
    others.
    """

    def __init__(self, expectations):
        check_expectations(expectations)
        literal = [(p, c) for p, c in expectations if not has_glob(p)]
        globs = [(p, c) for p, c in expectations if has_glob(p)]
        self.patterns = literal + globs

    def __bool__(self):
        return bool(self.patterns)

    @property
    def expected(self):
        return sum(count for _, count in self.patterns)

    def assign(self, names):
        """{pattern: [names]} and [names matching nothing]."""
        matched = {pattern: [] for pattern, _ in self.patterns}
        unmatched = []
        for name in sorted(names):
            for pattern, _ in self.patterns:
                if fnmatch.fnmatchcase(name, pattern):
                    matched[pattern].append(name)
                    break
            else:
                unmatched.append(name)
        return matched, unmatched

    def complete(self, names):
        matched, _ = self.assign(names)
        return all(len(matched[p]) >= c for p, c in self.patterns)

    def judge(self, names):
        """-> Verdict: what is missing and what is unexpected."""
        matched, unmatched = self.assign(names)
        missing, surplus = [], []
        for pattern, count in self.patterns:
            found = len(matched[pattern])
            if found < count:
                missing.append(Shortfall(pattern, count, found))
            elif found > count:
                surplus.append(Shortfall(pattern, count, found))
        return Verdict(self.expected, missing, unmatched, surplus, matched)


class Shortfall:
    """A pattern matched by fewer (or more) nodes than expected."""

    def __init__(self, pattern, count, found):
        self.pattern, self.count, self.found = pattern, count, found

    @property
    def gap(self):
        return abs(self.count - self.found)

    def missing_text(self):
        if self.count == 1 and not has_glob(self.pattern):
            return self.pattern
        return "%s (only %d of %d)" % (self.pattern, self.found, self.count)

    def surplus_text(self):
        return "%s (%d, not %d)" % (self.pattern, self.found, self.count)


class Verdict:
    def __init__(self, expected, missing, unmatched, surplus, matched):
        self.expected = expected
        self.missing_patterns = missing
        self.unmatched = unmatched
        self.surplus = surplus
        self.matched = matched

    @property
    def missing(self):
        return sum(s.gap for s in self.missing_patterns)

    @property
    def unexpected(self):
        return len(self.unmatched) + sum(s.gap for s in self.surplus)

    def pattern_of(self, name):
        for pattern, names in self.matched.items():
            if name in names:
                return pattern
        return None


def shorten(items, room):
    """``a, b, +3 more`` fitting ``room`` characters (at least one item)."""
    shown = []
    for index, item in enumerate(items):
        rest = len(items) - index - 1
        candidate = ", ".join(shown + [item]) + (", +%d more" % rest if rest else "")
        if shown and len(candidate) > room:
            return ", ".join(shown) + ", +%d more" % (len(items) - index)
        shown.append(item)
    return ", ".join(shown)


# ------------------------------------------------------------ stdin parsers

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Celery 5 "->  node: OK", Celery 3/4 "-> node: OK", bare "node@host: OK"
_NODE_LINE = re.compile(r"^\s*->\s+(?P<node>\S+?):\s*(?P<status>\S.*?)\s*$")
_BARE_LINE = re.compile(r"^\s*(?P<node>[^\s:]+@[^\s:]+):\s+(?P<status>\S.*?)\s*$")
_ONLINE = re.compile(r"^\s*(?P<count>\d+)\s+nodes?\s+online\.?\s*$")
_NO_NODES = re.compile(r"No nodes replied[^.\n]*", re.I)
# What `celery status` / `inspect ping` print when they cannot ask the
# workers (tests/data/workers/*-down-*, *-refused-*, *-hang-*): Celery >= 5.3
# one "Error: ... Reason: ..." line, Celery 5.2 a traceback ending in the
# broker client's exception.
_CELERY_ERROR = re.compile(
    r"^Error: (?:(?P<connect>Could not connect to the message broker)"
    r"|Unable to run the `(?P<command>[^`]+)` command)\..*?Reason: (?P<reason>.+?)\s*$",
    re.M | re.S)
_TRACEBACK_END = re.compile(
    r"^(?P<exc>(?:kombu|amqp|redis)\.exceptions\.\w+|ConnectionRefusedError|"
    r"ConnectionResetError|TimeoutError|socket\.timeout): (?P<reason>.+?)\s*$")


class Observed(list):
    """The replies a source saw, with what Celery said about them, when it
    said something (``No nodes replied within time constraint``)."""

    note = None


class Reply:
    """One node as a source saw it."""

    def __init__(self, name, ok=True, status="OK", **facts):
        self.name = name
        self.ok = ok  # answered as a healthy worker does
        self.status = status
        self.facts = facts  # rtt, active, processed, sw_ver, hb_age, freq

    def describe(self):
        parts = [self.status if not self.ok else "online"]
        facts = self.facts
        if "rtt" in facts:
            parts.append("rtt %ss" % number(facts["rtt"]))
        if "hb_age" in facts:
            parts.append("heartbeat %ss ago" % number(facts["hb_age"], 1))
        for key in ("active", "processed"):
            if key in facts:
                parts.append("%s %s" % (key, facts[key]))
        if facts.get("sw_ver"):
            parts.append("celery %s" % facts["sw_ver"])
        if facts.get("pid"):
            parts.append("pid %s" % facts["pid"])
        return ", ".join(parts)


def parse_status(text):
    """Replies from ``celery status`` / ``celery inspect ping`` output.

    Text (any Celery from 3 to 5, colour or not) or --json. ``No nodes
    replied`` is a valid answer: no node online. CheckError for anything
    that is not such output.
    """
    clean = _ANSI.sub("", text).replace("\r", "")
    stripped = clean.strip()
    if not stripped:
        raise CheckError("no input on stdin: pipe `celery status` (or --json) into --source stdin")
    if stripped.startswith("{"):
        return Observed(_parse_json(stripped))
    _raise_celery_failure(clean)
    replies, announced, no_nodes = Observed(), None, None
    for line in clean.splitlines():
        match = _NODE_LINE.match(line) or _BARE_LINE.match(line)
        if match:
            status = match.group("status")
            ok = status.upper() == "OK"
            replies.append(Reply(match.group("node"), ok=ok, status=status if not ok else "OK"))
            continue
        online = _ONLINE.match(line)
        if online:
            announced = int(online.group("count"))
        elif _NO_NODES.search(line):
            no_nodes = _NO_NODES.search(line).group(0).strip()
    if no_nodes and not replies:
        replies.note = "celery: " + no_nodes
        return replies
    if not replies:
        raise CheckError("stdin is not `celery status` or `celery inspect ping` output: %s"
                         % _excerpt(stripped))
    if announced is not None and announced != len(replies):
        raise CheckError("stdin says %d nodes online but lists %d: truncated input?"
                         % (announced, len(replies)))
    return replies


def _raise_celery_failure(text):
    """Unreachable, in Celery's words, when ``text`` is what `celery status`
    prints when it cannot reach the broker (a fact about the fleet: nobody
    can ask the workers), CRITICAL like our own sources say it."""
    match = _CELERY_ERROR.search(text)
    if match:
        if match.group("connect"):
            head = "celery cannot reach the broker: "
        else:
            head = "celery could not run `%s`: " % match.group("command")
        raise Unreachable(head + _cut(match.group("reason"), head))
    if "Traceback (most recent call last):" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        match = _TRACEBACK_END.match(last)
        head = "celery cannot reach the broker: "
        if match:
            raise Unreachable(head + _cut(match.group("reason"), head))
        # celery itself failed (no app, a bad option): not about the fleet
        head = "celery failed: "
        raise CheckError(head + _cut(last, head))


def _cut(text, head, width=120):
    """``text`` cut so that "NAME STATE - " + head + text fits ``width``:
    the reason is what matters, so longer than the usual 80."""
    limit = max(width - 26 - len(head), 30)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_json(text):
    try:
        data, _ = json.JSONDecoder().raw_decode(text)
    except ValueError as exc:
        raise CheckError("stdin is not valid JSON: %s" % exc)
    if not isinstance(data, dict):
        raise CheckError("stdin JSON is not an object of node replies")
    replies = []
    for name, answer in data.items():
        if not isinstance(name, str) or not name.strip():
            raise CheckError("stdin JSON has an invalid node name %r" % (name,))
        if isinstance(answer, dict) and answer.get("ok") == "pong":
            replies.append(Reply(name))
        elif isinstance(answer, dict) and "error" in answer:
            replies.append(Reply(name, ok=False, status="error: %s" % _excerpt(str(answer["error"]))))
        else:
            raise CheckError("stdin JSON reply of %s is not a ping reply: %s"
                             % (name, _excerpt(json.dumps(answer))))
    return replies


def _excerpt(text, limit=40):
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


# --------------------------------------------------------- broker sources

PIDBOX_EXCHANGE = "celery.pidbox"
REPLY_EXCHANGE = "reply.celery.pidbox"
EVENT_EXCHANGE = "celeryev"


class Broker:
    """A kombu connection bounded by the network timeout, whose failures
    become :class:`Unreachable` naming the redacted URL."""

    def __init__(self, url, transport_options, timeout):
        from kombu import Connection

        from celery_checks.broker import transport_of

        self.url = url
        self.shown = redact_url(url)
        self.kind = transport_of(url)
        from celery_checks.broker import bounded_timeouts

        options = bounded_timeouts(transport_options, timeout, self.kind)
        options.setdefault("max_retries", 0)
        if self.kind == "redis":
            from celery_checks.broker import kombu_redis_compat

            kombu_redis_compat()  # kombu 5.2 + redis-py 4.3 (Debian 12)
        self.connection = Connection(
            url, connect_timeout=timeout, transport_options=options,
            heartbeat=0,
        )
        self.errors = ()

    def __enter__(self):
        conn = self.connection
        self.errors = tuple(conn.connection_errors) + tuple(conn.channel_errors) + (OSError,)
        try:
            # One attempt: connect() would retry after 2 s, past a short -t.
            conn.ensure_connection(max_retries=0, reraise_as_library_errors=False)
            self.channel = conn.channel()
        except self.errors as exc:
            self.fail(exc)
        return self

    def __exit__(self, *exc_info):
        try:
            self.connection.release()
        except nagiosplugin.Timeout:
            raise
        except Exception:  # closing a broken connection: nothing to save
            pass

    def fail(self, exc):
        from celery_checks.broker import describe_amqp_error

        reason = describe_amqp_error(exc) if not isinstance(exc, socket.timeout) else "timed out"
        raise Unreachable("cannot reach broker %s: %s" % (self.shown, reason))

    def drain(self, deadline):
        """Deliver messages to the consumers until ``deadline()``, then
        those already on their way (a short poll until none comes)."""
        for _ in range(10000):
            remaining = deadline() - time.monotonic()
            try:
                self.connection.drain_events(timeout=max(remaining, 0.01))
            except socket.timeout:
                if remaining <= 0.01:
                    return
            except self.errors as exc:
                self.fail(exc)

    def broadcast(self, command, reply_to=None, ticket=None, ttl=1.0):
        """Publish a pidbox broadcast, the message ``celery control`` sends."""
        from kombu import Exchange, Producer

        body = {"method": command, "arguments": {}, "destination": None,
                "pattern": None, "matcher": None}
        if reply_to:
            body.update(ticket=ticket, reply_to={"exchange": REPLY_EXCHANGE, "routing_key": reply_to})
        exchange = Exchange(PIDBOX_EXCHANGE, type="fanout", durable=False,
                            delivery_mode="transient")
        try:
            Producer(self.channel).publish(
                body, exchange=exchange, declare=[exchange], serializer="json",
                headers={"clock": 0, "expires": time.time() + ttl}, retry=False,
            )
        except self.errors as exc:
            self.fail(exc)

    def private_queue(self, name, exchange, routing_key):
        """A queue only we consume: gone when we stop (auto-delete, and on
        RabbitMQ exclusive with x-expires as a second net). On Redis no
        expiry: kombu would then track the binding in a shared key."""
        from kombu import Queue

        amqp = self.kind == "amqp"
        return Queue(
            name, exchange=exchange, routing_key=routing_key, durable=False,
            auto_delete=True, exclusive=amqp, expires=30 if amqp else None,
            message_ttl=30 if amqp else None,
        )

    def declare(self, queue):
        try:
            queue(self.channel).declare()
        except self.errors as exc:
            self.fail(exc)

    def poll(self, queue, deadline):
        """Yield messages from ``queue`` until the deadline.

        Polled with basic_get rather than consumed: kombu's Redis consumer
        keeps a 1 s BRPOP in flight that closing has to wait for, which
        would cost every run a second.
        """
        bound = queue(self.channel)
        pause = 0.001
        while True:
            # Read before looking at the clock: a message already delivered
            # is never left unread because the deadline passed meanwhile.
            try:
                message = bound.get(no_ack=True, accept=["json"])
            except self.errors as exc:
                self.fail(exc)
            if message is not None:
                pause = 0.001
                yield message
                continue
            remaining = deadline() - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.02)

    def delete(self, queue):
        try:
            queue(self.channel).delete()
        except nagiosplugin.Timeout:
            raise
        except Exception:  # already auto-deleted, or the broker went away
            pass


def ping_nodes(args, inventory):
    """Replies to one broadcast ping; ends early once the inventory is complete."""
    from celery_checks.broker import transport_of

    replies = {}
    oid, ticket = uuid.uuid4().hex, uuid.uuid4().hex
    # On Redis, redis-py alone: kombu would add half again to the start-up
    # that dominates a run (see RedisPing). AMQP goes through kombu.
    session = RedisPing if transport_of(args.broker_url) == "redis" else KombuPing
    with session(args, oid) as pinger:
        sent = time.monotonic()
        pinger.broadcast(ticket)  # the workers drop it after --reply-timeout
        # The reply timeout counts from the broadcast, not from the start:
        # on a busy host connecting and declaring the reply queue took most
        # of it, and replies that came in time were ignored ("3 of 3
        # expected workers missing" while they had answered). LATE more
        # for a reply sent just before the broadcast expired; and replies()
        # takes every reply already delivered before it stops.
        deadline = [min(sent + args.reply_timeout + LATE, budget_end(args))]
        for body, headers in pinger.replies(lambda: deadline[0]):
            if headers.get("ticket") != ticket or not isinstance(body, dict):
                continue  # a reply to someone else's ping
            for name, answer in body.items():
                ok = isinstance(answer, dict) and answer.get("ok") == "pong"
                status = "OK" if ok else "replied %s" % _excerpt(json.dumps(answer, default=str))
                replies[name] = Reply(name, ok=ok, status=status, rtt=time.monotonic() - sent)
            if inventory and inventory.complete(n for n, r in replies.items() if r.ok):
                now = time.monotonic()
                deadline[0] = min(deadline[0], now + grace(now - sent))
    return list(replies.values())


class KombuPing:
    """The ping's reply queue and broadcast through kombu (AMQP)."""

    def __init__(self, args, oid):
        from kombu import Exchange

        self.args, self.oid = args, oid
        self.broker = Broker(args.broker_url, args.transport_options,
                             io_timeout(args, args.reply_timeout))
        reply_exchange = Exchange(REPLY_EXCHANGE, type="direct", durable=False,
                                  delivery_mode="transient")
        self.queue = self.broker.private_queue("%s.%s" % (oid, REPLY_EXCHANGE), reply_exchange, oid)

    def __enter__(self):
        self.broker.__enter__()
        try:
            self.broker.declare(self.queue)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info):
        try:
            self.broker.delete(self.queue)
        finally:
            self.broker.__exit__(*exc_info)

    def broadcast(self, ticket):
        self.broker.broadcast("ping", reply_to=self.oid, ticket=ticket, ttl=self.args.reply_timeout)

    def replies(self, deadline):
        for message in self.broker.poll(self.queue, deadline):
            yield decoded(message), message.headers or {}


class RedisPing:
    """The same exchange of messages as kombu's Redis transport makes, with
    redis-py only (kombu/transport/redis.py and virtual/base.py):

    - the reply queue is a list; a worker finds it through the binding set
      ``_kombu.binding.reply.celery.pidbox`` (member ``oid<sep><sep>queue``),
      mirrored in ``_kombu.binding_permanent.…`` as kombu >= 5.6 does so its
      binding sweep keeps the table while we wait;
    - the broadcast is a PUBLISH on ``/{db}.celery.pidbox`` (fanout_prefix),
      a JSON envelope whose body is base64 JSON;
    - ``global_keyprefix`` and ``sep`` transport options are honoured.
    Both set members and the list are removed on the way out.
    """

    def __init__(self, args, oid):
        from celery_checks.broker import redis_client

        self.args, self.oid = args, oid
        options = args.transport_options
        self.prefix = str(options.get("global_keyprefix") or "")
        sep = str(options.get("sep", "\x06\x16"))
        self.queue = self.prefix + "%s.%s" % (oid, REPLY_EXCHANGE)
        self.member = sep.join([oid, "", "%s.%s" % (oid, REPLY_EXCHANGE)])
        self.tables = [self.prefix + "_kombu.binding." + REPLY_EXCHANGE,
                       self.prefix + "_kombu.binding_permanent." + REPLY_EXCHANGE]
        steps = options.get("priority_steps") or [0, 3, 6, 9]
        self.lists = [self.queue] + ["%s%s%s" % (self.queue, sep, step) for step in steps if step]
        self.client = redis_client(args.broker_url, options, io_timeout(args, args.reply_timeout))
        fanout = options.get("fanout_prefix", True)
        self.fanout = fanout if isinstance(fanout, str) else ("/{db}." if fanout else "")
        self.bound = False

    def __enter__(self):
        from celery_checks.broker import redis_errors

        with redis_errors(self.args.broker_url):
            db = self.client.connection_pool.connection_kwargs.get("db", 0)
            self.topic = self.prefix + self.fanout.format(db=db) + PIDBOX_EXCHANGE
            # One MULTI: kombu's binding sweep (a Lua script a worker runs)
            # deletes the binding table unless the permanent set has a
            # member; between two separate SADDs it could delete the table
            # with our member in it, and every reply would be dropped.
            pipe = self.client.pipeline(transaction=True)
            for table in reversed(self.tables):  # the permanent set first
                pipe.sadd(table, self.member)
            self.bound = True
            pipe.execute()
        return self

    def __exit__(self, *exc_info):
        from celery_checks.broker import redis_errors

        try:
            if self.bound:
                with redis_errors(self.args.broker_url):
                    pipe = self.client.pipeline(transaction=False)
                    for table in self.tables:
                        pipe.srem(table, self.member)
                    pipe.delete(*self.lists)
                    pipe.execute()
        except Unreachable:
            if exc_info[0] is None:
                raise
        finally:
            self.client.close()

    def broadcast(self, ticket):
        from celery_checks.broker import redis_errors

        import base64

        body = json.dumps({
            "method": "ping", "arguments": {}, "destination": None, "pattern": None,
            "matcher": None, "ticket": ticket,
            "reply_to": {"exchange": REPLY_EXCHANGE, "routing_key": self.oid},
        })
        envelope = {
            "body": base64.b64encode(body.encode("utf-8")).decode("ascii"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"clock": 0, "expires": time.time() + self.args.reply_timeout},
            "properties": {
                "delivery_mode": 1, "priority": 0, "body_encoding": "base64",
                "delivery_tag": uuid.uuid4().hex,
                "delivery_info": {"exchange": PIDBOX_EXCHANGE, "routing_key": ""},
            },
        }
        with redis_errors(self.args.broker_url):
            self.client.publish(self.topic, json.dumps(envelope))

    def replies(self, deadline):
        from celery_checks.broker import redis_errors

        pause = 0.001
        while True:
            # Read before looking at the clock: a reply already delivered
            # is never left unread because the deadline passed meanwhile.
            with redis_errors(self.args.broker_url):
                raw = self.client.rpop(self.queue)
            remaining = deadline() - time.monotonic()
            if raw is None:
                if remaining <= 0:
                    return
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.02)
                continue
            pause = 0.001
            envelope = _json(raw)
            if isinstance(envelope, dict):
                yield _envelope_body(envelope), envelope.get("headers") or {}


def _json(raw):
    try:
        return json.loads(raw)
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        return None


def _envelope_body(envelope):
    """The JSON body of a kombu Redis message envelope, or None."""
    import base64
    import binascii

    if "json" not in str(envelope.get("content-type") or ""):
        return None
    body = envelope.get("body")
    properties = envelope.get("properties") or {}
    if properties.get("body_encoding") == "base64" and isinstance(body, str):
        try:
            body = base64.b64decode(body)
        except (binascii.Error, ValueError):
            return None
    return _json(body)


def decoded(message):
    """The message body, or None when it is not JSON (not a Celery reply)."""
    from kombu.exceptions import ContentDisallowed, DecodeError

    try:
        return message.payload
    except (ContentDisallowed, DecodeError, ValueError, TypeError):
        return None


def event_nodes(args, inventory):
    """Nodes whose worker-heartbeat we receive within --window."""
    from kombu import Consumer, Exchange

    started = time.monotonic()
    seen = {}  # name -> (received, event)
    offline = {}
    # The window counts from our heartbeat request (set once it is sent),
    # not from the start: connecting on a busy host must not eat it.
    state = {"deadline": float("inf"), "asked": started}

    def on_event(body, message):
        if not isinstance(body, dict) or not isinstance(body.get("hostname"), str):
            return
        kind, name = body.get("type"), body["hostname"]
        now = time.monotonic()
        if kind in ("worker-heartbeat", "worker-online"):
            previous = seen.get(name, (0, {}))[1]
            # The reply to our heartbeat command carries no task counts:
            # keep the ones a regular heartbeat gave.
            merged = dict(previous, **body)
            seen[name] = (now, merged)
            offline.pop(name, None)
        elif kind == "worker-offline":
            offline[name] = now
        if inventory and inventory.complete(alive()):
            state["deadline"] = min(state["deadline"], now + grace(now - state["asked"]))

    def alive():
        now = time.monotonic()
        return [name for name, (received, event) in seen.items()
                if name not in offline and now - received <= _freq(event) * HEARTBEAT_EXPIRE]

    with Broker(args.broker_url, args.transport_options, io_timeout(args, args.window)) as broker:
        # Celery sends events on a topic exchange, a fanout one on Redis.
        kind = "fanout" if broker.kind == "redis" else "topic"
        exchange = Exchange(EVENT_EXCHANGE, type=kind, durable=True, delivery_mode="transient")
        name = "celeryev.celery-checks.%s" % uuid.uuid4().hex
        queue = broker.private_queue(name, exchange, "worker.#")
        try:
            with Consumer(broker.channel, [queue], callbacks=[on_event],
                          accept=["json"], no_ack=True,
                          on_decode_error=lambda message, exc: None):
                if broker.kind == "redis":
                    # kombu subscribes to a Redis fanout lazily, on the first
                    # poll: listen before asking, or the heartbeats the
                    # workers send at once go by unheard and we wait for a
                    # regular one, up to 2 s later (measured by bench/run.py).
                    try:
                        broker.connection.drain_events(timeout=0.02)
                    except socket.timeout:
                        pass
                broker.broadcast("heartbeat", ttl=args.window)
                state["asked"] = time.monotonic()
                state["deadline"] = min(state["deadline"], state["asked"] + args.window,
                                        budget_end(args))
                broker.drain(lambda: state["deadline"])
        except broker.errors as exc:
            broker.fail(exc)
        finally:
            broker.delete(queue)
    now = time.monotonic()
    names = set(alive())
    replies = []
    for name, (received, event) in seen.items():
        facts = {"hb_age": now - received, "freq": _freq(event)}
        for key in ("active", "processed", "pid"):
            if isinstance(event.get(key), int):
                facts[key] = event[key]
        if event.get("sw_ver"):
            facts["sw_ver"] = str(event["sw_ver"])
        status = "OK" if name in names else ("went offline" if name in offline else "heartbeat expired")
        replies.append(Reply(name, ok=name in names, status=status, **facts))
    return replies


def options_used(args):
    """The -O keys this run reads: the Redis ping (redis-py alone) its key
    layout and how to find a sentinel master; kombu (the AMQP ping, the
    events) every key its transport for the URL reads but those of an
    acknowledging consumer; the stdin source none (it talks to no broker)."""
    from celery_checks import broker

    if args.source == "stdin":
        return ()
    target = broker.parse_url(args.broker_url)
    if args.source == "ping" and target.transport == "redis":
        return ("global_keyprefix", "sep", "priority_steps", "fanout_prefix") \
            + broker.sentinel_options_used(args.broker_url)
    if target.transport == "amqp":
        known = broker.AMQP_TRANSPORT_OPTIONS
    elif target.scheme == "sentinel":
        known = broker.SENTINEL_TRANSPORT_OPTIONS
    else:
        known = broker.REDIS_TRANSPORT_OPTIONS
    return tuple(key for key in known if key not in broker.KOMBU_CONSUMER_OPTIONS)


def budget_end(args):
    """When listening must stop so the answer is out before -t fires."""
    return getattr(args, "started", time.monotonic()) + args.timeout - 0.5


def io_timeout(args, wait):
    """Per-call socket timeout: what -t leaves after the wait, so a broker
    that goes silent mid-check is CRITICAL before -t fires."""
    return max(0.2, min(cli.network_timeout(args), (args.timeout - wait) * 0.8))


def grace(slowest):
    """How long to wait for unexpected nodes after the slowest expected one."""
    return min(max(slowest * GRACE_FACTOR, GRACE_MIN), GRACE_MAX)


def _freq(event):
    try:
        value = float(event.get("freq") or 2.0)
    except (TypeError, ValueError):
        value = 2.0
    return max(value, 0.5)


def stdin_nodes():
    import sys

    if sys.stdin is None or sys.stdin.isatty():
        raise CheckError("--source stdin reads a pipe or file, not a terminal: "
                         "feed it the output of `celery status`")
    try:
        text = sys.stdin.read(1 << 20)
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckError("cannot read stdin: %s" % exc)
    return parse_status(text)


# ------------------------------------------------------------------ evaluate

class Workers(nagiosplugin.Resource):
    def __init__(self, args, inventory):
        self.args = args
        self.inventory = inventory
        self.replies = []
        self.verdict = None

    @property
    def source(self):
        return self.args.source

    def probe(self):
        if self.source == "ping":
            self.replies = ping_nodes(self.args, self.inventory)
        elif self.source == "events":
            self.replies = event_nodes(self.args, self.inventory)
        else:
            self.replies = stdin_nodes()
        self.replies.sort(key=lambda r: r.name)
        online = [r.name for r in self.replies if r.ok]
        self.verdict = self.inventory.judge(online)
        yield nagiosplugin.Metric("online", len(online), min=0, context="online")
        yield nagiosplugin.Metric("expected", self.verdict.expected, min=0, context="count")
        yield nagiosplugin.Metric("missing", self.verdict.missing, min=0, context="missing")
        # Without an inventory nothing is unexpected: every node is just online.
        unexpected = self.verdict.unexpected if self.inventory else 0
        yield nagiosplugin.Metric("unexpected", unexpected, min=0, context="unexpected")
        versions = sorted({r.facts["sw_ver"] for r in self.replies if r.ok and r.facts.get("sw_ver")})
        if self.source == "events":
            yield nagiosplugin.Metric("versions", versions, context="versions")
        used = {"online", "expected", "missing", "unexpected", "versions"}
        # Only facts every answering node gives on every run: a heartbeat
        # sent in answer to our `heartbeat` broadcast carries no task
        # counters, so active/processed (known only for some nodes on some
        # runs) stay in the -v output, never in perfdata.
        for reply in self.replies:
            facts = reply.facts
            for key, uom in (("rtt", "s"), ("hb_age", "s")):
                if key in facts:
                    name = unique_label("%s_%s" % (key, reply.name), used)
                    yield nagiosplugin.Metric(name, facts[key], uom, min=0, context="fact")

    def online_names(self):
        return [r.name for r in self.replies if r.ok]


class OnlineContext(ThresholdContext):
    """-w/-c on the number online; without inventory nor thresholds, zero
    online is the outage this check exists for."""

    def __init__(self, warning, critical, bare):
        super().__init__("online", warning, critical)
        self.bare = bare

    def evaluate(self, metric, resource):
        count = metric.value
        for state, limit in ((nagiosplugin.Critical, self.critical), (nagiosplugin.Warn, self.warning)):
            if not limit.match(count):
                return self.result_cls(state, "%d online (%s)" % (count, violation(limit)), metric)
        if self.bare and count == 0:
            return self.result_cls(nagiosplugin.Critical, NO_ANSWER, metric)
        return self.result_cls(nagiosplugin.Ok, None, metric)


class CountContext(ThresholdContext):
    """missing / unexpected: any is a problem of the configured state."""

    def __init__(self, name, state):
        super().__init__(name)
        self.state = state

    def evaluate(self, metric, resource):
        if metric.value == 0 or self.state == nagiosplugin.Ok:
            return self.result_cls(nagiosplugin.Ok, None, metric)
        verdict = resource.verdict
        if self.name == "missing":
            names = [s.missing_text() for s in verdict.missing_patterns]
            head = "%d of %s missing: " % (metric.value, plural(verdict.expected, "expected worker"))
        else:
            names = verdict.unmatched + ["%s" % s.surplus_text() for s in verdict.surplus]
            head = "%d unexpected: " % metric.value
        return self.result_cls(self.state, (head, names), metric)


class VersionsContext(nagiosplugin.Context):
    def __init__(self, state):
        super().__init__("versions")
        self.state = state

    def evaluate(self, metric, resource):
        if len(metric.value) > 1 and self.state != nagiosplugin.Ok:
            hint = ("workers run celery " + ", ".join(metric.value), [])
            return self.result_cls(self.state, hint, metric)
        return self.result_cls(nagiosplugin.Ok, None, metric)

    def performance(self, metric, resource):
        return None


# ------------------------------------------------------------------- present

def _hint_text(hint, room):
    if isinstance(hint, tuple):
        head, names = hint
        return head + shorten(names, max(room - len(head), 10)) if names else head.rstrip(": ")
    return str(hint)


class WorkersSummary(nagiosplugin.Summary):
    def ok(self, results):
        resource = results["online"].resource
        online = len(resource.online_names())
        text = plural(online, "worker") + " online"
        if resource.inventory:
            text += ", all %d expected present" % resource.verdict.expected
        rtts = [r.facts["rtt"] for r in resource.replies if "rtt" in r.facts]
        if rtts:
            text += " (max rtt %ss)" % number(max(rtts))
        return text

    def problem(self, results):
        problems = sorted((r for r in results if r.state != nagiosplugin.Ok),
                          key=lambda r: r.state, reverse=True)
        # "CELERY_WORKERS CRITICAL - " takes 26 characters of the line.
        room = STATUS_WIDTH - 26
        note = getattr(results["online"].resource.replies, "note", None)
        parts = [note] if note else []
        for result in problems:
            if note and result.hint == NO_ANSWER:
                continue  # Celery said it in its own words
            used = len("; ".join(parts)) + (2 if parts else 0)
            parts.append(_hint_text(result.hint, max(room - used, 20)))
        return "; ".join(parts)

    def verbose(self, results):
        resource = results["online"].resource
        if resource.verdict is None:
            return []
        lines = []
        verdict = resource.verdict
        for shortfall in verdict.missing_patterns:
            lines.append("MISSING %s: %d of %d online" % (shortfall.pattern, shortfall.found, shortfall.count))
        for shortfall in verdict.surplus:
            lines.append("UNEXPECTED %s: %d online, %d expected"
                         % (shortfall.pattern, shortfall.found, shortfall.count))
        for reply in resource.replies:
            pattern = verdict.pattern_of(reply.name)
            where = " [%s]" % pattern if pattern else (" [unexpected]" if resource.inventory and reply.ok else "")
            lines.append("%s: %s%s" % (reply.name, reply.describe(), where))
        if resource.args.verbose >= 2 and resource.source != "stdin":
            lines.append("source %s on broker %s" % (resource.source, redact_url(resource.args.broker_url)))
        if resource.args.verbose >= 2:
            unused = unused_options_line(resource.args.transport_options, options_used(resource.args))
            if unused:
                lines.append(unused)
        return lines


@cli.guarded("CELERY_WORKERS")
def main(argv=None):
    args = parse_args(argv)
    inventory = Inventory(args.expect)
    bare = not inventory and not args.warning and not args.critical
    check = nagiosplugin.Check(
        Workers(args, inventory),
        OnlineContext(args.warning, args.critical, bare),
        ThresholdContext("count"),
        CountContext("missing", _state(args.missing_state)),
        CountContext("unexpected", _state(args.unexpected_state)),
        VersionsContext(_state(args.versions_differ_state)),
        ThresholdContext("fact"),
        WorkersSummary(),
    )
    check.name = "celery_workers"
    cli.run(check, args)


def _state(code):
    return {0: nagiosplugin.Ok, 1: nagiosplugin.Warn, 2: nagiosplugin.Critical,
            3: nagiosplugin.Unknown}[code]


if __name__ == "__main__":
    main()
