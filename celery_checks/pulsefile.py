"""check_celery_pulsefile: is each pulse file fresh?

A pulse file is kept fresh by a component inside a worker or beat process
while its loop is alive (see celery_checks.pulse). This check reads nothing
but the file system, so it imports neither celery, redis nor pika: its
start-up is the floor of the suite, and it doubles as a container probe.

acquire:  PulseFiles expands the patterns, stats each file, reads its JSON
evaluate: contexts judge the age (-w/-c), the clock, the emitter's state and
          whether every pattern matched enough files
present:  PulseSummary words the status line and the long output
"""

import argparse
import glob
import json
import os
import stat
import time

import nagiosplugin

from celery_checks import cli
from celery_checks.perfdata import ThresholdContext, label, plural, seconds, unique_label, violation
from celery_checks.policy import CheckError
from celery_checks.summary import ProblemSummary

WARNING_AGE = "120"
CRITICAL_AGE = "300"
CONTENT_LIMIT = 4096  # a pulse file is a few hundred bytes; ignore anything huge

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
)


def parse_args(argv=None):
    parser = cli.make_parser(
        "check_celery_pulsefile",
        "Alert when a Celery pulse file goes stale.",
        thresholds=("the age in seconds", WARNING_AGE, CRITICAL_AGE),
        **HELP,
    )
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


# ------------------------------------------------------------------- acquire

class PulseFile:
    """What we know of one file: its age and, if it is JSON, its content."""

    def __init__(self, path, label, age, ahead, content, note):
        self.path = path
        self.name = path  # how the status line names it: see PulseFiles.probe
        self.label = label  # its perfdata label, unique in this run
        self.age = age  # seconds, never negative
        self.ahead = ahead  # seconds the mtime lies in the future, or 0
        self.content = content  # dict from the file's JSON, or {}
        self.note = note  # why the content is not shown, or None

    def describe(self, ranges=()):
        facts = ["%s old" % age_text(self.age, ranges)]
        for key in ("node", "pid", "state"):
            if key in self.content:
                facts.append("%s %s" % (key, _short(self.content[key])))
        if self.note:
            facts.append(self.note)
        return "%s: %s" % (self.path, ", ".join(facts))


def age_text(age, ranges):
    """An age in words, with enough decimals that it never reads equal to
    the nearest bound of the threshold ``ranges`` (3.09 s against -w 3 is
    3.09s, not 3s)."""
    import nagiosplugin

    bounds = [bound for spec in ranges if spec
              for bound in (nagiosplugin.Range(spec).start, nagiosplugin.Range(spec).end)
              if abs(bound) != float("inf")]
    nearest = min(bounds, key=lambda bound: abs(bound - age)) if bounds else None
    return seconds(age, nearest)


