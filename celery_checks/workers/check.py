"""check_celery_workers: are the expected workers there, and only those?

acquire:  the source (workers/sources.py: ping, events, stdin) gives the
          nodes it heard of; the inventory (workers/inventory.py, --expect)
          judges which are missing and which unexpected
evaluate: -w/-c judge the number online (a Threshold); missing and
          unexpected nodes are problems of their --*-state; so are
          differing Celery versions (events)
present:  WorkersSummary names what is wrong in ~80 characters; -v lists
          every node

Never imports celery nor the user's app.
"""

import nagiosplugin

from celery_checks.connect.options import unused_options_line
from celery_checks.plugin import cli, runner
from celery_checks.plugin.contexts import Threshold
from celery_checks.plugin.perfdata import number, plural, violation
from celery_checks.plugin.policy import CheckError, nagios_state
from celery_checks.plugin.resource import Resource
from celery_checks.workers import sources
from celery_checks.workers.inventory import (
    Inventory, check_expectations, expectation, read_expect_file, shorten)
from celery_checks.workers.replies import Observed
from celery_checks.workers.sources import SOURCES

DEFAULT_REPLY_TIMEOUT = 1.0
DEFAULT_WINDOW = 3.0
STATUS_WIDTH = 80
NO_ANSWER = "no worker answered"

HELP = dict(
    check="""\
Which Celery workers (nodes) are online, compared with an inventory.
--source ping (default): one broadcast ping, like `celery inspect ping`,
  ended as soon as every expected node answered plus a grace for
  unexpected ones (3 x the mean time between replies, 0.03 to 0.2 s);
  else it waits --reply-timeout from the broadcast (workers drop the
  ping after it) and 0.2 s more for replies on their way. A solo
  worker answers between tasks only: give tasks longer than that a
  prefork or threads pool.
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
          no inventory nor -w/-c and no node answered (on Redis, named:
          workers bound under another global_keyprefix or in another DB);
          the broker cannot be reached; on stdin, celery says it could not
          reach the broker or "No nodes replied" (quoted)
UNKNOWN   stdin is empty, celery itself failed (no app, bad option), or
          it is not celery status/inspect ping output""",
    examples="""\
check_celery_workers --expect 'celery@web*=4' --expect celery@beat1
check_celery_workers --expect-file /etc/celery/workers.txt -b amqp://...
check_celery_workers --source events -c 2: --versions-differ-state warn
celery -A proj status --json >status.json 2>&1
check_celery_workers --source stdin --expect 'w-[0-9]*@serverA=4' <status.json""",
    prog="check_celery_workers", broker=True,
    summary="Alert when expected Celery workers are missing or unknown ones appear.",
    thresholds=("the number of online nodes", None, None),
)


