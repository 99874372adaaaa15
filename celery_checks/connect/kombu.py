"""kombu, for the checks that speak Celery's own protocol through it (the
workers check on AMQP, its events source, the trigger's publish): a
bounded kombu Connection whose failures are the status policy's, and the
exchanges Celery's remote control and events use."""

import socket
import time

from celery_checks.connect.failures import alarm
from celery_checks.connect.redis import _redis_username
from celery_checks.plugin.policy import Unreachable

from celery_checks.connect.pidbox import PIDBOX_EXCHANGE, REPLY_EXCHANGE  # noqa: F401
EVENT_EXCHANGE = "celeryev"


def kombu_redis_compat():
    """Make kombu's Redis transport behave alike on old and new releases;
    call before opening a kombu Connection to Redis.

    - kombu < 5.3 (Debian 12: 5.2.4) gives its asynchronous Redis connection
      a ``disconnect(self)`` while redis-py >= 4.2 calls ``disconnect(error)``
      when a connect attempt fails: every broker that times out or breaks the
      handshake became a TypeError hiding the reason. Accept the argument.
    - a password without a user name goes to the ``default`` user, as in
      :func:`redis_client`.
    """
    import inspect

    from kombu.transport import redis as transport

    original = transport.Channel._connparams
    if getattr(original, "celery_checks_compat", False):
        return

    def _connparams(self, asynchronous=False):
        params = original(self, asynchronous)
        params["username"] = _redis_username(params.get("username"), params.get("password"))
        cls = params.get("connection_class")
        if cls is not None and len(inspect.signature(cls.disconnect).parameters) == 1:
            class Connection(cls):
                def disconnect(self, *args):
                    cls.disconnect(self)

            params["connection_class"] = Connection
        return params

    _connparams.celery_checks_compat = True
    transport.Channel._connparams = _connparams


class Broker:
    """A kombu connection bounded by the network timeout, whose failures
    become :class:`Unreachable` naming the redacted URL."""

    def __init__(self, target, timeout):
        from kombu import Connection

        from celery_checks.connect.options import bounded_timeouts

        self.url = target.url
        self.shown = target.shown
        self.kind = target.transport
        options = bounded_timeouts(target.options, timeout, self.kind)
        options.setdefault("max_retries", 0)
        if self.kind == "redis":
            kombu_redis_compat()  # kombu 5.2 + redis-py 4.3 (Debian 12)
        self.connection = Connection(
            self.url, connect_timeout=timeout, transport_options=options,
            heartbeat=0,
        )
        self.errors = ()

    def __enter__(self):
        conn = self.connection
        self.errors = tuple(conn.connection_errors) + tuple(conn.channel_errors) + (OSError,)
        try:
            # One attempt: connect() would retry after 2 s, past a short -t.
            conn.ensure_connection(max_retries=0, reraise_as_library_errors=False)
            self.channel = conn.channel()
        except self.errors as exc:
            self.fail(exc)
        return self

    def __exit__(self, *exc_info):
        try:
            self.connection.release()
        except alarm():  # -t fired: not ours to swallow
            raise
        except Exception:  # closing a broken connection: nothing to save
            pass

    def fail(self, exc):
        from celery_checks.connect.amqp import describe_amqp_error

        reason = describe_amqp_error(exc) if not isinstance(exc, socket.timeout) else "timed out"
        raise Unreachable("cannot reach broker %s: %s" % (self.shown, reason))

    def drain(self, deadline):
        """Deliver messages to the consumers until ``deadline()``, then
        those already on their way (a short poll until none comes)."""
        for _ in range(10000):
            remaining = deadline() - time.monotonic()
            try:
                self.connection.drain_events(timeout=max(remaining, 0.01))
            except socket.timeout:
                if remaining <= 0.01:
                    return
            except self.errors as exc:
                self.fail(exc)

    def broadcast(self, command, reply_to=None, ticket=None, ttl=1.0):
        """Publish a pidbox broadcast, the message ``celery control`` sends."""
        from kombu import Exchange, Producer

        body = {"method": command, "arguments": {}, "destination": None,
                "pattern": None, "matcher": None}
        if reply_to:
            body.update(ticket=ticket, reply_to={"exchange": REPLY_EXCHANGE, "routing_key": reply_to})
        exchange = Exchange(PIDBOX_EXCHANGE, type="fanout", durable=False,
                            delivery_mode="transient")
        try:
            Producer(self.channel).publish(
                body, exchange=exchange, declare=[exchange], serializer="json",
                headers={"clock": 0, "expires": time.time() + ttl}, retry=False,
            )
        except self.errors as exc:
            self.fail(exc)

    def private_queue(self, name, exchange, routing_key):
        """A queue only we consume: gone when we stop (auto-delete, and on
        RabbitMQ exclusive with x-expires as a second net). On Redis no
        expiry: kombu would then track the binding in a shared key."""
        from kombu import Queue

        amqp = self.kind == "amqp"
        return Queue(
            name, exchange=exchange, routing_key=routing_key, durable=False,
            auto_delete=True, exclusive=amqp, expires=30 if amqp else None,
            message_ttl=30 if amqp else None,
        )

    def declare(self, queue):
        try:
            queue(self.channel).declare()
        except self.errors as exc:
            self.fail(exc)

    def poll(self, queue, deadline):
        """Yield messages from ``queue`` until the deadline.

        Polled with basic_get rather than consumed: kombu's Redis consumer
        keeps a 1 s BRPOP in flight that closing has to wait for, which
        would cost every run a second.
        """
        bound = queue(self.channel)
        pause = 0.001
        while True:
            # Read before looking at the clock: a message already delivered
            # is never left unread because the deadline passed meanwhile.
            try:
                message = bound.get(no_ack=True, accept=["json"])
            except self.errors as exc:
                self.fail(exc)
            if message is not None:
                pause = 0.001
                yield message
                continue
            remaining = deadline() - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.02)

    def delete(self, queue):
        try:
            queue(self.channel).delete()
        except alarm():  # -t fired: not ours to swallow
            raise
        except Exception:  # already auto-deleted, or the broker went away
            pass


def decoded(message):
    """The message body, or None when it is not JSON (not a Celery reply)."""
    from kombu.exceptions import ContentDisallowed, DecodeError

    try:
        return message.payload
    except (ContentDisallowed, DecodeError, ValueError, TypeError):
        return None
