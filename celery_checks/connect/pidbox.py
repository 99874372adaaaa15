"""Celery's remote control on Redis with connect/redis.py's client alone: one broadcast on
the celery.pidbox exchange and its replies, the messages ``celery inspect``
exchanges (kombu's import would add half again to a check's start-up).

The same exchange of messages as kombu's Redis transport makes
(kombu/transport/redis.py and virtual/base.py):

- the reply queue is a list; a worker finds it through the binding set
  ``_kombu.binding.reply.celery.pidbox`` (member ``oid<sep><sep>queue``),
  mirrored in ``_kombu.binding_permanent.…`` as kombu >= 5.6 does so its
  binding sweep keeps the table while we wait;
- the broadcast is a PUBLISH on ``/{db}.celery.pidbox`` (fanout_prefix),
  a JSON envelope whose body is base64 JSON;
- ``global_keyprefix`` and ``sep`` transport options are honoured.
Both set members and the list are removed on the way out.

Used by check_celery_workers' ping and check_celery_queue's consumers.
"""

import json
import os
import time

from celery_checks.connect.layout import RedisLayout
from celery_checks.plugin.policy import Unreachable

PIDBOX_EXCHANGE = "celery.pidbox"
REPLY_EXCHANGE = "reply.celery.pidbox"
# Past the expiry a broadcast carries, replies sent just before it may still
# be on their way: listened for this much longer.
LATE = 0.2
# Once the answer is known, others get a grace to answer too: 3 times the
# mean time between the replies so far (the slowest reply's time over their
# number: one node's reply time, or the pace at which many come in; another
# node answers among them, most likely within a few such gaps of the last),
# within these bounds, so a fast local broker is not slowed to a remote's
# pace. Measured (docs/performance.md): with 50 solo workers the slowest
# reply alone made every run wait the full 0.2 s.
GRACE_FACTOR, GRACE_MIN, GRACE_MAX = 3, 0.03, 0.2
# Redis times a blocked pop out on its own timer (10 times a second by
# default), so up to this late: the last stretch of a wait is polled
# instead, first after 1 ms, then at most every 5 ms.
SERVER_TIMER = 0.15
POLL_FIRST, POLL_MAX = 0.001, 0.005
# Replies taken per round trip once one has come (_take_delivered).
TAKEN = 32


def grace(slowest, replies=1):
    """How long to listen on after the slowest of the ``replies`` the
    answer needed."""
    return min(max(slowest * GRACE_FACTOR / max(replies, 1), GRACE_MIN), GRACE_MAX)


def random_id():
    """A random id as uuid4().hex reads (uuid imports platform: ~2 ms)."""
    return os.urandom(16).hex()


