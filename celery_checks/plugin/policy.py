"""The status policy every check shares.

- OK / WARNING / CRITICAL: the check ran and judged what it measured.
- CRITICAL: what we monitor (broker, result store, pulse file) cannot be
  reached, refuses us, or nothing answers. That is the outage we exist to
  report, so it must page. Raise :class:`Unreachable` with a message that
  names the redacted URL and the reason.
- UNKNOWN: the check itself could not do its job: bad arguments, our own
  ``-t`` expired, a missing dependency, an unreadable input, an internal
  error. Raise :class:`CheckError` (or let it escape: the runner turns any
  other exception into UNKNOWN, with a traceback only at ``-vvv``).

Exit codes are 0/1/2/3 and nothing else.
"""

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


class CheckError(Exception):
    """The check cannot judge: reported as UNKNOWN with this message."""

    exitcode = UNKNOWN


class Expired(Exception):
    """-t fired before nagiosplugin's own alarm was set (while a check did
    what runner.begin starts before its imports): as nagiosplugin.Timeout."""

    exitcode = UNKNOWN


class Unreachable(Exception):
    """What we monitor cannot be reached or refuses us: reported as CRITICAL."""

    exitcode = CRITICAL


def nagios_state(code):
    """nagiosplugin's state object for an exit code (``--*-state`` options)."""
    import nagiosplugin

    return {OK: nagiosplugin.Ok, WARNING: nagiosplugin.Warn, CRITICAL: nagiosplugin.Critical,
            UNKNOWN: nagiosplugin.Unknown}[code]
