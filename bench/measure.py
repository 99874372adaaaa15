"""Measuring one command as a whole process: wall time, CPU time (user+sys)
and peak RSS (ru_maxrss) from os.wait4() on exactly that child, through a
tiny launcher process; and which packages a command imports.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# The packages whose import the report names (a check that needs none of
# them should import none of them).
HEAVY = ("celery", "kombu", "billiard", "redis", "pika", "amqp")


def log(message):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


class Sample:
    __slots__ = ("wall", "cpu", "rss", "rc", "output")

    def __init__(self, wall, cpu, rss, rc, output):
        self.wall, self.cpu, self.rss, self.rc, self.output = wall, cpu, rss, rc, output


# The launcher forks and execs every measured command. It must be a small
# process: on exec Linux folds the old address space's high-water mark into
# the child's ru_maxrss, so a child forked from the benchmark (celery, redis
# and pika loaded, ~45 MiB) would report at least that much. python -S -I
# is ~8.5 MiB, about `python -c pass` itself; json adds nothing measurable.
# One JSON request a line in ({"argv", "env", "out"}), the child's PID a
# line out, then its figures as one JSON object a line. Ctrl-C reaches the
# launcher too: it ignores it (the benchmark kills the child and closes the
# launcher's input), its children get the default back.
LAUNCHER = r"""
import json, os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
for line in sys.stdin:
    request = json.loads(line)
    argv, env = request["argv"], request["env"]
    fd = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            if env is None:
                os.execv(argv[0], argv)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(fd)
    sys.stdout.write("%d\n" % pid)
    sys.stdout.flush()
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    sys.stdout.write(json.dumps({"wall": wall, "cpu": ru.ru_utime + ru.ru_stime,
                                 "rss_kib": ru.ru_maxrss,
                                 "rc": os.waitstatus_to_exitcode(status)}) + "\n")
    sys.stdout.flush()
"""


class Launcher:
    """The launcher process, started with the measured venv's ``python``."""

    def __init__(self, python, workdir):
        self.out = str(workdir / "last-output")
        self.proc = subprocess.Popen([python, "-S", "-I", "-c", LAUNCHER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def measure(self, argv, env=None, limit=60.0):
        """Run argv once; wall, CPU (user+sys) and peak RSS of exactly that
        child, killed (its process group) after ``limit`` seconds."""
        request = {"argv": list(argv), "env": env, "out": self.out}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        pid = int(self._answer())
        # A daemon thread started inside the try: a SIGTERM (raised here as
        # KeyboardInterrupt) landing just after start() must neither skip
        # cancel() nor keep the interpreter waiting out the limit at exit.
        killer = threading.Timer(limit, kill_group, (pid,))
        killer.daemon = True
        try:
            killer.start()
            figures = json.loads(self._answer())
        except BaseException:  # Ctrl-C, SIGTERM: the child must not outlive us
            kill_group(pid)
            raise
        finally:
            killer.cancel()
        with open(self.out, "rb") as handle:
            output = handle.read().decode("utf-8", "replace")
        return Sample(figures["wall"], figures["cpu"], figures["rss_kib"] / 1024.0,
                      figures["rc"], output)

    def _answer(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the launcher exited (%s)" % self.proc.wait(10))
        return line

    def close(self):
        """End the launcher: it leaves its loop when its input closes."""
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def imported_packages(argv, env=None):
    """Top-level packages a check imports, from ``python -X importtime``."""
    interpreter = Path(argv[0]).read_text().split("\n", 1)[0][2:].strip()
    proc = subprocess.run([interpreter, "-X", "importtime"] + argv, capture_output=True,
                          text=True, env=env, timeout=60)
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)", proc.stderr, re.M)
    return {name.split(".")[0] for name in names}
