"""Real ``celery worker`` and ``celery beat`` processes on the tests' tiny app.

Each runs in a process group of its own, logs to a file, and is stopped by
whoever started it, by PID (SIGTERM, then SIGKILL): never by name.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.kit.project import ROOT

#: extra_args for a worker that runs tasks one after the other on Redis
#: where nothing counts what it reserves: 4 messages per process instead of
#: tests/app.py's 1. With a prefetch of 1, Celery 5.2.6 and kombu 5.2.4
#: (Debian 12) fetch the next message only at the worker's next timer, its
#: 2 s event heartbeat: the ack lands after the loop's tick that would send
#: the next BRPOP, so the loop sleeps in poll() with none outstanding (2 s a
#: task; newer releases fetch at once).
PREFETCH_AHEAD = ["--prefetch-multiplier", "4"]


class Worker:
    def __init__(self, name, process, log_path):
        self.name = name
        self.process = process
        self.log_path = log_path

    @property
    def pid(self):
        return self.process.pid

    def log(self):
        return Path(self.log_path).read_text(errors="replace")

    def signal(self, signum):
        os.killpg(self.process.pid, signum)

    @contextlib.contextmanager
    def paused(self):
        """SIGSTOP for the block (a frozen process), SIGCONT after, also on failure."""
        self.signal(signal.SIGSTOP)
        try:
            yield self
        finally:
            self.signal(signal.SIGCONT)

    def stop(self, timeout=15):
        """SIGTERM (warm shutdown), then SIGKILL: only our process group."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGCONT)
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        except ProcessLookupError:
            pass

    def kill(self):
        """SIGKILL the whole group: the worker gets no chance to say goodbye."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(5)


class WorkerFactory:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.workers = []

    def start(self, broker_url, name=None, queues=("celery",), pool="solo",
              concurrency=1, extra_args=(), env=None, app="tests.app",
              wait=True, ready_timeout=30, command="worker", celery=None, pythonpath=None,
              global_args=()):
        """``celery``: the celery executable (default: this interpreter's);
        ``pythonpath``: where the app is found instead of the checkout (the
        package then comes from that celery's own environment);
        ``global_args``: options of the celery command itself, before the
        subcommand (``-b URL``)."""
        name = name or "w%s@%s" % (uuid.uuid4().hex[:6], socket.gethostname())
        log_path = self.tmp_path / ("%s.log" % name.replace("@", "_"))
        environment = dict(os.environ)
        environment.update(env or {})
        environment["CELERY_BROKER_URL"] = broker_url
        if pythonpath is not None:
            environment.pop("VIRTUAL_ENV", None)
            environment["PYTHONPATH"] = str(pythonpath)
        else:
            environment["PYTHONPATH"] = os.pathsep.join(
                [str(ROOT)] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p])
        launcher = [str(celery)] if celery else [sys.executable, "-m", "celery"]
        args = launcher + list(global_args) + ["-A", app, command]
        if command == "worker":
            args += ["-n", name, "-P", pool, "-c", str(concurrency), "-Q", ",".join(queues),
                     "--without-mingle", "--without-gossip", "-l", "INFO"]
        else:
            args += ["-l", "INFO"]
        args += list(extra_args)
        handle = open(log_path, "w")
        process = subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, env=environment,
            cwd=str(self.tmp_path), start_new_session=True,
        )
        worker = Worker(name, process, log_path)
        self.workers.append(worker)
        if wait:
            self.wait_ready(worker, ready_timeout, "ready." if command == "worker" else "beat: Starting")
        return worker

    def wait_ready(self, worker, timeout, marker):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in worker.log():
                return worker
            if worker.process.poll() is not None:
                raise AssertionError("worker %s exited with %s:\n%s" % (
                    worker.name, worker.process.returncode, worker.log()[-3000:]))
            time.sleep(0.1)
        raise AssertionError("worker %s not ready after %ss:\n%s" % (worker.name, timeout, worker.log()[-3000:]))

    def stop_all(self):
        for worker in self.workers:
            worker.stop()
