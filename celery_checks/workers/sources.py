"""The sources of worker facts, behind one interface.

A source is a module of this package with ``nodes(asking)``, returning the
:class:`~celery_checks.workers.replies.Reply` of every node it heard of (an
``Observed`` list). :class:`Asking` is all a source gets: the broker, the
run's deadline, how long to wait, and the inventory, so that it can end as
soon as every expected node answered.
"""

import importlib

# Once every expected node answered, unexpected ones get a grace to answer
# too (connect/pidbox.py: a multiple of the slowest reply, bounded).
from celery_checks.connect.pidbox import GRACE_MAX, GRACE_MIN, grace  # noqa: F401

SOURCES = {  # --source: the module whose nodes() answers it
    "ping": "celery_checks.workers.ping",
    "events": "celery_checks.workers.events",
    "stdin": "celery_checks.workers.stdin",
}


class Asking:
    def __init__(self, broker, deadline, wait, inventory):
        self.broker = broker  # connect.urls.Target
        self.deadline = deadline  # plugin.runner.Deadline
        self.wait = wait  # --reply-timeout (ping) or --window (events), seconds
        self.inventory = inventory

    def io_timeout(self):
        """Per-call socket timeout: what -t leaves after the wait."""
        return self.deadline.network_timeout(self.wait)

    def budget_end(self):
        """When listening must stop so the answer is out before -t fires."""
        return self.deadline.started + self.deadline.timeout - 0.5


def nodes(source, asking):
    """The replies of ``source`` (a key of SOURCES); its module imported only now."""
    return importlib.import_module(SOURCES[source]).nodes(asking)


def options_used(source, broker):
    """The -O keys this run reads: the Redis ping (redis-py alone) its key
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
