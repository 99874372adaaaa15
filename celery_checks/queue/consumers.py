"""Who consumes each queue on Redis, which does not know its consumers:
the online workers say, in their replies to one ``active_queues``
broadcast (what ``celery inspect active_queues`` asks), through
connect/pidbox.py (the checks' own Redis client alone). Listening ends as soon as every
worker the broadcast reached has answered (Redis counts them) or every
threshold can be judged, else after --reply-timeout from the broadcast."""

import time

from celery_checks.connect.pidbox import LATE, RedisBroadcast, grace, random_id


def count_consumers(target, depths, wait, deadline, ranges):
    """Set ``consumers`` and ``workers`` of each Depth found; ``ranges``
    are the nagiosplugin Ranges the counts will be judged by. Returns how
    the listening ended, in words (for -vv)."""
    asked = [depth for depth in depths if not depth.missing]
    consuming = {}  # node -> the queue names it consumes
    ticket = random_id()
    with RedisBroadcast(target, deadline.network_timeout(wait), wait) as session:
        sent = time.monotonic()
        receivers = session.broadcast("active_queues", ticket)  # mailboxes reached
        # Counted from the broadcast (see workers/ping.py), LATE more for a
        # reply sent just before the workers dropped the broadcast.
        end = [sent if receivers == 0 else min(sent + wait + LATE,
                                                deadline.started + deadline.timeout - 0.5)]
        ended = "no worker's mailbox received the broadcast" if receivers == 0 \
            else "waited the reply timeout from the broadcast"
        for body, headers in session.replies(lambda: end[0]):
            if headers.get("ticket") != ticket or not isinstance(body, dict):
                continue  # a reply to somebody else's broadcast
            for node, queues in body.items():
                if isinstance(queues, list):
                    consuming[node] = {q.get("name") for q in queues if isinstance(q, dict)}
            if len(consuming) >= receivers:  # nobody else can answer
                end[0] = time.monotonic()
                ended = "every mailbox the broadcast reached answered (%d)" % receivers
            elif judged(asked, consuming, ranges):
                now = time.monotonic()
                end[0] = min(end[0], now + grace(now - sent, len(consuming)))
                ended = "ended once every verdict was known"
    for depth in asked:
        depth.workers = sorted(node for node, names in consuming.items() if depth.name in names)
        depth.consumers = len(depth.workers)
    return "%d %s replied; %s" % (
        len(consuming), "worker" if len(consuming) == 1 else "workers", ended)


def judged(depths, consuming, ranges):
    """True when more replies cannot change any verdict: every queue with
    waiting messages has a consumer (no orphan), and each count is where
    no further consumer moves it across a range's edge."""
    for depth in depths:
        count = sum(1 for names in consuming.values() if depth.name in names)
        if depth.waiting and not count:
            return False
        if not all(final(count, limit) for limit in ranges):
            return False
    return True


def final(count, limit):
    """Whether ``limit`` (a Range) gives every count >= ``count`` the same
    verdict: past its end, or inside a range open to the top."""
    return count > limit.end or (count >= limit.start and limit.end == float("inf"))
