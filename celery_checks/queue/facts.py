"""What the queue check knows of one queue, whichever broker told it."""

from celery_checks.plugin.perfdata import number, plural, seconds, shown

#: a publish stamp this far ahead of the clock it is read against means
#: the producer's and that clock disagree: flagged (AMQP stamps are whole
#: seconds, so up to 1 s ahead is rounding)
CLOCK_TOLERANCE = 2.0


class Depth:
    """One queue as the broker sees it. What most queues leave unset is a
    class attribute until set: 1,000 queues are 1,000 Depths."""

    consumers = None  # RabbitMQ; Redis when counted by broadcast
    unacked = None  # RabbitMQ's management API; Redis with --unacked-per-queue
    workers = None  # Redis, counted: the nodes that said they consume it
    oldest = None  # seconds the oldest waiting message waited (0: none waits)
    unstamped = False  # messages wait, but the oldest carries no publish time
    ahead = None  # seconds its stamp is ahead of the clock (beyond the tolerance)
    absence = None  # Redis: why it is missing, and where it is instead

    def __init__(self, name, waiting=None, buckets=(), consumers=None, unacked=None,
                 declared=True):
        self.name = name
        self.waiting = waiting  # None: the queue does not exist (RabbitMQ)
        self.buckets = list(buckets)  # [(priority step, count)] on Redis
        if consumers is not None:
            self.consumers = consumers
        if unacked is not None:
            self.unacked = unacked
        # Redis: False when no message waits and no binding names the queue
        # under the key prefix and DB checked (nobody ever declared it).
        self.declared = declared

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
        if self.oldest is not None and self.waiting:
            facts.append("oldest %s" % seconds(self.oldest))
        elif self.unstamped:
            facts.append("oldest: age unknown")
        if self.ahead is not None:
            facts.append("its stamp %ss ahead of the clock" % number(self.ahead, 1))
        if self.workers is not None:
            facts.append("consumed by " + (", ".join(self.workers) or "nobody that answered"))
        return "%s: %s" % (shown(self.name), ", ".join(facts))

    def stamped(self, stamps, now):
        """The oldest from the publish stamps (seconds since the epoch, None
        where a waiting message carries none) of the messages next in line,
        against ``now`` (the clock the ages are read on)."""
        if not self.waiting:
            self.oldest = 0
        elif not stamps or any(stamp is None for stamp in stamps):
            self.unstamped = True
        else:
            age = now - min(stamps)
            if age < -CLOCK_TOLERANCE:
                self.ahead = -age
            self.oldest = max(age, 0.0)


def publish_stamp(envelope, header):
    """A kombu message's publish time: celery-checks' header, else the
    AMQP-style ``timestamp`` property; None when it carries neither."""
    if not isinstance(envelope, dict):
        return None
    for value in ((envelope.get("headers") or {}).get(header),
                  (envelope.get("properties") or {}).get("timestamp")):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


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

    def __init__(self, db, depths=(), unacked=None, absence=None, clock=None):
        self.db = db  # the database number checked
        self.depths = list(depths)
        self.unacked = unacked
        self.absence = absence  # --all-queues found nothing: why, and where instead
        self.clock = clock  # what the ages were read against: "Redis TIME", "this host"
        self.listened = None  # Redis consumers: how the broadcast's listening ended
