"""The command line every check shares: options, usage errors, the runner.

A check module builds its parser with :func:`make_parser`, builds a
``nagiosplugin.Check`` from the parsed arguments and hands both to
:func:`run`. Everything that makes the suite behave the same from one check
to the next lives here, once:

- usage errors, ``-h`` and ``-V`` exit 3 (UNKNOWN) like the Monitoring
  Plugins do, never argparse's 2 (which a monitoring core reads as CRITICAL);
- threshold ranges are validated while parsing;
- :class:`~celery_checks.policy.Unreachable` becomes CRITICAL, our own
  timeout and internal errors become UNKNOWN, tracebacks only at ``-vvv``;
- every line printed passes through the secret redaction.

Nothing here imports celery, redis or pika.
"""

import argparse
import functools
import json
import os
import sys
import textwrap
import time
import traceback

from celery_checks import __version__
from celery_checks import secrets
from celery_checks.policy import (
    CRITICAL,
    STATE_NAMES,
    UNKNOWN,
    CheckError,
    Unreachable,
)

HELP_WIDTH = 79
DEFAULT_TIMEOUT = 10

COMMON_UNKNOWN = "bad arguments, -t expired before an answer, internal error"


class CheckArgumentParser(argparse.ArgumentParser):
    """argparse, but speaking the plugin protocol on every way out."""

    def __init__(self, *args, status_name, **kwargs):
        self.status_name = status_name
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

    def print_help(self, file=None):
        super().print_help(file or sys.stdout)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if hasattr(parsed, "broker"):
            from celery_checks.broker import broker_settings

            try:
                parsed.broker_url, parsed.transport_options = broker_settings(parsed, os.environ)
            except CheckError as exc:
                self.error(str(exc))
        _threshold_defaults(self, parsed)
        return parsed


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(0, "%s (celery-checks) %s\n" % (parser.prog, __version__))


def threshold_range(spec):
    """argparse type: a Monitoring-Plugins range (``10``, ``10:``, ``~:10``,
    ``10:20``, ``@10:20``), validated now rather than at evaluation time."""
    import nagiosplugin

    text = spec.strip()
    try:
        if not any(char.isdigit() for char in text):
            raise ValueError("a range needs a number")
        # ".1e30" or a 24-digit decimal parse as floats that print as 1e+29:
        # perfdata must not carry an exponent (nor should the threshold).
        if "e" in text.lower() or "e" in str(nagiosplugin.Range(text)).lower():
            raise ValueError("a range takes plain numbers")
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            "invalid range %r (expected e.g. 10, 10:, ~:10, 10:20, @10:20)" % spec
        )
    return text


def positive_int(spec):
    try:
        value = int(spec)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % spec)
    if value <= 0:
        raise argparse.ArgumentTypeError("%r must be greater than 0" % spec)
    return value


def non_negative_int(spec):
    try:
        value = int(spec)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % spec)
    if value < 0:
        raise argparse.ArgumentTypeError("%r must not be negative" % spec)
    return value


def positive_float(spec):
    try:
        value = float(spec)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % spec)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("%r must be a number greater than 0" % spec)
    return value


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


def transport_option(spec):
    """argparse type: ``KEY=VALUE`` where VALUE may be JSON (numbers, lists,
    objects, true/false); anything that is not JSON is kept as a string."""
    key, sep, raw = spec.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, got %r" % spec)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


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
    parser.add_argument("-V", "--version", action=_VersionAction, help="show the version and exit 3")
    if thresholds:
        what, warning, critical = thresholds
        # Both default to None so that parse_args knows what was given; the
        # defaults are filled in there (_threshold_defaults).
        parser.threshold_defaults = (warning, critical)
        warning_default = warning or "none"
        if warning and critical:
            warning_default += ", none when -c is lower"
        parser.add_argument(
            "-w", "--warning", metavar="RANGE", type=threshold_range,
            help="warning range on %s (default: %s)" % (what, warning_default),
        )
        parser.add_argument(
            "-c", "--critical", metavar="RANGE", type=threshold_range,
            help="critical range on %s (default: %s)" % (what, critical or "none"),
        )
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


