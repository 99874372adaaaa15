"""check_celery_pulsefile's command line: its options and --help."""

import argparse
import os

from celery_checks.plugin import cli

WARNING_AGE = "120"
CRITICAL_AGE = "300"

HELP = dict(
    check="""\
Age of each pulse file = now - its modification time, in seconds. A pulse
file is kept fresh by celery_checks' pulse emitter inside a worker or beat
process (or anything else that touches it) while its loop is alive.
-f accepts shell globs and ~; each pattern must match at least --min-files
files. A file named by several patterns, spellings or links counts once.
If the file holds the emitter's JSON, node, pid and state are shown with -v.
Reads only the file system: usable as Docker HEALTHCHECK or Kubernetes
exec probe (the exit code is what they read).""",
    perfdata="""\
age       with a single -f PATH (no glob): the file's age in s
NAME      otherwise one per file, labelled with the file's name (its full
          path where two names repeat, _2, _3... where labels would still
          clash, as a'b and a=b do): age in s
All with warn/crit from -w/-c and min 0. Ages are never negative.""",
    states="""\
OK        every file is younger than the warning range allows
WARNING   a file's age is outside -w; a file's mtime is in the future
          beyond --clock-tolerance (clock skew)
CRITICAL  a file's age is outside -c; a file is missing; a pattern matched
          fewer than --min-files files; the emitter marked a file stopped
UNKNOWN   permission denied on a file or directory; -f is a directory""",
    examples="""\
check_celery_pulsefile -f /run/celery/worker.pulse
check_celery_pulsefile -f '/run/celery/*.pulse' --min-files 4 -w 60 -c 180
HEALTHCHECK CMD check_celery_pulsefile -f /tmp/celery.pulse -c 60""",
    prog="check_celery_pulsefile",
    summary="Alert when a Celery pulse file goes stale.",
    thresholds=("the age in seconds", WARNING_AGE, CRITICAL_AGE),
)


def parse_args(argv=None):
    parser = cli.make_parser(**HELP)
    parser.add_argument(
        "-f", "--file", metavar="PATH", action="append", required=True, dest="patterns",
        type=pulse_pattern, help="pulse file or shell glob (~ is expanded); repeatable",
    )
    parser.add_argument(
        "--min-files", metavar="N", type=cli.non_negative_int, default=1,
        help="each pattern must match at least N files (default: 1)",
    )
    parser.add_argument(
        "--clock-tolerance", metavar="SECONDS", type=cli.non_negative_int, default=5,
        help="mtime this far in the future is not yet skew (default: 5)",
    )
    return parser.parse_args(argv)


def pulse_pattern(spec):
    """argparse type for -f: ``~`` expanded (a monitoring core runs no
    shell that would), and a path that can only name a directory refused."""
    if not spec:
        raise argparse.ArgumentTypeError("-f needs a path")
    if spec.endswith(os.sep):
        raise argparse.ArgumentTypeError(
            "%r ends with %s: a pulse file is not a directory" % (spec, os.sep))
    return os.path.expanduser(spec)
