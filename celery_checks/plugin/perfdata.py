"""Perfdata that every monitoring core and graphing add-on can parse.

- labels cannot contain ``'`` or ``=`` (the guidelines forbid them) nor ``|``
  (it ends the output): :func:`label` replaces them, and nothing else, so a
  queue or node name stays recognisable and stable;
- values are integers or plain decimals, never ``1e-05`` or ``True``:
  :func:`number`;
- :func:`perfdata` prints one item cheaply, exactly as nagiosplugin would.
"""

import re

import nagiosplugin

_FORBIDDEN = re.compile(r"['=|\x00-\x1f\x7f]")


def label(name):
    """``name`` made safe as a perfdata label (only forbidden characters change)."""
    name = str(name)
    if not (name.isprintable() and "'" not in name and "=" not in name and "|" not in name):
        name = _FORBIDDEN.sub("_", name)  # printable names (most) skip the regex
    return name.strip() or "_"


#: RRD data sources (PNP4Nagios, many graphers) keep 19 characters of a label
SIGNIFICANT = 19


class Labels(set):
    """The labels one run has taken (a set), and per name the next suffix
    number to try: with many names alike, 1,000 queues' labels alike in
    their first 19 characters say, each would otherwise try every suffix
    taken before it (quadratic: 0.5 s for 1,000 queues)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.next = {}


def unique_label(name, used, significant=None):
    """``label(name)``, unique in ``used`` (a set the caller keeps per run,
    updated here; :class:`Labels` keeps it fast): ``_2``, ``_3``... appended
    while it is not. Two names that sanitise alike ("a=b", "a_b") would
    otherwise share a label, and a core keeps only one of two equal labels;
    the suffix is stable for a given command line.

    With ``significant`` (SIGNIFICANT: a check whose labels opt in), also
    unique in that many first characters: a later label alike there gets
    its suffix within them (two long labels alike at the start would share
    one RRD data source); the first keeps its whole name."""
    base = candidate = label(name)
    if _taken(candidate, used, significant):
        # Names alike in their first ``significant`` characters make the
        # same suffixed candidates: a suffix taken for one stays taken for all.
        key = (base[:significant] if significant else base, significant)
        memo = getattr(used, "next", None)
        number = memo.get(key, 2) if memo is not None else 2
        while _taken(candidate, used, significant):
            suffix = "_%d" % number
            if significant and len(base) + len(suffix) > significant:
                candidate = base[:max(0, significant - len(suffix))] + suffix
            else:
                candidate = base + suffix
            number += 1
        if memo is not None:
            memo[key] = number
    used.add(candidate)
    if significant:
        used.add("\x00" + candidate[:significant])  # no label holds a NUL: never one
    return candidate


def _taken(candidate, used, significant):
    if candidate in used:
        return True
    if not significant:
        return False
    start = candidate[:significant]
    return start in used or "\x00" + start in used


def number(value, places=3):
    """An int, or a float rounded to ``places`` decimals printed without an
    exponent; booleans become 0/1."""
    kind = type(value)
    if kind is int:
        return value
    if kind is not float:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
    text = "%.*f" % (places, float(value))  # rounded as round() would
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", "nan", "inf", "-inf"):
        return 0 if text == "-0" else text
    return int(text) if "." not in text else text


def perfdata(safe_label, value, uom="", warn="", crit="", min="", max=""):
    """One perfdata item, exactly as nagiosplugin prints a Performance
    (label quoted unless it is all word characters, trailing empty fields
    left out), in one step: a check of 1,000 queues prints 1,000 or 2,000,
    and a Performance's own printing formats both ranges and matches a
    regex each time (~2.4 µs an item, half of all the per-metric work).
    ``safe_label`` is a :func:`label` already; ``warn``/``crit`` are text
    (:func:`range_text`). Contexts return it from ``performance()``:
    nagiosplugin's Check, like ours, prints ``str()`` of what they return."""
    tail = ("%s;%s;%s;%s" % (warn, crit, min, max)).rstrip(";")
    return perfdata_item(safe_label, value, uom, ";" + tail if tail else "")


def perfdata_item(safe_label, value, uom, tail):
    """:func:`perfdata` with its trailing fields as text already
    (``;warn;crit;min;max`` without trailing empty ones, or ``''``): the
    same for every queue of a Series."""
    if not word(safe_label):
        safe_label = "'%s'" % safe_label
    return "%s=%s%s%s" % (safe_label, value, uom, tail)


def word(text):
    """Whether ``text`` is all word characters, as nagiosplugin's regex
    ``\\w+`` reads them (letters, digits, "_"), without one: sre's \\w is
    str.isalnum()'s test or "_" (1,000 queues' labels are 1,000 matches)."""
    return text.replace("_", "a").isalnum()


def range_text(limit):
    """A threshold (nagiosplugin Range or None) as perfdata prints it."""
    return "" if limit is None else str(limit)


def plural(count, noun, plural_noun=None):
    """``1 message``, ``2 messages``, ``0 consumers``."""
    return "%d %s" % (count, noun if count == 1 else (plural_noun or noun + "s"))


def seconds(value, limit=None):
    """A duration in words: ``0.123s``, ``3.1s``, ``310s``.

    With ``limit`` (the threshold it is compared with: a number, or the
    nagiosplugin Range it broke), enough decimals are shown that the two
    never read alike: 3.04 s against a limit of 3 is ``3.04s (> 3s)``, not
    ``3.0s (> 3s)``."""
    if isinstance(limit, nagiosplugin.Range):
        limit = limit.end if limit.end != float("inf") else limit.start
    value = float(value)
    places = 0 if abs(value) >= 100 else 1 if abs(value) >= 1 else 3
    text = "%.*f" % (places, value)
    if limit is not None and value != float(limit):
        while places < 6 and float(text) == float(limit) or (
                places < 6 and (float(text) > float(limit)) != (value > float(limit))):
            places += 1
            text = "%.*f" % (places, value)
    return text + "s"


def violation(limit, unit=""):
    """How a value broke a nagiosplugin Range, in words an operator reads
    at a glance: ``> 300s``, ``< 2``, ``outside 10:20``, ``inside 10:20``."""
    limit = nagiosplugin.Range(limit)
    inf = float("inf")
    if limit.invert:
        return "inside %s" % str(limit)[1:]
    if limit.end == inf:
        return "< %s%s" % (limit.start, unit)
    if limit.start in (0, -inf):
        return "> %s%s" % (limit.end, unit)
    return "outside %s" % str(limit)


def shown(name):
    """A queue name safe inside the status line (no perfdata pipe, no
    control characters such as kombu's separator)."""
    text = name.replace("|", "/")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in text)


def quoted(text):
    """``'text'``, shown safely, its quotes escaped."""
    return "'%s'" % shown(text).replace("'", "\\'")
