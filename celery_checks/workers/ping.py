"""--source ping: one broadcast ``ping`` on the celery.pidbox exchange, the
messages ``celery inspect ping`` exchanges, ended as soon as the inventory
is complete. On Redis with the checks' own client alone (kombu's import
would add half again to a run's start-up), on AMQP through kombu."""

import json
import os
import time

from celery_checks.connect.kombu import PIDBOX_EXCHANGE, REPLY_EXCHANGE, Broker, decoded
from celery_checks.connect.layout import RedisLayout
from celery_checks.plugin.policy import Unreachable
from celery_checks.workers.replies import Reply, excerpt
from celery_checks.workers.sources import grace

# Past the expiry a broadcast carries, replies sent just before it may still
# be on their way: listened for this much longer.
LATE = 0.2


def nodes(asking):
    """Replies to one broadcast ping; ends early once the inventory is complete."""
    replies = {}
    # random ids as uuid4().hex reads (uuid imports platform: ~2 ms)
    oid, ticket = _random_id(), _random_id()
    # On Redis, connect.redis alone: kombu would add half again to the start-up
    # that dominates a run (see RedisPing). AMQP goes through kombu.
    session = RedisPing if asking.broker.transport == "redis" else KombuPing
    with session(asking, oid) as pinger:
        sent = time.monotonic()
        pinger.broadcast(ticket)  # the workers drop it after --reply-timeout
        # The reply timeout counts from the broadcast, not from the start:
        # on a busy host connecting and declaring the reply queue took most
        # of it, and replies that came in time were ignored ("3 of 3
        # expected workers missing" while they had answered). LATE more
        # for a reply sent just before the broadcast expired; and replies()
        # takes every reply already delivered before it stops.
        deadline = [min(sent + asking.wait + LATE, asking.budget_end())]
        for body, headers in pinger.replies(lambda: deadline[0]):
            if headers.get("ticket") != ticket or not isinstance(body, dict):
                continue  # a reply to someone else's ping
            for name, answer in body.items():
                ok = isinstance(answer, dict) and answer.get("ok") == "pong"
                status = "OK" if ok else "replied %s" % excerpt(json.dumps(answer, default=str))
                replies[name] = Reply(name, ok=ok, status=status, rtt=time.monotonic() - sent)
            if asking.inventory and asking.inventory.complete(n for n, r in replies.items() if r.ok):
                now = time.monotonic()
                deadline[0] = min(deadline[0], now + grace(now - sent, len(replies)))
    return list(replies.values())


class KombuPing:
    """The ping's reply queue and broadcast through kombu (AMQP)."""

    def __init__(self, asking, oid):
        from kombu import Exchange

        self.asking, self.oid = asking, oid
        self.broker = Broker(asking.broker, asking.io_timeout())
        reply_exchange = Exchange(REPLY_EXCHANGE, type="direct", durable=False,
                                  delivery_mode="transient")
        self.queue = self.broker.private_queue("%s.%s" % (oid, REPLY_EXCHANGE), reply_exchange, oid)

    def __enter__(self):
        self.broker.__enter__()
        try:
            self.broker.declare(self.queue)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info):
        try:
            self.broker.delete(self.queue)
        finally:
            self.broker.__exit__(*exc_info)

    def broadcast(self, ticket):
        self.broker.broadcast("ping", reply_to=self.oid, ticket=ticket, ttl=self.asking.wait)

    def replies(self, deadline):
        for message in self.broker.poll(self.queue, deadline):
            yield decoded(message), message.headers or {}


class RedisPing:
    """The same exchange of messages as kombu's Redis transport makes, with
    the client of celery_checks.connect.redis (kombu/transport/redis.py and
    virtual/base.py):

    - the reply queue is a list; a worker finds it through the binding set
      ``_kombu.binding.reply.celery.pidbox`` (member ``oid<sep><sep>queue``),
      mirrored in ``_kombu.binding_permanent.…`` as kombu >= 5.6 does so its
      binding sweep keeps the table while we wait;
    - the broadcast is a PUBLISH on ``/{db}.celery.pidbox`` (fanout_prefix),
      a JSON envelope whose body is base64 JSON;
    - ``global_keyprefix`` and ``sep`` transport options are honoured.
    Both set members and the list are removed on the way out.
    """

    def __init__(self, asking, oid):
        from celery_checks.connect.redis import redis_client

        self.asking, self.oid = asking, oid
        options = asking.broker.options
        layout = RedisLayout(options)
        reply_queue = "%s.%s" % (oid, REPLY_EXCHANGE)
        self.queue = layout.prefix + reply_queue
        self.member = layout.binding_member(oid, reply_queue)
        self.tables = layout.binding_tables(REPLY_EXCHANGE)
        self.lists = [key for _step, key in layout.keys(reply_queue)]
        self.client = redis_client(asking.broker.url, options, asking.io_timeout())
        self.layout, self.fanout = layout, options.get("fanout_prefix", True)
        self.bound = False

    def __enter__(self):
        from celery_checks.connect.redis import redis_errors

        with redis_errors(self.asking.broker.url, "broker"):
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
        from celery_checks.connect.redis import redis_errors

        try:
            if self.bound:
                with redis_errors(self.asking.broker.url, "broker"):
                    self.client.pipeline([("SREM", table, self.member) for table in self.tables]
                                         + [("DEL",) + tuple(self.lists)])
        except Unreachable:
            if exc_info[0] is None:
                raise
        finally:
            self.client.close()

    def broadcast(self, ticket):
        from celery_checks.connect.redis import redis_errors

        import base64

        body = json.dumps({
            "method": "ping", "arguments": {}, "destination": None, "pattern": None,
            "matcher": None, "ticket": ticket,
            "reply_to": {"exchange": REPLY_EXCHANGE, "routing_key": self.oid},
        })
        envelope = {
            "body": base64.b64encode(body.encode("utf-8")).decode("ascii"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"clock": 0, "expires": time.time() + self.asking.wait},
            "properties": {
                "delivery_mode": 1, "priority": 0, "body_encoding": "base64",
                "delivery_tag": _random_id(),
                "delivery_info": {"exchange": PIDBOX_EXCHANGE, "routing_key": ""},
            },
        }
        with redis_errors(self.asking.broker.url, "broker"):
            self.client.call("PUBLISH", self.topic, json.dumps(envelope))

    def replies(self, deadline):
        from celery_checks.connect.redis import redis_errors

        pause = 0.001
        while True:
            # Read before looking at the clock: a reply already delivered
            # is never left unread because the deadline passed meanwhile.
            with redis_errors(self.asking.broker.url, "broker"):
                raw = self.client.call("RPOP", self.queue)
            remaining = deadline() - time.monotonic()
            if raw is None:
                if remaining <= 0:
                    return
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.02)
                continue
            pause = 0.001
            envelope = _json(raw)
            if isinstance(envelope, dict):
                yield _envelope_body(envelope), envelope.get("headers") or {}


def _random_id():
    return os.urandom(16).hex()


def _json(raw):
    try:
        return json.loads(raw)
    except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
        return None


def _envelope_body(envelope):
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
    return _json(body)
