"""The sources of worker facts, behind one interface.

A source is a module of this package with ``nodes(asking)``, returning the
:class:`~celery_checks.workers.replies.Reply` of every node it heard of (an
``Observed`` list). :class:`Asking` is all a source gets: the broker, the
run's deadline, how long to wait, and the inventory, so that it can end as
soon as every expected node answered.
"""

import importlib
import time

SOURCES = {  # --source: the module whose nodes() answers it
    "ping": "celery_checks.workers.ping",
    "events": "celery_checks.workers.events",
    "stdin": "celery_checks.workers.stdin",
}


class Asking:
    def __init__(self, broker, deadline, wait, inventory, begun=None):
        self.broker = broker  # connect.targets.Target
        self.deadline = deadline  # plugin.runner.Deadline
        self.wait = wait  # --reply-timeout (ping) or --window (events), seconds
        self.inventory = inventory
        self.begun = begun  # plugin.runner.Begun: what begin() sent, or None

    def io_timeout(self):
        """Per-call socket timeout: what -t leaves after the wait."""
        return self.deadline.network_timeout(self.wait)

    def budget_end(self):
        """When listening must stop so the answer is out before -t fires."""
        return self.deadline.started + self.deadline.timeout - 0.5


def nodes(source, asking):
    """The replies of ``source`` (a key of SOURCES); its module imported only now."""
    return importlib.import_module(SOURCES[source]).nodes(asking)


def begin(args, deadline):
    """runner.begin's ``start``: the ping goes out before the check imports
    nagiosplugin and its evaluation (~25 ms), so the workers answer while
    they load; nodes() takes it (Asking.begun). Nothing for the other
    sources: the events source's window is the wait, stdin no broker."""
    if args.source != "ping":
        return None
    from celery_checks.workers import ping

    return ping.broadcast(Asking(args.broker, deadline, args.reply_timeout, None))


def misplaced(asking):
    """Why nobody answered on a Redis broker, when the workers are bound to
    Celery's broadcast exchange under another key prefix or in another DB of
    the same server: a note for the status line, else None. Best effort,
    within half what -t leaves: a failure here leaves the note out."""
    from celery_checks.connect.failures import alarm
    from celery_checks.connect.kombu import PIDBOX_EXCHANGE
    from celery_checks.connect.layout import RedisLayout, exchange_bound_elsewhere
    from celery_checks.connect.redis import redis_client
    from celery_checks.plugin.perfdata import quoted, shown

    broker = asking.broker
    layout = RedisLayout(broker.options)
    timeout = asking.io_timeout()
    deadline = min(time.monotonic() + timeout / 2, asking.budget_end())
    client = redis_client(broker.url, broker.options, timeout)
    try:
        db = client.db
        places = exchange_bound_elsewhere(client, layout, PIDBOX_EXCHANGE, db, deadline)
    except alarm():
        raise  # -t fired: the run's own answer, not a missing hint
    except Exception:  # a hint only: the answer stays "no worker answered"
        return None
    finally:
        client.close()
    if not places:
        return None
    other_db, prefix = places[0]
    where = ["in DB %d" % other_db] if other_db != db else []
    if prefix != layout.prefix:
        where.append("under prefix %s" % quoted(prefix))
    text = "no worker answered in DB %d under key prefix %s; workers found %s" % (
        db, quoted(layout.prefix), " ".join(where))
    if other_db == db:
        text += " (-O global_keyprefix=%s)" % shown(prefix) if prefix \
            else " (without -O global_keyprefix)"
    return text


def options_used(source, broker):
    """The -O keys this run reads: the Redis ping (connect.redis alone) its key
    layout and how to find a sentinel master; kombu (the AMQP ping, the
    events) every key its transport for the URL reads but those of an
    acknowledging consumer; the stdin source none (it talks to no broker)."""
    from celery_checks.connect import options

    if source == "stdin":
        return ()
    if source == "ping" and broker.transport == "redis":
        return ("global_keyprefix", "sep", "priority_steps", "fanout_prefix") \
            + options.sentinel_options_used(broker.url)
    if broker.transport == "amqp":
        known = options.AMQP_TRANSPORT_OPTIONS
    elif broker.parsed.scheme == "sentinel":
        known = options.SENTINEL_TRANSPORT_OPTIONS
    else:
        known = options.REDIS_TRANSPORT_OPTIONS
    return tuple(key for key in known if key not in options.KOMBU_CONSUMER_OPTIONS)