def _short(value, limit=60):
    text = " ".join(str(value).split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def expand(pattern):
    """The files a -f argument names; CheckError when we may not look."""
    if not glob.has_magic(pattern):
        try:
            mode = os.stat(pattern).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise CheckError("cannot stat %s: %s" % (pattern, exc.strerror or exc))
        if stat.S_ISDIR(mode):
            raise CheckError("%s is a directory, expected a pulse file" % pattern)
        return [pattern]
    # glob silently returns nothing for a directory we may not read: look
    # ourselves so "permission denied" is not mistaken for "no pulse file".
    base = _literal_prefix(pattern)
    try:
        with os.scandir(base):
            pass
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise CheckError("cannot read directory %s: %s" % (base, exc.strerror or exc))
    return sorted(p for p in glob.glob(pattern) if not os.path.isdir(p))


def _literal_prefix(pattern):
    parts = []
    for part in pattern.split(os.sep)[:-1]:
        if glob.has_magic(part):
            break
        parts.append(part)
    return os.sep.join(parts) or ("/" if pattern.startswith(os.sep) else ".")


def read_content(path):
    """(dict, note) from the file's JSON; an empty or non-JSON file is fine."""
    if not os.path.isfile(path):
        return {}, None  # never open a FIFO or device: that could block
    try:
        with open(path, "rb") as handle:
            raw = handle.read(CONTENT_LIMIT + 1)
    except FileNotFoundError:
        return {}, "removed while reading"
    except OSError as exc:
        return {}, "content not readable: %s" % (exc.strerror or exc)
    if not raw.strip() or len(raw) > CONTENT_LIMIT:
        return {}, None
    try:
        content = json.loads(raw.decode("utf-8"))
    except ValueError:  # includes UnicodeDecodeError
        return {}, None
    return (content if isinstance(content, dict) else {}), None


class PulseFiles(nagiosplugin.Resource):
    """Each metric's name is a key of :attr:`items`, which maps it to exactly
    the file (or pattern) it is about: a context never guesses from a name."""

    def __init__(self, patterns, clock_tolerance):
        # A pattern given twice is one pattern (and one --min-files count).
        self.patterns = list(dict.fromkeys(patterns))
        self.clock_tolerance = clock_tolerance
        self.files = []
        self.matches = {}
        self.items = {}

    def probe(self):
        # One file is one file however many patterns, spellings (./w.pulse,
        # /run/celery/w.pulse) or links name it: files are told apart by
        # device and inode, and counted so for --min-files.
        found = {}  # (st_dev, st_ino): (first path naming it, its mtime)
        for pattern in self.patterns:
            identities = set()
            for path in expand(pattern):
                try:
                    status = os.stat(path)
                except FileNotFoundError:  # removed between glob and stat
                    continue
                except OSError as exc:
                    raise CheckError("cannot stat %s: %s" % (path, exc.strerror or exc))
                identity = (status.st_dev, status.st_ino)
                identities.add(identity)
                found.setdefault(identity, (path, status.st_mtime))
            self.matches[pattern] = len(identities)
        paths = [path for path, _ in found.values()]
        labels = self._labels(paths)
        now = time.time()
        for path, mtime in found.values():
            content, note = read_content(path)
            age = now - mtime
            self.files.append(PulseFile(path, labels[path], max(0.0, age), max(0.0, -age), content, note))
        basenames = [os.path.basename(f.path) for f in self.files]
        for pulse, basename in zip(self.files, basenames):
            pulse.name = basename if basenames.count(basename) == 1 else pulse.path

        for number, (pattern, count) in enumerate(self.matches.items()):
            yield self._metric("files #%d" % number, pattern, count, context="matches")
        for number, pulse in enumerate(self.files):
            yield self._metric("age #%d" % number, pulse, pulse.age, "s", min=0, context="age")
            yield self._metric("clock #%d" % number, pulse, pulse.ahead, "s", context="clock")
            if "state" in pulse.content:
                yield self._metric("state #%d" % number, pulse, pulse.content["state"], context="state")

    def _metric(self, name, item, *args, **kwargs):
        self.items[name] = item
        return nagiosplugin.Metric(name, *args, **kwargs)

    def _labels(self, paths):
        """Stable labels: 'age' for the single-file form, else the file's
        name, its path where two names would give the same label, and a
        numbered suffix where even the paths do (a'b and a=b)."""
        if len(self.patterns) == 1 and not glob.has_magic(self.patterns[0]):
            return {path: "age" for path in paths}
        names = [label(os.path.basename(p)) for p in paths]
        used = set()
        return {p: unique_label(n if names.count(n) == 1 else p, used) for p, n in zip(paths, names)}

    def item(self, metric):
        return self.items[metric.name]


# ------------------------------------------------------------------ evaluate

class AgeContext(ThresholdContext):
    def evaluate(self, metric, resource):
        pulse = resource.item(metric)
        ranges = (self.warning, self.critical)
        for state, limit in ((nagiosplugin.Critical, self.critical), (nagiosplugin.Warn, self.warning)):
            if not limit.match(metric.value):
                hint = "%s is %s old (%s)" % (pulse.path, age_text(metric.value, ranges),
                                              violation(limit, "s"))
                return self.result_cls(state, hint, metric)
        return self.result_cls(
            nagiosplugin.Ok, "%s is %s old" % (pulse.path, age_text(metric.value, ranges)), metric)

    def performance(self, metric, resource):
        return super().performance(metric, resource)._replace(label=resource.item(metric).label)


class ClockContext(nagiosplugin.Context):
    def __init__(self, tolerance):
        super().__init__("clock")
        self.tolerance = tolerance

    def evaluate(self, metric, resource):
        if metric.value > self.tolerance:
            pulse = resource.item(metric)
            hint = "%s mtime is %s in the future (clock skew?)" % (
                pulse.path, seconds(metric.value, self.tolerance))
            return self.result_cls(nagiosplugin.Warn, hint, metric)
        return self.result_cls(nagiosplugin.Ok, None, metric)


class StateContext(nagiosplugin.Context):
    def evaluate(self, metric, resource):
        if str(metric.value).lower() == "stopped":
            pulse = resource.item(metric)
            who = _short(pulse.content.get("node", "its process"))
            hint = "%s says %s stopped" % (pulse.path, who)
            return self.result_cls(nagiosplugin.Critical, hint, metric)
        return self.result_cls(nagiosplugin.Ok, None, metric)


class MatchesContext(nagiosplugin.Context):
    def __init__(self, min_files):
        super().__init__("matches")
        self.min_files = min_files

    def evaluate(self, metric, resource):
        pattern = resource.item(metric)
        if metric.value >= self.min_files:
            return self.result_cls(nagiosplugin.Ok, None, metric)
        if metric.value == 0:
            hint = ("no file matches %s" if glob.has_magic(pattern) else "%s is missing") % pattern
        else:
            hint = "%s matches %s, expected at least %d" % (
                pattern, plural(metric.value, "file"), self.min_files)
        return self.result_cls(nagiosplugin.Critical, hint, metric)


# ------------------------------------------------------------------- present

class PulseSummary(ProblemSummary):
    def __init__(self, ranges=()):
        self.ranges = ranges  # -w, -c: ages are worded against them

    def ok(self, results):
        files = results[0].resource.files if results else []
        if not files:
            return "no pulse file expected (--min-files 0)"
        if len(files) == 1:
            return "%s is %s old" % (files[0].path, age_text(files[0].age, self.ranges))
        oldest = max(files, key=lambda f: f.age)
        return "%d pulse files fresh, oldest %s %s" % (
            len(files), oldest.name, age_text(oldest.age, self.ranges))

    def item_lines(self, resource):
        return [f.describe(self.ranges) for f in resource.files] if resource else []


@cli.guarded("CELERY_PULSEFILE")
def main(argv=None):
    args = parse_args(argv)
    check = nagiosplugin.Check(
        PulseFiles(args.patterns, args.clock_tolerance),
        AgeContext("age", args.warning, args.critical),
        ClockContext(args.clock_tolerance),
        StateContext("state"),
        MatchesContext(args.min_files),
        PulseSummary((args.warning, args.critical)),
    )
    check.name = "celery_pulsefile"
    cli.run(check, args)


if __name__ == "__main__":
    main()
