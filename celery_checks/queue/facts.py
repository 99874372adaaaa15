"""What the queue check knows of one queue, whichever broker told it."""

from celery_checks.plugin.perfdata import plural, shown


class Depth:
    """One queue as the broker sees it."""

    def __init__(self, name, waiting=None, buckets=(), consumers=None, unacked=None,
                 declared=True):
        self.name = name
        self.waiting = waiting  # None: the queue does not exist (RabbitMQ)
        self.buckets = list(buckets)  # [(priority step, count)] on Redis
        self.consumers = consumers  # RabbitMQ only
        self.unacked = unacked  # Redis with --unacked-per-queue only
        # Redis: False when no message waits and no binding names the queue
        # under the key prefix and DB checked (nobody ever declared it).
        self.declared = declared
        self.absence = None  # Redis: why it is missing, and where it is instead

    @property
    def missing(self):
        return self.waiting is None or not self.declared

    def describe(self):
        if self.missing:
            return "%s: %s" % (shown(self.name), "not declared" if self.waiting is not None
                               else "not found")
        facts = ["%d waiting" % self.waiting]
        if any(n for step, n in self.buckets if step):
            facts[0] += " (priority %s)" % ", ".join(
                "%s: %d" % (priorities, n) for priorities, n in _bucket_names(self.buckets) if n)
        if self.consumers is not None:
            facts.append(plural(self.consumers, "consumer"))
        if self.unacked is not None:
            facts.append("%d unacked" % self.unacked)
        return "%s: %s" % (shown(self.name), ", ".join(facts))


def _bucket_names(buckets):
    """[(priorities a bucket holds, count)]: kombu files priority p under the
    largest step <= p, and clamps priorities to 0-9."""
    steps = sorted(step for step, _n in buckets)
    names = []
    for step, count in buckets:
        last = min([s - 1 for s in steps if s > step] + [9])
        names.append(("%d-%d" % (step, last) if last > step else "%d" % step, count))
    return names


class Findings:
    """What one run read from the broker (db and unacked: Redis only)."""

    def __init__(self, db, depths=(), unacked=None, absence=None):
        self.db = db  # the database number checked
        self.depths = list(depths)
        self.unacked = unacked
        self.absence = absence  # --all-queues found nothing: why, and where instead