def _threshold_defaults(parser, parsed):
    """Fill in -w/-c defaults. A default -w that the given -c makes
    meaningless is dropped: with -c 60 and the default -w 120 every age
    that would warn is already critical, and perfdata saying warn 120,
    crit 60 would contradict the check. An explicit -w is always kept."""
    warning, critical = getattr(parser, "threshold_defaults", (None, None))
    if not hasattr(parsed, "warning"):
        return
    if parsed.critical is None:
        parsed.critical = critical
    elif parsed.warning is None and warning and _never_reached(warning, parsed.critical):
        warning = None
    if parsed.warning is None:
        parsed.warning = warning


def _never_reached(warning, critical):
    """True when every value outside ``warning`` is outside ``critical`` as
    well (critical's range lies within warning's): the warning can never be
    the state."""
    import nagiosplugin

    warn, crit = nagiosplugin.Range(warning), nagiosplugin.Range(critical)
    if warn.invert or crit.invert:
        return False
    return warn.start <= crit.start and crit.end <= warn.end


def add_broker_options(parser):
    from celery_checks.broker import DEFAULT_BROKER_URL

    group = parser.add_argument_group("broker")
    group.add_argument(
        "-b", "--broker", metavar="URL",
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
        help="kombu broker_transport_options entry, JSON values allowed "
        "(global_keyprefix, sep, priority_steps, master_name, ...); repeatable",
    )
    return group


def network_timeout(args):
    """Per-call socket timeout: below -t, so a silent peer is reported as an
    outage (CRITICAL) by us before the -t alarm (UNKNOWN) has to fire.

    What the run already spent counts, and at least 1 s of -t is kept for
    our own work (client import, TLS set-up, output), which a loaded host
    slows down: with 20% alone, -t 3 still ran into the alarm."""
    budget = args.timeout - (time.monotonic() - getattr(args, "started", time.monotonic()))
    return max(0.2, min(args.timeout * 0.8, budget - 1.0))


class _RedactingStream:
    """The Runtime prints with print(file=...): scrub secrets on the way."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        return self.stream.write(secrets.redact(text))

    def flush(self):
        self.stream.flush()


def _finish(status_name, code, message, detail=None):
    lines = ["%s %s - %s" % (status_name, STATE_NAMES[code], " ".join(message.split()))]
    if detail:
        lines.append(detail.rstrip("\n"))
    sys.stdout.write(secrets.redact("\n".join(lines).replace("|", "/")) + "\n")
    sys.stdout.flush()
    sys.exit(code)


def run(check, args):
    """Run ``check`` under the suite's status policy; never returns."""
    import nagiosplugin

    status_name = check.name.upper()
    runtime = nagiosplugin.Runtime()
    runtime.stdout = _RedactingStream(sys.stdout)
    args.started = time.monotonic()  # the -t alarm starts now: network_timeout()
    try:
        check.main(verbose=args.verbose, timeout=args.timeout)
    except nagiosplugin.Timeout:
        _finish(status_name, UNKNOWN, "plugin timed out after %ds (-t)" % args.timeout)
    except Unreachable as exc:
        _finish(status_name, CRITICAL, str(exc), _traceback(args))
    except (CheckError, nagiosplugin.CheckError) as exc:
        _finish(status_name, UNKNOWN, str(exc), _traceback(args))
    except Exception as exc:
        _finish(
            status_name, UNKNOWN,
            "internal error: %s: %s" % (type(exc).__name__, exc),
            _traceback(args),
        )
    sys.exit(UNKNOWN)  # check.main() always exits; this is a safety net


def guarded(status_name):
    """Decorate a check's main(): whatever escapes before :func:`run` takes
    over (an import error, a bug while parsing) still ends as one UNKNOWN
    line and exit 3, never a bare traceback and exit 1."""

    def decorate(main):
        @functools.wraps(main)
        def wrapper(argv=None):
            try:
                return main(argv)
            except Exception as exc:
                verbose = "-vvv" in (argv if argv is not None else sys.argv)
                _finish(
                    status_name, UNKNOWN,
                    "internal error: %s: %s" % (type(exc).__name__, exc),
                    traceback.format_exc() if verbose else None,
                )

        return wrapper

    return decorate


def _traceback(args):
    return traceback.format_exc() if args.verbose >= 3 else None