class RedisBroadcast:
    """``with RedisBroadcast(target, timeout, ttl) as b: b.broadcast(method,
    ticket); for body, headers in b.replies(deadline): ...``"""

    def __init__(self, target, timeout, ttl, oid=None):
        from celery_checks.connect.redis import redis_client

        self.target, self.ttl = target, ttl
        self.oid = oid or random_id()
        options = target.options
        layout = RedisLayout(options)
        reply_queue = "%s.%s" % (self.oid, REPLY_EXCHANGE)
        self.queue = layout.prefix + reply_queue
        self.member = layout.binding_member(self.oid, reply_queue)
        self.tables = layout.binding_tables(REPLY_EXCHANGE)
        self.lists = [key for _step, key in layout.keys(reply_queue)]
        self.client = redis_client(target.url, options, timeout)
        self.layout, self.fanout = layout, options.get("fanout_prefix", True)
        self.bound = False

    def errors(self):
        from celery_checks.connect.redis import redis_errors

        return redis_errors(self.target.url, self.target.role)

    def __enter__(self):
        with self.errors():
            self.topic = self.layout.fanout_topic(PIDBOX_EXCHANGE, self.client.db, self.fanout)
            # One MULTI: kombu's binding sweep (a Lua script a worker runs)
            # deletes the binding table unless the permanent set has a
            # member; between two separate SADDs it could delete the table
            # with our member in it, and every reply would be dropped.
            self.bound = True
            self.client.transaction([("SADD", table, self.member)
                                     for table in reversed(self.tables)])  # the permanent set first
        return self

    def __exit__(self, *exc_info):
        try:
            if self.bound:
                with self.errors():
                    self.client.pipeline([("SREM", table, self.member) for table in self.tables]
                                         + [("DEL",) + tuple(self.lists)])
        except Unreachable:
            if exc_info[0] is None:
                raise
        finally:
            self.client.close()

    def broadcast(self, method, ticket, arguments=None):
        """PUBLISH the command every worker's mailbox receives; workers drop
        it ``ttl`` seconds from now. Returns how many mailboxes received it
        (PUBLISH's count of subscribers: one per worker listening on this
        server and DB): once that many answered, no other reply can come."""
        message = broadcast_message(method, ticket, self.oid, time.time() + self.ttl, arguments)
        with self.errors():
            return self.client.call("PUBLISH", self.topic, message)

    def replies(self, deadline):
        """(body, headers) of each reply until ``deadline()`` (a monotonic
        time, asked again after every reply: callers move it). While the
        deadline is far, a blocking pop returns a reply the moment it lands,
        and what landed beside it is taken in one more round trip; the last
        stretch (the grace, mostly) is polled, as Redis ends a blocked pop
        only on its own timer. Past the deadline, replies already delivered
        are still read."""
        from celery_checks.connect.redis import ReplyError

        blocking, pause, popped = True, POLL_FIRST, False
        while True:
            remaining = deadline() - time.monotonic()
            block = blocking and remaining > 2 * SERVER_TIMER
            with self.errors():
                if block and not popped:
                    # below the socket timeout, which would read as an outage
                    wait = min(remaining - SERVER_TIMER, self.client.timeout / 2)
                    try:
                        reply = self.client.call("BRPOP", self.queue, "%.3f" % wait)
                    except ReplyError as exc:
                        if "timeout" not in str(exc):
                            raise
                        blocking = False  # Redis < 6 blocks for whole seconds only
                        continue
                    raws, popped = ([reply[1]], True) if reply else ([], False)
                else:
                    raws, popped = self._take_delivered(), False
                    if not raws and remaining <= 0:
                        return
                    if not raws and not block:
                        time.sleep(min(pause, remaining))
                        pause = min(pause * 2, POLL_MAX)
                        continue
                    pause = POLL_FIRST
            for raw in raws:
                envelope = json_or_none(raw)
                if isinstance(envelope, dict):
                    yield envelope_body(envelope), envelope.get("headers") or {}

    def _take_delivered(self):
        """Every reply waiting in the list, oldest first: TAKEN pops in one
        round trip, again while a batch comes back full. One pop per round
        trip made the check wait for Redis's turn on a busy CPU once per
        reply (50 workers: docs/performance.md). RPOP, as kombu's own
        consumer pops: an ACL that lets kombu consume lets us read."""
        taken = []
        while True:
            batch = self.client.pipeline([("RPOP", self.queue)] * TAKEN)
            taken += [raw for raw in batch if raw is not None]
            if batch[-1] is None:
                return taken


def broadcast_message(method, ticket, oid, expires, arguments=None):
    """The PUBLISHed text of a remote-control command, as kombu's Mailbox
    sends it on Redis: replies go to ``oid`` on the reply exchange, workers
    drop it after ``expires`` (a time.time())."""
    import base64

    body = json.dumps({
        "method": method, "arguments": arguments or {}, "destination": None,
        "pattern": None, "matcher": None, "ticket": ticket,
        "reply_to": {"exchange": REPLY_EXCHANGE, "routing_key": oid},
    })
    return json.dumps({
        "body": base64.b64encode(body.encode("utf-8")).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"clock": 0, "expires": expires},
        "properties": {
            "delivery_mode": 1, "priority": 0, "body_encoding": "base64",
            "delivery_tag": random_id(),
            "delivery_info": {"exchange": PIDBOX_EXCHANGE, "routing_key": ""},
        },
    })


def json_or_none(raw):
    try:
        return json.loads(raw)
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        return None


def envelope_body(envelope):
    """The JSON body of a kombu Redis message envelope, or None."""
    import base64
    import binascii

    if "json" not in str(envelope.get("content-type") or ""):
        return None
    body = envelope.get("body")
    properties = envelope.get("properties") or {}
    if properties.get("body_encoding") == "base64" and isinstance(body, str):
        try:
            body = base64.b64decode(body)
        except (binascii.Error, ValueError):
            return None
    return json_or_none(body)
