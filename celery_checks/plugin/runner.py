"""Running a check under the suite's status policy.

- :class:`Deadline`: the run's -t, started once the options are read;
  every network call takes its socket timeout from it;
- :func:`begin`: what a check starts before it imports its evaluation
  (the workers' ping), under the same -t;
- :func:`run`: :class:`~celery_checks.plugin.policy.Unreachable` becomes
  CRITICAL, our own -t and internal errors UNKNOWN, tracebacks only at
  -vvv, and every line printed passes through the redaction;
- :func:`guarded`: the same for whatever fails before :func:`run` starts;
  :func:`entry_point` makes a check's ``main()`` of these.
"""

import functools
import gc
import math
import os
import signal
import sys
import time
import traceback

from celery_checks.plugin import secrets
from celery_checks.plugin.policy import (
    CRITICAL, STATE_NAMES, UNKNOWN, CheckError, Expired, Unreachable)


class Deadline:
    """The -t of one run, counted from when the options were read."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.started = time.monotonic()

    def remaining(self):
        return self.timeout - (time.monotonic() - self.started)

    def network_timeout(self, wait=0.0):
        """Per-call socket timeout: below -t, so a silent peer is reported
        as an outage (CRITICAL) by us before the -t alarm (UNKNOWN) fires.

        What the run already spent counts, at least 1 s of -t is kept for
        our own work (client import, TLS set-up, output), which a loaded
        host slows down (with 20% alone, -t 3 still ran into the alarm),
        and ``wait`` (a listening window the check will spend) is set
        aside, so a broker that goes silent mid-check is CRITICAL before
        -t fires."""
        budget = self.timeout - (time.monotonic() - self.started)
        return max(0.2, min(self.timeout * 0.8, budget - 1.0, (self.timeout - wait) * 0.8))


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
    end(code)


def end(code):
    """End the process with ``code`` once the answer is out. A check is one
    short process: the interpreter's own teardown (freeing every object,
    module by module) would cost 7-10 ms more, 1,000 queues' objects more
    still (docs/performance.md), and nothing is left open that it would
    close: every connection is closed before the output is printed."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the code still counts
            pass
    for close in _AT_END:  # atexit handlers would not run under os._exit
        close()
    os._exit(code)


def run(check, verbose, deadline):
    """Run ``check`` under the suite's status policy; never returns."""
    import nagiosplugin

    status_name = check.name.upper()
    runtime = nagiosplugin.Runtime()
    runtime.stdout = _RedactingStream(sys.stdout)
    detail = (lambda: traceback.format_exc()) if verbose >= 3 else (lambda: None)
    try:
        # nagiosplugin's alarm takes whole seconds: what -t leaves, rounded up
        check.main(verbose=verbose, timeout=max(1, math.ceil(deadline.remaining())))
    except SystemExit as done:  # nagiosplugin's Runtime printed and exits
        end(done.code if isinstance(done.code, int) else UNKNOWN)
    except (nagiosplugin.Timeout, Expired):
        _finish(status_name, UNKNOWN, "plugin timed out after %ds (-t)" % deadline.timeout)
    except Unreachable as exc:
        _finish(status_name, CRITICAL, str(exc), detail())
    except (CheckError, nagiosplugin.CheckError) as exc:
        _finish(status_name, UNKNOWN, str(exc), detail())
    except Exception as exc:
        _finish(status_name, UNKNOWN, "internal error: %s: %s" % (type(exc).__name__, exc),
                detail())
    end(UNKNOWN)  # check.main() always exits; this is a safety net


def check_of(name, *parts):
    """A check of these parts, named (plugin/evaluation.py)."""
    from celery_checks.plugin.evaluation import check_of

    return check_of(name, *parts)


def entry_point(status_name, parse_args, make_check, start=None):
    """A check's ``main(argv=None)``: parse, start the deadline, build the
    check (``make_check(args, deadline)``), run it under the policy. With
    ``start``, what :func:`begin` starts comes first and the check is
    ``make_check(args, deadline, begun=Begun)``."""

    @guarded(status_name)
    def main(argv=None):
        # One short process that ends with os._exit: the cyclic collector
        # would only walk objects that live until then anyway (2-4 ms a
        # run, more the more queues; docs/performance.md).
        gc.disable()
        args = parse_args(argv)
        deadline = Deadline(args.timeout)
        if start is None:
            check = make_check(args, deadline)
        else:
            check = make_check(args, deadline, begun=begin(start, args, deadline))
        run(check, args.verbose, deadline)

    return main


_AT_END = []  # what end() closes: work begun and never taken


class Begun:
    """What :func:`begin` started: :meth:`result` gives it to the check
    that takes it (or raises what starting it raised, there, under the
    status policy); if no check takes it, :func:`end` closes it."""

    def __init__(self, value=None, error=None):
        self.value, self.error, self.taken = value, error, False

    def result(self):
        self.taken = True
        if self.error is not None:
            raise self.error
        return self.value

    def close(self):
        if self.taken or self.value is None:
            return
        try:
            self.value.__exit__(None, None, None)
        except Exception:  # best effort on the way out: the answer is out
            pass


def begin(start, args, deadline):
    """``start(args, deadline)`` now, before the check imports nagiosplugin
    and its evaluation (~25 ms): the workers' ping is out while they load,
    so the workers answer meanwhile. Under the run's -t (an alarm raising
    Expired: nagiosplugin's is not set yet). What it returns must be a
    context manager, closed by whoever takes it."""

    def expired(signum, frame):
        raise Expired("-t expired")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, max(deadline.remaining(), 0.001))
    try:
        begun = Begun(start(args, deadline))
    except Exception as exc:  # raised where the check takes it: same policy
        begun = Begun(error=exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    _AT_END.append(begun.close)
    return begun


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
                _finish(status_name, UNKNOWN,
                        "internal error: %s: %s" % (type(exc).__name__, exc),
                        traceback.format_exc() if verbose else None)

        return wrapper

    return decorate
