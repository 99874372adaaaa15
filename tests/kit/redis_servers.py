"""redis-server processes of the suite's own, on free loopback ports.

The suite never talks to a Redis it did not start: the session server
(tests/conftest.py) and every TLS, unix-socket, ACL or sentinel variant a
test needs are :class:`RedisServer` instances, each in its own directory,
stopped by PID by whoever started it (also when the test fails).

Environment (documented in the README):
  CELERY_CHECKS_TEST_REDIS_HOST    address the servers bind (default 127.0.0.1)
  CELERY_CHECKS_TEST_REDIS_SERVER  the redis-server binary (default redis-server)
"""

import contextlib
import os
import shutil
import socket
import subprocess

from tests.kit.faults import closed_port
from tests.kit.waiting import wait_for

HOST = os.environ.get("CELERY_CHECKS_TEST_REDIS_HOST", "127.0.0.1")
BINARY = os.environ.get("CELERY_CHECKS_TEST_REDIS_SERVER", "redis-server")


def available():
    """None when redis-server can be run, else why not (one line)."""
    if shutil.which(BINARY) is None:
        return "%s not installed (Debian: apt install redis-server)" % BINARY
    return None


class RedisServer:
    """One redis-server: ``RedisServer(directory, *config_lines).start()``.

    ``unix_socket=True`` also listens on a socket (``.socket``); ``sentinel``
    runs it as a sentinel. Nothing is saved to disk."""

    def __init__(self, directory, *config_lines, port=None, unix_socket=False, sentinel=False):
        self.directory = str(directory)
        self.port = port or closed_port(HOST)
        self.host = HOST
        # Short path: a socket path is limited to ~100 bytes and shows in messages.
        self.socket = "/tmp/cc-redis-%d.sock" % self.port if unix_socket else None
        self.config_lines = list(config_lines)
        self.sentinel = sentinel
        self.process = None
        self.log = os.path.join(self.directory, "redis-%d.log" % self.port)

    def url(self, db=0, auth=""):
        return "redis://%s%s:%d/%d" % (auth + "@" if auth else "", self.host, self.port, db)

    def start(self, wait_port=None):
        lines = ["port %d" % self.port, "bind %s" % self.host, "dir %s" % self.directory]
        if not self.sentinel:
            lines += ['save ""', "appendonly no"]
        if self.socket:
            lines.append("unixsocket %s" % self.socket)
        conf = os.path.join(self.directory, "redis-%d.conf" % self.port)
        with open(conf, "w") as handle:
            handle.write("\n".join(lines + self.config_lines) + "\n")
        command = [BINARY, conf] + (["--sentinel"] if self.sentinel else [])
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        wait_for(lambda: self._up(wait_port or self.port), 10, "redis-server on port %d:\n%s"
                 % (wait_port or self.port, self.log))
        if self.socket:
            wait_for(self._socket_up, 10, "redis-server socket %s" % self.socket)
        return self

    def _up(self, port):
        if self.process.poll() is not None:
            with open(self.log) as handle:
                raise AssertionError("redis-server exited:\n" + handle.read()[-2000:])
        try:
            socket.create_connection((self.host, port), 0.2).close()
            return True
        except OSError:
            return False

    def _socket_up(self):
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(self.socket)
            return True
        except OSError:
            return False

    def client(self, db=0, **kwargs):
        import redis

        return redis.Redis(host=self.host, port=self.port, db=db, **kwargs)

    def stop(self):
        """Stop the server we started (by PID), then remove its socket."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self.socket and os.path.exists(self.socket):
            os.unlink(self.socket)

    def restart(self, down_for=0.0):
        import time

        self.stop()
        time.sleep(down_for)
        self.start()

    @contextlib.contextmanager
    def running(self):
        self.start()
        try:
            yield self
        finally:
            self.stop()


class Databases:
    """Hands out the 16 databases of one of our servers: each taken by one
    user at a time and flushed before and after (the server is ours).
    Database 0 is kept for tests that name it (the default of a URL
    without a path); module-wide users take numbers from the top."""

    def __init__(self, server):
        self.server = server
        self.free = set(range(1, 16))

    @contextlib.contextmanager
    def take(self, number=None, from_top=False):
        if number is None:
            if not self.free:
                raise AssertionError("all 15 databases of the test Redis are taken")
            number = max(self.free) if from_top else min(self.free)
        elif number != 0 and number not in self.free:
            raise AssertionError("database %d of the test Redis is taken" % number)
        self.free.discard(number)
        client = self.server.client(number)
        client.flushdb()
        try:
            yield number
        finally:
            client.flushdb()
            client.close()
            if number:
                self.free.add(number)


def self_signed(directory):
    """(cert, key) of a self-signed certificate for 127.0.0.1, for TLS servers."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key
