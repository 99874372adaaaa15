"""The queues of a RabbitMQ vhost from its management API: ready,
unacknowledged, consumers and the oldest ready message's timestamp of every
queue, in one HTTP request (http.client alone: no pika, celery or kombu).

RabbitMQ refreshes these figures every collect_statistics_interval (5 s by
default): they may lag that much behind the queue itself.
"""

import time

from celery_checks.connect.layout import celery_internal
from celery_checks.connect.management import get_json, queues_path
from celery_checks.plugin.perfdata import shown
from celery_checks.plugin.policy import CheckError
from celery_checks.queue.facts import Depth, Findings

COLUMNS = ("name", "messages_ready", "messages_unacknowledged", "consumers",
           "head_message_timestamp")


def management_depths(api, vhost, queues, timeout, all_queues=False, oldest=False):
    """Findings for ``queues`` (every non-internal queue with
    ``all_queues``) from one GET /api/queues/VHOST."""
    rows = get_json(api, queues_path(vhost), timeout, "columns=" + ",".join(COLUMNS))
    now = time.time()
    if not isinstance(rows, list):
        raise CheckError("management API %s: unexpected answer for the queues of vhost %s"
                         % (api.shown, shown(vhost)))
    found = {row.get("name"): row for row in rows if isinstance(row, dict)}
    if all_queues:
        queues = sorted(name for name in found if isinstance(name, str)
                        and not celery_internal(name))
    absence = NoQueues("no queues on vhost %s (Celery's own left out)" % shown(vhost)) \
        if all_queues and not queues else None
    depths = []
    for queue in queues:
        row = found.get(queue)
        if row is None:
            depths.append(Depth(queue))
            continue
        if not isinstance(row.get("messages_ready"), int):
            # A queue declared since RabbitMQ last collected statistics.
            raise CheckError("management API %s has no figures for queue %s yet (RabbitMQ "
                             "collects them every 5 s by default): try again" % (
                                 api.shown, shown(queue)))
        depth = Depth(queue, row["messages_ready"], consumers=_count(row.get("consumers")),
                      unacked=_count(row.get("messages_unacknowledged")))
        if oldest:
            stamp = row.get("head_message_timestamp")
            depth.stamped([stamp if isinstance(stamp, (int, float)) and stamp > 0 else None], now)
        depths.append(depth)
    return Findings(None, depths, absence=absence,
                    clock="this host's clock" if oldest else None)


class NoQueues:
    """--all-queues found none on RabbitMQ (Redis says where they are instead)."""

    places = ()

    def __init__(self, words):
        self.words = words

    def text(self):
        return self.words


def _count(value):
    return value if isinstance(value, int) and value >= 0 else 0
