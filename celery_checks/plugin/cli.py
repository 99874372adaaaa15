"""The command line every check shares: the parser, its option types, and
the options every check (or every broker check) takes, defined once.

- usage errors, ``-h`` and ``-V`` exit 3 (UNKNOWN) like the Monitoring
  Plugins do, never argparse's 2 (which a monitoring core reads as CRITICAL);
- -w/-c (and any other warning/critical pair) from
  :mod:`celery_checks.plugin.thresholds`;
- the broker and store URLs are resolved once parsing is done
  (celery_checks.connect.targets), into ``args.broker`` / ``args.store``
  :class:`~celery_checks.connect.targets.Target` values.

Nothing here imports celery, redis or pika.
"""

import argparse
import os
import sys
import textwrap

from celery_checks import __version__
from celery_checks.plugin import repeats, secrets
from celery_checks.plugin.policy import STATE_NAMES, UNKNOWN, CheckError
from celery_checks.plugin.thresholds import add_threshold_pair

HELP_WIDTH = 79
DEFAULT_TIMEOUT = 10

COMMON_UNKNOWN = "bad arguments, -t expired before an answer, internal error"


class CheckArgumentParser(argparse.ArgumentParser):
    """argparse, but speaking the plugin protocol on every way out."""

    def __init__(self, *args, status_name, **kwargs):
        self.status_name = status_name
        self.finishers = []  # run on the parsed arguments; CheckError -> usage
        super().__init__(*args, **kwargs)

    def error(self, message):
        # argparse exits 2, which Nagios reads as CRITICAL: a usage error is
        # ours, not the monitored system's, so it is UNKNOWN.
        # The message may quote the user's input: a "|" in it would end the
        # status text and start perfdata for the monitoring core.
        first_line = " ".join(secrets.redact(message).split()).replace("|", "/")
        sys.stdout.write(
            "%s UNKNOWN - %s\n%s" % (self.status_name, first_line, self.format_usage())
        )
        sys.stdout.flush()
        sys.exit(UNKNOWN)

    def exit(self, status=0, message=None):
        # Reached by -h (status 0). The Monitoring Plugins answer --help and
        # --version with UNKNOWN so a service misconfigured to pass them
        # never shows up green.
        if message:
            sys.stdout.write(message)
        sys.stdout.flush()
        sys.exit(UNKNOWN if status in (0, 2) else status)

    def parse_args(self, args=None, namespace=None):
        given = sys.argv[1:] if args is None else list(args)
        parsed = repeats.parse(self, super().parse_args, given, namespace)
        try:
            for finish in self.finishers:
                finish(parsed)
        except CheckError as exc:
            self.error(str(exc))
        return parsed


def _number(kind, minimum, inclusive):
    words = {int: "a whole number", float: "a number"}[kind]
    bound = "%s %s" % ("at least" if inclusive else "greater than", minimum)

    def parse(spec):
        try:
            value = kind(spec)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not %s" % (spec, words))
        if value < minimum or (value == minimum and not inclusive) or value == float("inf"):
            raise argparse.ArgumentTypeError("%r must be %s %s" % (spec, words, bound))
        return value

    return parse


positive_int = _number(int, 0, inclusive=False)
non_negative_int = _number(int, 0, inclusive=True)
positive_float = _number(float, 0, inclusive=False)


def state_name(spec):
    """argparse type for --*-state options: ok, warning, critical, unknown."""
    names = {name.lower(): code for code, name in STATE_NAMES.items()}
    names.update({"warn": 1, "crit": 2})
    try:
        return names[spec.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            "invalid state %r (choose ok, warning, critical, unknown)" % spec
        )


def add_state_option(group, flag, what, default):
    """A ``--*-state`` option: the state of ``what``, ``default`` a state
    code or None (the check decides); the help names the default."""
    shown = STATE_NAMES[default].lower() if default is not None else "ok"
    group.add_argument(flag, metavar="STATE", type=state_name, default=default,
                       help="%s (default: %s)" % (what, shown))


def transport_option(spec):
    """argparse type: ``KEY=VALUE``, the value read as kombu would have it
    (connect.options.option_value: JSON numbers, lists, objects, true/false;
    text for the keys kombu reads as text and for anything not JSON)."""
    from celery_checks.connect.options import option_value

    key, sep, raw = spec.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, got %r" % spec)
    try:
        return key, option_value(key, raw)
    except CheckError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def _with_common_unknown(states):
    """Every check is UNKNOWN for the same shared reasons: say so once, here."""
    if "\nUNKNOWN" in "\n" + states:
        return states.rstrip(",;. ") + ";\n          " + COMMON_UNKNOWN
    return states + "\nUNKNOWN   " + COMMON_UNKNOWN


