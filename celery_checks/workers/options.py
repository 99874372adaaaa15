"""check_celery_workers' command line: its options, --help and their checks."""

from celery_checks.plugin import cli
from celery_checks.plugin.policy import CheckError
from celery_checks.workers.inventory import check_expectations, expectation, read_expect_file
from celery_checks.workers.sources import SOURCES

DEFAULT_REPLY_TIMEOUT = 1.0
DEFAULT_WINDOW = 3.0

HELP = dict(
    check="""\
Which Celery workers (nodes) are online, compared with an inventory.
--source ping (default): one broadcast ping, like `celery inspect ping`.
  On Redis it ends as soon as every worker the broadcast reached has
  answered (Redis counts them); else (on RabbitMQ, or while one of them
  is silent) once every expected node answered plus a grace for
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
