"""Waiting for something to become true, without sleeping longer than needed."""

import socket
import time
from pathlib import Path


def wait_for(predicate, timeout=20, what="a condition", interval=0.05, process=None, log=None):
    """Poll ``predicate`` until it returns something true and return that.

    AssertionError naming ``what`` after ``timeout`` seconds, or at once when
    ``process`` (a Popen we wait on) has exited; the tail of ``log`` (a
    path) goes into the message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        exited = process is not None and process.poll() is not None
        if exited or time.monotonic() >= deadline:
            why = "the process exited (%s)" % process.returncode if exited else "timed out after %ss" % timeout
            detail = Path(log).read_text(errors="replace")[-3000:] if log and Path(log).exists() else ""
            raise AssertionError("%s waiting for %s\n%s" % (why, what, detail))
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False