def _help_sections(check, perfdata, states, examples):
    sections = [
        ("Check:", check),
        ("Perfdata:", perfdata),
        ("States:", _with_common_unknown(textwrap.dedent(states).strip("\n"))),
    ]
    if examples:
        sections.append(("Examples:", examples))
    parts = []
    for title, body in sections:
        parts.append(title + "\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "  "))
    return "\n\n".join(parts)


def make_parser(
    prog,
    summary,
    *,
    check,
    perfdata,
    states,
    examples=None,
    thresholds=None,
    broker=False,
):
    """Build the parser for one executable.

    ``check``, ``perfdata``, ``states`` and ``examples`` are the text of the
    help sections (the README reference is generated from them).
    ``thresholds`` is ``(what, warning_default, critical_default)`` when the
    check takes ``-w``/``-c``; ``broker`` adds the broker options.
    """
    status_name = prog.upper().replace("CHECK_", "", 1)
    parser = CheckArgumentParser(
        prog=prog,
        description=summary,
        epilog=_help_sections(check, perfdata, states, examples),
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(
            prog, width=HELP_WIDTH, max_help_position=30
        ),
        add_help=False,
        status_name=status_name,
    )
    parser._optionals.title = "options"  # Python < 3.10 says "optional arguments"
    parser.add_argument("-h", "--help", action="help", help="show this help and exit 3")
    parser.add_argument("-V", "--version", action="version", help="show the version and exit 3",
                        version="%s (celery-checks) %s" % (prog, __version__))
    if thresholds:
        add_threshold_pair(parser, *thresholds)
    parser.add_argument(
        "-t", "--timeout", metavar="SECONDS", type=positive_int, default=DEFAULT_TIMEOUT,
        help="give up after this many seconds, as UNKNOWN (default: %d)" % DEFAULT_TIMEOUT,
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="repeat for more: -v problems, -vv all items and settings, -vvv debug",
    )
    if broker:
        add_broker_options(parser)
    return parser


def add_queue_option(parser, help, default="celery"):
    """-q/--queue, repeatable; after parsing ``args.queues`` in the order
    given, stripped, without repeats (a repeated label breaks perfdata)."""
    parser.add_argument("-q", "--queue", metavar="QUEUE", action="append", dest="queues",
                        help=help)

    def finish(parsed):
        parsed.queues = list(dict.fromkeys(q.strip() for q in parsed.queues or [default]))
        if not all(parsed.queues):
            raise CheckError("a queue name cannot be empty")

    parser.finishers.append(finish)


def add_broker_options(parser):
    """-b/--broker-file and -O; after parsing, ``args.broker`` is the
    :class:`~celery_checks.connect.targets.Target` they name."""
    from celery_checks.connect.targets import DEFAULT_BROKER_URL

    group = parser.add_argument_group("broker")
    group.add_argument(
        "-b", "--broker", metavar="URL", dest="broker_given",
        help="broker URL; prefer --broker-file or $CELERY_BROKER_URL, which keep "
        "the password out of the process list (default: %s)" % DEFAULT_BROKER_URL,
    )
    group.add_argument(
        "--broker-file", metavar="PATH",
        help="read the broker URL from the first line of this file",
    )
    group.add_argument(
        "-O", "--transport-option", metavar="KEY=VALUE", action="append",
        type=transport_option,
        help="kombu broker_transport_options entry (global_keyprefix, sep, "
        "priority_steps, master_name, ...); JSON values for numbers, lists and "
        "objects, text as given; repeatable",
    )
    parser.finishers.append(_broker_target)
    return group


def _broker_target(parsed):
    from celery_checks.connect.targets import broker_target

    parsed.broker = broker_target(parsed.broker_given, parsed.broker_file,
                                  dict(parsed.transport_option or ()), os.environ)


def add_store_options(parser, what="heartbeat store"):
    """--store/--store-file (after the broker options); after parsing,
    ``args.store`` is the store's Target (``what`` names it in the help)."""
    from celery_checks.connect.targets import STORE_ENV

    group = parser.add_argument_group(what)
    group.add_argument(
        "--store", metavar="URL", dest="store_given",
        help="Redis URL of the %s; else --store-file, else $%s, "
        "else the broker URL when the broker is Redis" % (what, STORE_ENV),
    )
    group.add_argument(
        "--store-file", metavar="PATH",
        help="read the store URL from the first line of this file",
    )
    parser.finishers.append(_store_target)
    return group


def _store_target(parsed):
    from celery_checks.connect.targets import store_target

    parsed.store = store_target(parsed.store_given, parsed.store_file, parsed.broker, os.environ)
