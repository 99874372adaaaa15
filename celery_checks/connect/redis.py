"""The one Redis client of celery-checks, for kombu's Redis URLs (redis,
rediss, redis+socket, sentinel) read by :func:`.urls.parse_url`, and its
failures in the status policy (CRITICAL naming the redacted URL).

hiredis (Redis's own C library; >= 2.2.1, its first release with a command
packer) reads every reply and packs every command; this module opens the
socket (TCP, TLS, unix socket, or the master the sentinels name),
authenticates, selects the DB and bounds every wait. It imports in about a
millisecond, where redis-py 8 costs ~0.1 s and ~18 MiB (docs/performance.md):
a check is one short process.

The client's whole surface (single-threaded; the worker side locks around
it)::

    client = redis_client(url, transport_options=None, timeout=5.0)
        one attempt, no retries; every socket operation bounded by timeout;
        connects on first use (CheckError at once for a URL it cannot serve)
    client.db                            the DB number the URL names
    client.call("LLEN", key)             one command: its reply
    client.pipeline([("LLEN", k), ...], raise_errors=True)
                                         many commands (tuples of str, bytes
                                         or int), one round trip: replies in
                                         order (error replies in place with
                                         raise_errors=False)
    client.transaction([("SADD", k, m), ...])   the same inside MULTI/EXEC
    client.script(source, keys, args)    EVALSHA, EVAL when not yet loaded
    client.scan(pattern, count=1000, deadline=None)   the matching keys
    client.other_db(db)                  the same server (master), another DB
    client.close()

Replies are hiredis's: bytes, int, None, lists (a hash or TIME is a flat
list). Errors: :class:`ReplyError` (the server's line; ``.code`` its first
word), :class:`AuthenticationError`, :class:`Closed`, :class:`MasterNotFound`,
and OSError (refused, ``socket.timeout``, ``ssl.SSLError``);
:func:`redis_errors` words them all.
"""

import contextlib
import socket

import hiredis

from celery_checks.connect import redis_reach
from celery_checks.connect.failures import alarm, reason, silent
from celery_checks.connect.urls import parse_url
from celery_checks.plugin.policy import CheckError, Unreachable
from celery_checks.plugin.secrets import redact_url


class RedisError(Exception):
    """A failure of this client's own (OSError aside)."""


class ReplyError(RedisError):
    """An error reply: the server's line, e.g. ``WRONGTYPE Operation ...``."""

    @property
    def code(self):
        return str(self).split(" ", 1)[0]


class AuthenticationError(ReplyError):
    """The server refused our credentials (AUTH, or NOAUTH on a command)."""


class Closed(RedisError):
    """The server closed the connection."""


class MasterNotFound(RedisError):
    """No sentinel named a master in a usable state."""


class ProtocolError(RedisError):
    """What the server sent is not RESP (not a Redis server)."""


def redis_client(url, transport_options=None, timeout=5.0):
    """A :class:`RedisClient` for a kombu Redis URL (see the module's doc)."""
    target = parse_url(url)
    if target.transport != "redis":
        raise CheckError("%s is not a Redis URL" % target.shown)
    options = dict(transport_options or {})
    sentinels = None
    if target.scheme == "sentinel":
        if not options.get("master_name"):
            raise CheckError("sentinel:// needs the master_name transport option "
                             "(-O master_name=NAME)")
        sentinels = (target.sentinels or [(target.hostname, target.port)], options)
    return RedisClient(
        timeout, address=None if sentinels or target.socket_path else (target.hostname, target.port),
        path=target.socket_path, tls=target.ssl or None, sentinels=sentinels, db=target.db,
        username=_redis_username(target.userid, target.password), password=target.password)


