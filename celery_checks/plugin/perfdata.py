"""Perfdata that every monitoring core and graphing add-on can parse.

- labels cannot contain ``'`` or ``=`` (the guidelines forbid them) nor ``|``
  (it ends the output): :func:`label` replaces them, and nothing else, so a
  queue or node name stays recognisable and stable;
- values are integers or plain decimals, never ``1e-05`` or ``True``:
  :func:`number`;
- :class:`ThresholdContext` is nagiosplugin's ScalarContext with both applied.
"""

import re

import nagiosplugin

_FORBIDDEN = re.compile(r"['=|\x00-\x1f\x7f]")


def label(name):
    """``name`` made safe as a perfdata label (only forbidden characters change)."""
    cleaned = _FORBIDDEN.sub("_", str(name)).strip()
    return cleaned or "_"


def unique_label(name, used):
    """``label(name)``, with ``_2``, ``_3``... appended while it is in
    ``used`` (a set the caller keeps per run, updated here). Two names that
    sanitise alike ("a=b", "a_b") would otherwise share a label, and a core
    keeps only one of two equal labels; the suffix is stable for a given
    command line."""
    base = candidate = label(name)
    number = 2
    while candidate in used:
        candidate, number = "%s_%d" % (base, number), number + 1
    used.add(candidate)
    return candidate


def number(value, places=3):
    """An int, or a float rounded to ``places`` decimals printed without an
    exponent; booleans become 0/1."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    rounded = round(float(value), places)
    if rounded.is_integer():
        return int(rounded)
    return format(rounded, ".%df" % places).rstrip("0").rstrip(".")


class ThresholdContext(nagiosplugin.ScalarContext):
    """ScalarContext whose perfdata always parses: sanitised label, rounded
    value, warn/crit from the thresholds, min/max from the metric. Results
    carry only the hint the check words (no generic "x is 5s" prefix)."""

    def __init__(self, name, warning=None, critical=None, fmt_metric=None,
                 result_cls=nagiosplugin.Result):
        super().__init__(name, warning, critical, fmt_metric, result_cls)

    def performance(self, metric, resource):
        return nagiosplugin.Performance(
            label(metric.name),
            number(metric.value),
            metric.uom or "",
            self.warning,
            self.critical,
            "" if metric.min is None else number(metric.min),
            "" if metric.max is None else number(metric.max),
        )


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
