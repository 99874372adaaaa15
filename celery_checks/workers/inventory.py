"""Which nodes are expected (--expect, --expect-file), and the verdict on a
set of online node names: what is missing, what is unexpected. Pure: no
broker, no I/O but the --expect-file read."""

import fnmatch

from celery_checks.plugin.policy import CheckError


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
        # a literal name matches itself only: looked up, not matched (a ping
        # of 50 workers judges completeness after each of 50 replies)
        self._literals = {p for p, _ in literal}
        self._globs = [p for p, _ in globs]

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
            if name in self._literals:
                matched[name].append(name)
                continue
            for pattern in self._globs:
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
