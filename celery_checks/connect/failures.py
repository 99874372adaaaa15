"""How a client library's failure is worded, and what -t expiring inside a
broker call means (the broker hangs: CRITICAL)."""

import re
import sys

from celery_checks.plugin.policy import Expired, Unreachable


def reason(exc, limit=100):
    """A short, single-line reason for an exception."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    if text.startswith("Command # ") and " caused error: " in text:  # redis-py pipelines
        text = text.split(" caused error: ", 1)[1]
    # redis-py repeats the address the message already names, and ssl
    # appends its source line: keep the status line short.
    text = re.sub(r"^Error -?\d+ connecting to \S+?\. ", "", text)
    text = re.sub(r" \(_ssl\.c:\d+\)", "", text)
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text or type(exc).__name__


def alarm():
    """What the -t alarm raises: nagiosplugin.Timeout once a check runs,
    Expired before (runner.begin); the trigger raises neither."""
    module = sys.modules.get("nagiosplugin")
    return (module.Timeout, Expired) if module is not None else Expired


def silent(what, shown):
    """-t expired while we waited on the broker: it is the broker that hangs,
    an outage to report (CRITICAL), not our own failure (UNKNOWN)."""
    return Unreachable("%s %s did not answer before the -t timeout" % (what, shown))
