"""What the suite needs beyond its venv, and how to say what is missing.

``scripts/test`` runs ``python -m tests.kit.prerequisites`` before the
tests: one line per missing piece (exit 1 when any is missing). Tests call
:func:`require` (or carry ``@pytest.mark.needs(...)``), which marks them
"not run" with the same reason, so nothing fails for a reason that is not
the code's.
"""

import functools
import os
import shutil
import subprocess
import sys

DEBIAN_LIBRARIES = ("nagiosplugin", "celery", "kombu", "redis", "pika")


def _executable(path, package):
    return None if os.access(path, os.X_OK) else "%s missing (apt install %s)" % (path, package)


def _tool(name, package):
    return None if shutil.which(name) else "%s missing (apt install %s)" % (name, package)


def _root():
    return None if os.geteuid() == 0 else "not root (the daemons and the nagios user need it)"


def _nagios_user():
    import pwd

    try:
        pwd.getpwnam("nagios")
        return None
    except KeyError:
        return "no nagios user (scripts/test creates it as root)"


def _redis():
    from tests.kit import redis_servers

    return redis_servers.available()


def _rabbitmq():
    from tests.kit import rabbitmq

    return rabbitmq.available()


def _debian_python():
    """Debian's /usr/bin/python3 with its python3-* libraries: the nagios-user
    and contrib tests install the plugins there, as operators on Debian do."""
    if not os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3 missing"
    code = "import %s" % ", ".join(DEBIAN_LIBRARIES)
    proc = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True)
    if proc.returncode:
        return "Debian's python3-* libraries missing (apt install %s)" % " ".join(
            "python3-" + name for name in DEBIAN_LIBRARIES)
    return None


PIECES = {  # name: what finds it missing (None when present)
    "redis-server": _redis,
    "rabbitmq": _rabbitmq,
    "root": _root,
    "nagios-user": _nagios_user,
    "debian-python": _debian_python,
    "icinga2": lambda: _executable("/usr/sbin/icinga2", "icinga2"),
    "nagios4": lambda: _executable("/usr/sbin/nagios4", "nagios4"),
    "nrpe": lambda: _executable("/usr/sbin/nrpe", "nagios-nrpe-server")
    or _executable("/usr/lib/nagios/plugins/check_nrpe", "nagios-nrpe-plugin"),
    "strace": lambda: _tool("strace", "strace"),
    "setpriv": lambda: _tool("setpriv", "util-linux"),
    "openssl": lambda: _tool("openssl", "openssl"),
}


@functools.lru_cache(maxsize=None)
def missing(piece):
    """Why ``piece`` is missing, or None."""
    return PIECES[piece]()


def require(*pieces):
    """Skip the calling test ("not run: ...") unless every piece is present."""
    import pytest

    for piece in pieces:
        why = missing(piece)
        if why:
            pytest.skip("not run: needs %s: %s" % (piece, why))


def main():
    lines = ["%s: %s" % (piece, missing(piece)) for piece in PIECES if missing(piece)]
    for line in lines:
        print("scripts/test: missing %s" % line)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