def parse_args(argv=None):
    parser = cli.make_parser(**HELP)
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
    cli.add_state_option(group, "--missing-state", "state when an expected node is missing", 2)
    cli.add_state_option(group, "--unexpected-state",
                         "state when a node is not in the inventory", 1)
    source = parser.add_argument_group("source")
    source.add_argument(
        "--source", choices=sorted(SOURCES), default="ping",
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
    cli.add_state_option(source, "--versions-differ-state",
                         "events: state when nodes run different Celery versions", None)
    args = parser.parse_args(argv)
    # An option another source reads would be ignored: say so rather than
    # let the user believe it took effect (these default to None for that).
    for option, source in (("reply_timeout", "ping"), ("window", "events"),
                           ("versions_differ_state", "events")):
        if getattr(args, option) is not None and args.source != source:
            parser.error("--%s applies to --source %s only, not --source %s"
                         % (option.replace("_", "-"), source, args.source))
    # stdin talks to no broker: a broker named on the command line would be
    # ignored (the environment's $CELERY_BROKER_URL is not a choice made here)
    given = [flag for flag, value in (("-b", args.broker_given), ("--broker-file", args.broker_file))
             if value is not None]
    if args.source == "stdin" and given:
        parser.error("%s applies to --source ping or events, not --source stdin "
                     "(celery status names its own broker)" % given[0])
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


# ------------------------------------------------------------------- acquire

class Seen:
    """What a run learnt: the replies, the names online, the verdict."""

    def __init__(self, replies, inventory):
        replies.sort(key=lambda r: r.name)
        self.replies = replies  # an Observed list: may carry Celery's own note
        self.online = [r.name for r in replies if r.ok]
        self.verdict = inventory.judge(self.online)


class Workers(Resource):
    def __init__(self, source, broker, deadline, wait, inventory, facts=None):
        super().__init__(facts)
        self.source, self.broker, self.inventory = source, broker, inventory
        self.asking = sources.Asking(broker, deadline, wait, inventory)

    def acquire(self):
        replies = sources.nodes(self.source, self.asking)
        replies = replies if isinstance(replies, Observed) else Observed(replies)
        if not replies and self.source != "stdin" and self.broker.transport == "redis":
            replies.note = sources.misplaced(self.asking)
        return Seen(replies, self.inventory)

    def metrics(self, seen):
        verdict = seen.verdict
        self._labels.update({"online", "expected", "missing", "unexpected", "versions"})
        yield nagiosplugin.Metric("online", len(seen.online), min=0, context="online")
        yield nagiosplugin.Metric("expected", verdict.expected, min=0, context="count")
        yield nagiosplugin.Metric("missing", verdict.missing, min=0, context="missing")
        # Without an inventory nothing is unexpected: every node is just online.
        unexpected = verdict.unexpected if self.inventory else 0
        yield nagiosplugin.Metric("unexpected", unexpected, min=0, context="unexpected")
        if self.source == "events":
            versions = sorted({r.facts["sw_ver"] for r in seen.replies
                               if r.ok and r.facts.get("sw_ver")})
            yield nagiosplugin.Metric("versions", versions, context="versions")
        # Only facts every answering node gives on every run: a heartbeat
        # sent in answer to our `heartbeat` broadcast carries no task
        # counters, so active/processed (known only for some nodes on some
        # runs) stay in the -v output, never in perfdata.
        for reply in seen.replies:
            for key, uom in (("rtt", "s"), ("hb_age", "s")):
                if key in reply.facts:
                    yield self.metric("%s_%s" % (key, reply.name), reply.facts[key], "fact",
                                      reply, uom=uom, min=0)


# ------------------------------------------------------------------ evaluate

class Online(Threshold):
    """-w/-c on the number online; without inventory nor thresholds, zero
    online is the outage this check exists for."""

    def __init__(self, warning, critical, bare):
        super().__init__("online", warning, critical)
        self.bare = bare

    def evaluate(self, metric, resource):
        if self.bare and metric.value == 0:
            return self.result_cls(nagiosplugin.Critical, NO_ANSWER, metric)
        return super().evaluate(metric, resource)

    def words(self, item, count, broken):
        return None if broken is None else "%d online (%s)" % (count, violation(broken))


class Surprise(Threshold):
    """missing / unexpected: any is a problem of the configured state. The
    words are (head, names): the summary shortens the names to the line."""

    def __init__(self, name, state):
        super().__init__(name)
        self.state = state

    def evaluate(self, metric, resource):
        if metric.value == 0 or self.state == nagiosplugin.Ok:
            return self.result_cls(nagiosplugin.Ok, None, metric)
        verdict = resource.facts.verdict
        if self.name == "missing":
            names = [s.missing_text() for s in verdict.missing_patterns]
            head = "%d of %s missing: " % (metric.value, plural(verdict.expected, "expected worker"))
        else:
            names = verdict.unmatched + ["%s" % s.surplus_text() for s in verdict.surplus]
            head = "%d unexpected: " % metric.value
        return self.result_cls(self.state, (head, names), metric)


class Versions(nagiosplugin.Context):
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
    def __init__(self, verbose=0):
        self.verbosity = verbose

    def ok(self, results):
        resource = results["online"].resource
        seen = resource.facts
        text = plural(len(seen.online), "worker") + " online"
        if resource.inventory:
            text += ", all %d expected present" % seen.verdict.expected
        rtts = [r.facts["rtt"] for r in seen.replies if "rtt" in r.facts]
        if rtts:
            text += " (max rtt %ss)" % number(max(rtts))
        return text

    def problem(self, results):
        problems = sorted((r for r in results if r.state != nagiosplugin.Ok),
                          key=lambda r: r.state, reverse=True)
        # "CELERY_WORKERS CRITICAL - " takes 26 characters of the line.
        room = STATUS_WIDTH - 26
        note = getattr(results["online"].resource.facts.replies, "note", None)
        parts = [note] if note else []
        for result in problems:
            if note and result.hint == NO_ANSWER:
                continue  # Celery said it in its own words
            used = len("; ".join(parts)) + (2 if parts else 0)
            parts.append(_hint_text(result.hint, max(room - used, 20)))
        return "; ".join(parts)

    def verbose(self, results):
        resource = results["online"].resource
        lines = []
        verdict = resource.facts.verdict
        for shortfall in verdict.missing_patterns:
            lines.append("MISSING %s: %d of %d online" % (shortfall.pattern, shortfall.found, shortfall.count))
        for shortfall in verdict.surplus:
            lines.append("UNEXPECTED %s: %d online, %d expected"
                         % (shortfall.pattern, shortfall.found, shortfall.count))
        for reply in resource.facts.replies:
            pattern = verdict.pattern_of(reply.name)
            where = " [%s]" % pattern if pattern else (" [unexpected]" if resource.inventory and reply.ok else "")
            lines.append("%s: %s%s" % (reply.name, reply.describe(), where))
        if self.verbosity >= 2 and resource.source != "stdin":
            lines.append("source %s on broker %s" % (resource.source, resource.broker.shown))
        if self.verbosity >= 2:
            unused = unused_options_line(resource.broker.options,
                                         sources.options_used(resource.source, resource.broker))
            if unused:
                lines.append(unused)
        return lines


def make_check(args, deadline, facts=None):
    """The check for parsed ``args``; ``facts`` (a Seen) instead of asking
    the source, for tests."""
    inventory = Inventory(args.expect)
    bare = not inventory and not args.warning and not args.critical
    wait = args.reply_timeout if args.source == "ping" else args.window
    return runner.check_of(
        "celery_workers",
        Workers(args.source, args.broker, deadline, wait, inventory, facts),
        Online(args.warning, args.critical, bare),
        Threshold("count"),
        Surprise("missing", nagios_state(args.missing_state)),
        Surprise("unexpected", nagios_state(args.unexpected_state)),
        Versions(nagios_state(args.versions_differ_state)),
        Threshold("fact"),
        WorkersSummary(args.verbose),
    )


main = runner.entry_point("CELERY_WORKERS", parse_args, make_check)


if __name__ == "__main__":
    main()
