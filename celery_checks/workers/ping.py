"""--source ping: one broadcast ``ping`` on the celery.pidbox exchange, the
messages ``celery inspect ping`` exchanges, ended as soon as the inventory
is complete. On Redis with the checks' own client alone (kombu's import
would add half again to a run's start-up), on AMQP through kombu."""

import json
import sys
import time

# Only what sending the ping needs is imported before it goes out
# (sources.begin): replies imports nagiosplugin through perfdata, AMQP kombu.
from celery_checks.connect.pidbox import LATE, REPLY_EXCHANGE, grace, random_id


class Sent:
    """The ping broadcast: its session (the reply queue bound, still open:
    ``with`` closes it), ticket, when it went out and how many mailboxes
    it reached (None on AMQP, which does not say)."""

    def __init__(self, pinger, ticket, sent, receivers):
        self.pinger, self.ticket, self.sent, self.receivers = pinger, ticket, sent, receivers

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return self.pinger.__exit__(*exc_info)


def broadcast(asking):
    """Bind a reply queue and broadcast the ping (a :class:`Sent`): the
    workers drop it after --reply-timeout."""
    # random ids as uuid4().hex reads (uuid imports platform: ~2 ms)
    oid, ticket = random_id(), random_id()
    # On Redis, connect.redis alone: kombu would add half again to the start-up
    # that dominates a run (connect/pidbox.py). AMQP goes through kombu.
    session = RedisPing if asking.broker.transport == "redis" else KombuPing
    pinger = session(asking, oid).__enter__()
    try:
        sent = time.monotonic()
        # on Redis, the number of mailboxes it reached: once all answered,
        # nobody else will
        return Sent(pinger, ticket, sent, pinger.broadcast(ticket))
    except BaseException:
        pinger.__exit__(*sys.exc_info())
        raise


def nodes(asking):
    """Replies to one broadcast ping (sent already when the check began:
    sources.begin); ends early once every mailbox the broadcast reached
    has answered (Redis), or the inventory is complete."""
    from celery_checks.workers.replies import Observed, Reply, excerpt

    replies = {}
    ping = asking.begun.result() if asking.begun is not None else broadcast(asking)
    with ping:
        sent, receivers, ticket = ping.sent, ping.receivers, ping.ticket
        # The reply timeout counts from the broadcast, not from the start:
        # on a busy host connecting and declaring the reply queue took most
        # of it, and replies that came in time were ignored ("3 of 3
        # expected workers missing" while they had answered). LATE more
        # for a reply sent just before the broadcast expired; and replies()
        # takes every reply already delivered before it stops.
        deadline = [sent if receivers == 0 else min(sent + asking.wait + LATE,
                                                        asking.budget_end())]
        ended = "waited the reply timeout from the broadcast"
        if receivers == 0:
            ended = "no worker's mailbox received the ping"
        for body, headers in ping.pinger.replies(lambda: deadline[0]):
            if headers.get("ticket") != ticket or not isinstance(body, dict):
                continue  # a reply to someone else's ping
            for name, answer in body.items():
                ok = isinstance(answer, dict) and answer.get("ok") == "pong"
                status = "OK" if ok else "replied %s" % excerpt(json.dumps(answer, default=str))
                replies[name] = Reply(name, ok=ok, status=status, rtt=time.monotonic() - sent)
            if receivers is not None and len(replies) >= receivers:
                deadline[0] = time.monotonic()
                ended = "every mailbox the ping reached answered (%d)" % receivers
            elif asking.inventory and asking.inventory.complete(
                    n for n, r in replies.items() if r.ok):
                # AMQP (no count), or a mailbox reached that has not answered yet
                now = time.monotonic()
                deadline[0] = min(deadline[0], now + grace(now - sent, len(replies)))
                ended = "every expected node answered, then a grace for others"
    observed = Observed(replies.values())
    observed.ended = ended
    return observed


class KombuPing:
    """The ping's reply queue and broadcast through kombu (AMQP)."""

    def __init__(self, asking, oid):
        from kombu import Exchange

        from celery_checks.connect.kombu import Broker

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
        """None: AMQP does not say how many queues a fanout reached."""
        self.broker.broadcast("ping", reply_to=self.oid, ticket=ticket, ttl=self.asking.wait)
        return None

    def replies(self, deadline):
        from celery_checks.connect.kombu import decoded

        for message in self.broker.poll(self.queue, deadline):
            yield decoded(message), message.headers or {}


class RedisPing:
    """The ping on Redis: connect/pidbox.py's broadcast, connect.redis alone."""

    def __init__(self, asking, oid):
        from celery_checks.connect.pidbox import RedisBroadcast

        self.session = RedisBroadcast(asking.broker, asking.io_timeout(), asking.wait, oid)

    def __enter__(self):
        self.session.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self.session.__exit__(*exc_info)

    def broadcast(self, ticket):
        return self.session.broadcast("ping", ticket)

    def replies(self, deadline):
        return self.session.replies(deadline)
