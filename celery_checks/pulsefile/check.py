"""check_celery_pulsefile: is each pulse file fresh?

A pulse file is kept fresh by a component inside a worker or beat process
while its loop is alive (see celery_checks.worker.pulse). This check reads nothing
but the file system, so it imports neither celery, redis nor pika: its
start-up is the floor of the suite, and it doubles as a container probe.

acquire:  PulseFiles expands the patterns, stats each file, reads its JSON
evaluate: Thresholds judge the age (-w/-c), the clock (--clock-tolerance)
          and each pattern's matches (--min-files); a Condition the
          emitter's "stopped"
present:  PulseSummary words the status line and the long output

Options and --help: pulsefile/options.py.
"""

import collections
import glob
import json
import os
import stat
import time

import nagiosplugin

from celery_checks.plugin import runner
from celery_checks.plugin.contexts import Condition, Threshold
from celery_checks.plugin.perfdata import Labels, label, plural, seconds, unique_label, violation
from celery_checks.plugin.policy import CheckError
from celery_checks.plugin.resource import Resource
from celery_checks.plugin.summary import ProblemSummary
from celery_checks.pulsefile.options import parse_args

CONTENT_LIMIT = 4096  # a pulse file is a few hundred bytes; ignore anything huge

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


class PulseFiles(Resource):
    """The files the patterns name, each once (facts: (files, matches))."""

    def __init__(self, patterns, single, facts=None):
        super().__init__(facts)
        # A pattern given twice is one pattern (and one --min-files count).
        self.patterns = list(dict.fromkeys(patterns))
        self.single = single  # the single-file form: its perfdata label is "age"

    def acquire(self):
        # One file is one file however many patterns, spellings (./w.pulse,
        # /run/celery/w.pulse) or links name it: files are told apart by
        # device and inode, and counted so for --min-files.
        found, matches = {}, {}  # (st_dev, st_ino): (first path naming it, its mtime)
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
            matches[pattern] = len(identities)
        paths = [path for path, _ in found.values()]
        labels = labels_for(paths, self.single)
        now = time.time()
        files = []
        for path, mtime in found.values():
            content, note = read_content(path)
            age = now - mtime
            files.append(PulseFile(path, labels[path], max(0.0, age), max(0.0, -age), content, note))
        return files, matches

    def metrics(self, facts):
        files, matches = facts
        # The status line names a file by its name, by its path where two repeat.
        basenames = [os.path.basename(f.path) for f in files]
        for pulse, basename in zip(files, basenames):
            pulse.name = basename if basenames.count(basename) == 1 else pulse.path
        for pulse in files:  # first: their names are their perfdata labels
            yield self.metric(pulse.label, pulse.age, "age", pulse, uom="s", min=0)
        for pattern, count in matches.items():
            yield self.metric("files " + pattern, count, "matches", pattern)
        for pulse in files:
            yield self.metric("clock " + pulse.label, pulse.ahead, "clock", pulse, uom="s")
            if "state" in pulse.content:
                stopped = str(pulse.content["state"]).lower() == "stopped"
                yield self.metric("state " + pulse.label, stopped, "stopped", pulse)


def labels_for(paths, single):
    """Stable labels: 'age' for the single-file form, else the file's name,
    its path where two names would give the same label, and a numbered
    suffix where even the paths do (a'b and a=b)."""
    if single:
        return {path: "age" for path in paths}
    names = [label(os.path.basename(p)) for p in paths]
    counts = collections.Counter(names)
    used = Labels()
    return {p: unique_label(n if counts[n] == 1 else p, used) for p, n in zip(paths, names)}


# ------------------------------------------------------------------ evaluate

class Age(Threshold):
    words_in_range = True  # an OK file's age is its line in the output

    def words(self, pulse, value, broken):
        text = "%s is %s old" % (pulse.path, age_text(value, (self.warning, self.critical)))
        return text if broken is None else "%s (%s)" % (text, violation(broken, "s"))


def clock_skew(pulse, value, broken):
    if broken is None:
        return None
    return "%s mtime is %s in the future (clock skew?)" % (pulse.path, seconds(value, broken))


def stopped(pulse, value):
    return "%s says %s stopped" % (pulse.path, _short(pulse.content.get("node", "its process")))


def too_few(min_files):
    def describe(pattern, count, broken):
        if broken is None:
            return None
        if count == 0:
            return ("no file matches %s" if glob.has_magic(pattern) else "%s is missing") % pattern
        return "%s matches %s, expected at least %d" % (pattern, plural(count, "file"), min_files)
    return describe


# ------------------------------------------------------------------- present

class PulseSummary(ProblemSummary):
    def __init__(self, verbose=0, ranges=()):
        super().__init__(verbose)
        self.ranges = ranges  # -w, -c: ages are worded against them

    def ok(self, results):
        files = results[0].resource.facts[0] if results else []
        if not files:
            return "no pulse file expected (--min-files 0)"
        if len(files) == 1:
            return "%s is %s old" % (files[0].path, age_text(files[0].age, self.ranges))
        oldest = max(files, key=lambda f: f.age)
        return "%d pulse files fresh, oldest %s %s" % (
            len(files), oldest.name, age_text(oldest.age, self.ranges))

    def item_lines(self, resource):
        return [f.describe(self.ranges) for f in resource.facts[0]] if resource else []


def make_check(args, deadline=None, facts=None):
    """The check for parsed ``args``; ``facts`` ((files, matches)) instead of
    the file system, for tests."""
    single = len(args.patterns) == 1 and not glob.has_magic(args.patterns[0])
    return runner.check_of(
        "celery_pulsefile",
        PulseFiles(args.patterns, single, facts),
        Age("age", args.warning, args.critical),
        Threshold("clock", str(args.clock_tolerance), words=clock_skew, perfdata=False),
        Condition("stopped", nagiosplugin.Critical, stopped),
        Threshold("matches", critical="%d:" % args.min_files, words=too_few(args.min_files),
                  perfdata=False),
        PulseSummary(args.verbose, (args.warning, args.critical)),
    )


main = runner.entry_point("CELERY_PULSEFILE", parse_args, make_check)


if __name__ == "__main__":
    main()
