"""Faults on demand, all on loopback, for tests/test_faults.py and friends.

- :class:`Listener`: a TCP port of our own that accepts and never answers
  (``silent``) or accepts and hangs up at once (``hangup``);
- :func:`closed_port`: a port nobody listens on (connection refused);
- :class:`RedisServer`: a private redis-server on its own port, to stop and
  restart without touching the shared one on 6379;
- :class:`TcpProxy`: a loopback proxy in front of a real broker that can
  cut every connection through it (a worker "cut from its broker", or a
  RabbitMQ "restart" without restarting the shared node);
- :func:`run_parallel`: run many executables a few at a time.

Everything here stops only what it started, by object, never by name.
"""

import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from tests.executables import SCRIPTS
from tests.plugin import executable, run_check


def closed_port(host="127.0.0.1"):
    """A port on ``host`` that nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Listener:
    """A loopback TCP listener run by the test: ``silent`` accepts and never
    sends a byte (a hung broker, a black-holing firewall after the SYN);
    ``hangup`` accepts and closes at once (a crashing or overloaded peer)."""

    def __init__(self, mode="silent"):
        self.mode = mode
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(128)
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.accepted = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            if self.mode == "hangup":
                conn.close()
            else:
                self.accepted.append(conn)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        for conn in self.accepted:
            conn.close()
        self.server.close()


class RedisServer:
    """A redis-server of our own on a free loopback port."""

    def __init__(self, directory, port=None):
        self.directory = str(directory)
        self.port = port or closed_port()
        self.process = None

    def url(self, db=0):
        return "redis://127.0.0.1:%d/%d" % (self.port, db)

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: port_open(self.port), 10, "redis-server on port %d" % self.port)
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()  # by PID: only the server we started
            self.process.wait(10)

    def restart(self, down_for=0.0):
        self.stop()
        time.sleep(down_for)
        self.start()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target`` until :meth:`cut`, which
    drops every connection through it; :meth:`refuse` keeps refusing new
    ones (the listener closes them at once) until :meth:`restore`.
    With ``freeze_on``, a connection whose client sends those bytes stops
    being forwarded and stays open: a broker that hangs mid-conversation."""

    def __init__(self, target_port, target_host="127.0.0.1", freeze_on=None):
        self.target = (target_host, target_port)
        self.freeze_on = freeze_on
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(128)
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.refusing = False
        self.connections = 0  # accepted so far
        self._pairs = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            if self.refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            self.connections += 1
            with self._lock:
                self._pairs.append((client, upstream))
            frozen = threading.Event()
            for a, b, watch in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(a, b, frozen, watch), daemon=True).start()

    def _pump(self, source, sink, frozen, watch):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if watch and self.freeze_on and self.freeze_on in data:
                    frozen.set()
                if frozen.is_set():
                    continue  # swallow: the peer never hears back
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        """Drop every connection through the proxy (RST where possible)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def refuse(self):
        self.refusing = True
        self.cut()

    def restore(self):
        self.refusing = False

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.cut()
        self.server.close()


def locked_redis_db():
    """conftest's lock-file DB allocation, for a module's tests: taken from
    the top so per-test redis_db fixtures keep the low numbers."""
    from tests.conftest import locked_redis_db as locked

    return locked(range(15, 0, -1))


def run_parallel(jobs, parallel=6):
    """Run ``jobs`` = [(name, args, kwargs)] a few at a time; Results in order."""
    def one(job):
        name, args, kwargs = job
        return run_check(name, *args, **kwargs)

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, jobs))


def fork_runs(name, argvs, parallel=8):
    """Run executable ``name`` once per argv, ``parallel`` at a time, each
    run a process of its own forked from one that imported the check
    already (tests/forkrun.py): hundreds of runs at a fraction of the
    cost. Results like run_check's."""
    import json
    import sys

    from tests.executables import ROOT
    from tests.plugin import Result

    target = SCRIPTS[name]
    assert target.startswith("celery_checks.") and target.endswith(":main"), target
    module = target[len("celery_checks."):-len(":main")]
    env = dict(os.environ)
    env.pop("CELERY_BROKER_URL", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run(
        [sys.executable, "-m", "tests.forkrun", module, str(parallel)], cwd=str(ROOT),
        input=json.dumps([[str(a) for a in argv] for argv in argvs]), capture_output=True,
        text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [Result([name] + r["argv"], r["rc"], r["stdout"], r["stderr"], r["elapsed"])
            for r in json.loads(proc.stdout)]


@lru_cache(maxsize=None)
def help_text(name):
    proc = subprocess.run([executable(name), "--help"], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="79"))
    return proc.stdout


def talks_to_broker(name):
    """Declared executables whose --help offers a broker or a store URL."""
    text = help_text(name)
    return "--broker" in text or "--store" in text


BROKER_SCRIPTS = sorted(name for name in SCRIPTS if talks_to_broker(name))