class RedisClient:
    def __init__(self, timeout, address=None, path=None, tls=None, sentinels=None, db=0,
                 username=None, password=None):
        self.timeout = timeout
        self.address, self.path, self.tls = address, path, tls  # address: (host, port)
        self.sentinels = sentinels  # (addresses, options): the master is asked for
        self.db, self.username, self.password = db, username, password
        self._sock = self._reader = None
        self._shas = {}

    # ------------------------------------------------------------ commands

    def call(self, *args):
        return self.pipeline([args])[0]

    def pipeline(self, commands, raise_errors=True):
        # hiredis packs each tuple; map() keeps a pipeline of thousands of
        # commands (the queue check's) free of Python-level work per command.
        self._send(b"".join(map(hiredis.pack_command, commands)))
        replies = self._read(len(commands))
        if raise_errors:
            for reply in replies:
                if isinstance(reply, ReplyError):
                    raise reply
        return replies

    def transaction(self, commands):
        replies = self.pipeline([("MULTI",)] + list(commands) + [("EXEC",)], raise_errors=False)
        for reply in replies:  # a queued command refused, or EXECABORT
            if isinstance(reply, ReplyError):
                raise reply
        return replies[-1]

    def script(self, source, keys=(), args=()):
        """EVALSHA, then EVAL once if the server does not hold the script."""
        sha = self._shas.get(source)
        if sha is None:
            import hashlib

            sha = self._shas[source] = hashlib.sha1(source.encode("utf-8")).hexdigest()
        tail = (len(keys),) + tuple(keys) + tuple(args)
        try:
            return self.call("EVALSHA", sha, *tail)
        except ReplyError as exc:
            if exc.code != "NOSCRIPT":
                raise
        return self.call("EVAL", source, *tail)

    def scan(self, pattern, count=1000, deadline=None, calls=200):
        """Keys matching ``pattern``: all of them, or (with ``deadline``, a
        time.monotonic() value) those found within ``calls`` SCAN calls and
        before the deadline."""
        import time

        cursor, keys = b"0", []
        while True:
            cursor, batch = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", count)
            keys.extend(batch)
            calls -= 1
            if cursor == b"0" or (deadline is not None and (
                    calls <= 0 or time.monotonic() > deadline)):
                return keys

    def other_db(self, db):
        """A client of its own for DB ``db`` of the same server (the
        sentinels are asked for the master once)."""
        if self.address is None and self.sentinels:
            self.address = redis_reach.master(self.sentinels, self.timeout)
        return RedisClient(self.timeout, self.address, self.path, self.tls, self.sentinels, db,
                           self.username, self.password)

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = self._reader = None

    # ---------------------------------------------------------- connection

    def _send(self, data):
        if self._sock is None:
            self._connect()
        try:
            self._sock.sendall(data)
        except BaseException:
            self.close()
            raise

    def _read(self, count):
        """The next ``count`` replies (one loop: a pipeline of 1,000 queues
        is 5,000 of them)."""
        replies = []
        gets, append = self._reader.gets, replies.append
        try:
            while len(replies) < count:
                reply = gets()
                if reply is False:
                    data = self._sock.recv(65536)
                    if not data:
                        raise Closed("Connection closed by server.")
                    self._reader.feed(data)
                else:
                    append(reply)
            return replies
        except BaseException:
            self.close()
            raise

    def _connect(self):
        if self.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except BaseException:
                sock.close()
                raise
        else:
            if self.address is None:
                self.address = redis_reach.master(self.sentinels, self.timeout)
            host, port = self.address
            # An ASCII name as bytes: getaddrinfo() reads a str through the
            # idna codec, whose import (stringprep, unicodedata) is ~1 ms a run.
            sock = socket.create_connection(
                (host.encode("ascii") if host.isascii() else host, port), self.timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls:
                    sock = redis_reach.tls_context(self.tls).wrap_socket(
                        sock, server_hostname=self.address[0])
            except BaseException:
                sock.close()
                raise
        self._sock = sock
        self._reader = hiredis.Reader(protocolError=ProtocolError, replyError=ReplyError)
        self._handshake()

    def _handshake(self):
        """AUTH and SELECT in one round trip. Redis < 6 knows no user names:
        its refusal of the two-argument AUTH gets AUTH PASSWORD."""
        auth = [("AUTH", self.username, self.password or "")] \
            if self.password or self.username else []
        select = [("SELECT", self.db)] if self.db else []
        if not auth + select:
            return
        replies = self.pipeline(auth + select, raise_errors=False)
        if auth and isinstance(replies[0], ReplyError):
            if "wrong number of arguments" in str(replies[0]) and self.username == "default":
                replies = self.pipeline([("AUTH", self.password)] + select, raise_errors=False)
            if isinstance(replies[0], ReplyError):
                raise AuthenticationError(str(replies[0]))
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise AuthenticationError(str(reply)) if reply.code == "NOAUTH" else reply


def _redis_username(username, password):
    """A password without a user name authenticates the ``default`` user
    (as redis-py >= 6 does, and Redis accepts even when no password is set);
    a Redis < 6 refuses the two-argument AUTH and gets ``AUTH PASSWORD``."""
    return "default" if password and not username else username


@contextlib.contextmanager
def redis_errors(url, what="broker"):
    """Translate this client's failures into the status policy (CRITICAL)."""
    shown = redact_url(url)
    try:
        yield
    except alarm():
        raise silent(what, shown)
    except MasterNotFound:
        raise Unreachable("cannot reach %s %s: no sentinel answered with the master's "
                          "address (sentinels down, or master_name unknown to them)" % (what, shown))
    except AuthenticationError as exc:
        raise Unreachable("%s %s refused authentication: %s" % (what, shown, reason(exc)))
    except socket.timeout as exc:
        raise Unreachable("%s %s did not answer in time: %s" % (what, shown, reason(exc)))
    except (Closed, ProtocolError) as exc:
        raise Unreachable("cannot reach %s %s: %s" % (what, shown, reason(exc)))
    except ReplyError as exc:
        text = str(exc)
        if exc.code in ("NOAUTH", "WRONGPASS"):
            raise Unreachable("%s %s refused authentication: %s" % (what, shown, reason(exc)))
        # An ACL that denies a command, or a DB the server does not have:
        # the server refuses us, as a wrong password does.
        if exc.code == "NOPERM" or "invalid DB index" in text or "DB index is out of range" in text:
            raise Unreachable("%s %s refused us: %s" % (what, shown, reason(exc)))
        raise
    except OSError as exc:  # refused, unreachable, an SSL handshake against a plaintext port
        raise Unreachable("cannot reach %s %s: %s" % (what, shown, reason(exc)))
