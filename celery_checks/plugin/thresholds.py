"""-w/-c and every other warning/critical pair: Monitoring-Plugins ranges,
validated when parsed, and their defaults, filled in knowing what was given
(a default that the given range makes meaningless is dropped; a given one
that a default would make meaningless is a usage error)."""

import argparse

from celery_checks.plugin.policy import CheckError


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


def add_threshold_pair(parser, what, warning, critical,
                       flags=(("-w", "--warning"), ("-c", "--critical")), notes=("", "")):
    """A warning and a critical range option (-w/-c, or e.g.
    --latency-warning/--latency-critical). Both default to None so that the
    defaults are filled in once parsing is done, knowing what was given
    (_fill_defaults); ``notes`` end each default's help."""
    dests = [option[-1].lstrip("-").replace("-", "_") for option in flags]
    names = [option[0] for option in flags]
    parser.finishers.append(
        lambda parsed: _fill_defaults(parsed, warning, critical, dests, names))
    warning_default = (warning or "none") + notes[0]
    if warning and critical:
        warning_default += ", none when %s is lower" % names[1]
    parser.add_argument(
        *flags[0], metavar="RANGE", type=threshold_range,
        help="warning range on %s (default: %s)" % (what, warning_default),
    )
    parser.add_argument(
        *flags[1], metavar="RANGE", type=threshold_range,
        help="critical range on %s (default: %s)" % (what, (critical or "none") + notes[1]),
    )


def _fill_defaults(parsed, warning, critical, dests=("warning", "critical"),
                        names=("-w", "-c")):
    """Fill in the defaults of a warning/critical pair. A default warning
    that the given critical makes meaningless is dropped: with -c 60 and
    the default -w 120 every age that would warn is already critical, and
    perfdata saying warn 120, crit 60 would contradict the check. An
    explicit warning is always kept; one that the default critical would
    make meaningless (-w 700 under the default -c 600: it could never
    warn, the default would alert first) is a usage error: give both."""
    given_warning, given_critical = getattr(parsed, dests[0]), getattr(parsed, dests[1])
    if given_critical is None:
        if given_warning is not None and critical and _above(given_warning, critical):
            raise CheckError("%s %s would never warn: the default %s %s alerts first; "
                             "give %s as well" % (names[0], given_warning, names[1], critical,
                                                  names[1]))
        setattr(parsed, dests[1], critical)
    elif given_warning is None and warning and _never_reached(warning, given_critical):
        warning = None
    if given_warning is None:
        setattr(parsed, dests[0], warning)


def _above(warning, critical):
    """True when ``warning`` is an upper bound above ``critical``'s (both
    ranges alert above their end, warning's end finite and higher): values
    between the two are critical, never warning. ``~:`` (never warn) and
    lower bounds (``10:``) are not."""
    import nagiosplugin

    warn, crit = nagiosplugin.Range(warning), nagiosplugin.Range(critical)
    return _never_reached(warning, critical) and warn.end != float("inf") \
        and warn.end > crit.end and warn.start == crit.start


def _never_reached(warning, critical):
    """True when every value outside ``warning`` is outside ``critical`` as
    well (critical's range lies within warning's): the warning can never be
    the state."""
    import nagiosplugin

    warn, crit = nagiosplugin.Range(warning), nagiosplugin.Range(critical)
    if warn.invert or crit.invert:
        return False
    return warn.start <= crit.start and crit.end <= warn.end
