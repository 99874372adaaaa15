"""check_celery_heartbeat: does a heartbeat go through each queue in time?

``trigger_celery_heartbeat`` (cron) or celery beat publishes a tiny task to
each queue; a worker of an app that called ``celery_checks.install(app)``
runs it and records the start in the heartbeat store (celery_checks/store/heartbeats.py has
the key layout and the clock rule). This check reads the store only: it
imports redis, not celery, and asks once, in one round trip (TIME and one
HMGET per queue), so every age is measured on the store's clock.

acquire:  Heartbeats reads the records (one round trip; one SCAN more only
          for a queue never seen), QueueHeartbeat derives age and wait
evaluate: the age (-w/-c) and the wait (--latency-*) are Thresholds worded
          by the queue's diagnosis: healthy, trigger stale (nothing
          published), trigger failing, stuck (published, not started);
          a queue never seen is a Condition (--missing-state)
present:  HeartbeatSummary words the status line and the long output

Options and --help: heartbeat/options.py.
"""

import textwrap
import time

from celery_checks.connect.options import sentinel_options_used, unused_options_line
from celery_checks.plugin import runner
from celery_checks.plugin.contexts import Condition, Threshold
from celery_checks.plugin.perfdata import Labels, seconds, unique_label, violation
from celery_checks.plugin.policy import nagios_state
from celery_checks.plugin.resource import Resource
from celery_checks.plugin.summary import ProblemSummary
from celery_checks.heartbeat.options import parse_args
from celery_checks.store import heartbeats as store

#: the -O keys the check reads (and, for a sentinel:// store, how to find
#: its master): the store is Redis, read with connect/redis.py alone.
STORE_OPTIONS_USED = ("global_keyprefix",)
# A RabbitMQ worker whose app names no store runs the heartbeat and cannot
# record it (its log says why): it reads like a worker without install(app).
INSTALL_HINT = "no consumer, or its app lacks install(app) or checks_store_url?"

# ------------------------------------------------------------------- acquire

class QueueHeartbeat:
    """One queue's record, read at store time ``now``. What a healthy
    queue's record lacks is a class attribute until set: 1,000 queues are
    1,000 of these."""

    failure = None  # the trigger's last attempt failed (its next publish clears it)
    wait = None  # how long the heartbeat waiting now has waited
    gap = None  # nothing published between the last start and the one waiting now
    published_ago = None

    def __init__(self, name, record, now):
        self.name = name
        self.record = record
        started, pending_since = record.get("started"), record.get("pending_since")
        self.started, self.pending = started is not None, pending_since is not None
        self.seen = self.started or self.pending
        self.elsewhere = []  # [(db, prefix)] holding this queue's record (store.places_elsewhere)
        if record.get("failed") is not None:
            self.failure = textwrap.shorten(record.get("failure") or "?", 90, placeholder="...")
        latency = record.get("latency")
        if pending_since is not None:
            self.wait = wait = max(0.0, now - pending_since)
            latency = wait if latency is None else max(latency, wait)
            if started is not None:  # the trigger's gap, not the queue's wait
                self.gap = max(0.0, pending_since - started)
        if "published" in record:
            self.published_ago = max(0.0, now - record["published"])
        self.age = max(0.0, now - started) if started is not None else self.wait
        self.latency = None if latency is None else max(0.0, latency)

    @property
    def worker(self):
        return self.record.get("worker", "")

    @property
    def healthy(self):
        return self.started and not self.pending and not self.failure

    def diagnosis(self, limit=None, age_bound=None, wait_bound=None):
        """Why this queue's heartbeat is late, in words. A queue with a
        heartbeat waiting is stuck, unless that heartbeat was published only
        after a gap in publishing longer than ``limit`` (the warning range)
        and has not yet waited that long: then the trigger was stale.
        ``age_bound`` / ``wait_bound``: the threshold the age or the wait
        broke, so that its value shows enough decimals to differ from it."""
        age = seconds(self.age, age_bound) if self.age is not None else "?"
        wait = "?" if self.wait is None else seconds(
            self.wait, wait_bound if self.started else wait_bound or age_bound)
        if not self.started:
            return "%s: first heartbeat waiting %s, none started yet: %s" % (
                self.name, wait, INSTALL_HINT)
        if self.pending:
            if limit is not None and limit.match(self.wait) and not limit.match(self.gap):
                return "%s trigger stale: last heartbeat %s ago, next published only %s ago" % (
                    self.name, age, wait)
            return "%s stuck: heartbeat waiting %s, last started %s ago" % (
                self.name, wait, age)
        if self.failure:
            return "%s trigger failing: last heartbeat %s ago; %s" % (
                self.name, age, self.failure)
        return "%s trigger stale: last heartbeat %s ago, none published since" % (
            self.name, age)

    def brief(self):
        """The queue in a few words for an OK status line: "healthy" only
        when its last heartbeat started and none is waiting."""
        if not self.seen:
            return "%s never seen" % self.name
        if not self.started:
            return "%s: first heartbeat waiting %s, none started yet" % (
                self.name, seconds(self.wait))
        text = "heartbeat %s ago" % seconds(self.age)
        if self.pending:
            return "%s: last %s, next waiting %s" % (self.name, text, seconds(self.wait))
        if self.record.get("latency") is not None:
            text += ", waited %s" % seconds(self.record["latency"])
        if self.failure:
            return "%s: %s, trigger failing" % (self.name, text)
        return "%s healthy: %s" % (self.name, text)

    def describe(self):
        if not self.seen:
            text = "%s: never seen" % self.name
            if self.failure:
                text += ", trigger failing: %s" % self.failure
            if self.elsewhere:
                text += ", a record exists %s" % _places(self.elsewhere)
            return text
        facts = []
        if self.started:
            facts.append("started %s ago by %s" % (seconds(self.age), self.worker or "?"))
        else:
            facts.append("none started yet")
        if self.record.get("latency") is not None:
            facts.append("waited %s" % seconds(self.record["latency"]))
        if self.pending:
            facts.append("one waiting %s" % seconds(self.wait))
        if self.failure:
            facts.append("trigger failing: %s" % self.failure)
        if self.published_ago is not None:
            facts.append("last published %s ago by %s" % (
                seconds(self.published_ago), self.record.get("publisher", "?")))
        return "%s: %s" % (self.name, ", ".join(facts))


def _prefixes(prefixes):
    return ", ".join("-O global_keyprefix=%s" % p if p else "no global_keyprefix"
                     for p in prefixes)


def _places(places):
    """Where a record exists instead (store.places_elsewhere), as words:
    "with -O global_keyprefix=app1:", "in DB 3", "in DB 3 with ..."."""
    here = [prefix for db, prefix in places if db is None]
    words = ["with " + _prefixes(here)] if here else []
    words += ["in DB %d" % db + ("" if prefix is None else " with " + _prefixes([prefix]))
              for db, prefix in places if db is not None]
    return ", ".join(words)


class Heartbeats(Resource):
    """The records of ``queues`` in the store ``target``; ``described``:
    with what only -v describes (who started and published each)."""

    def __init__(self, target, queues, deadline, facts=None, described=True):
        super().__init__(facts)
        self.target, self.queues, self.deadline = target, queues, deadline
        self.described = described

    def acquire(self):
        from celery_checks.connect.redis import redis_client, redis_errors

        target = self.target
        with redis_errors(target.url, target.role):
            client = redis_client(target.url, target.options, self.deadline.network_timeout())
            try:
                now, records = store.read(client, self.queues, target.options, self.described)
                unseen = [q for q in self.queues
                          if "started" not in records[q] and "pending_since" not in records[q]]
                # the search for a misplaced record may take half the network timeout
                search_until = time.monotonic() + self.deadline.network_timeout() / 2
                elsewhere = store.places_elsewhere(client, unseen, target.options,
                                                   search_until) if unseen else {}
            finally:
                client.close()
        heartbeats = []
        for name in self.queues:
            queue = QueueHeartbeat(name, records[name], now)
            queue.elsewhere = elsewhere.get(name, [])
            heartbeats.append(queue)
        return heartbeats

    def metrics(self, queues):
        names = Labels()  # queue names that sanitise alike get QUEUE_2_age, ...
        ages, latencies = [], []
        for queue in queues:
            name = unique_label(queue.name, names)
            if not queue.seen:
                yield self.metric(name + "_missing", 1, "missing", queue)
                continue
            # unique: a unique queue label, and a suffix no other metric ends in
            ages.append(self.entry(name + "_age", queue.age, queue, unique=True))
            if queue.latency is not None:
                latencies.append(self.entry(name + "_latency", queue.latency, queue, unique=True))
        yield self.series("age", ages, uom="s", min=0)
        yield self.series("latency", latencies, uom="s", min=0)


# ------------------------------------------------------------------ evaluate

class Age(Threshold):
    def words(self, queue, value, broken):
        if broken is None:
            return None
        return "%s (age %s)" % (queue.diagnosis(self.warning, age_bound=broken),
                                violation(broken, "s"))


class Latency(Threshold):
    def words(self, queue, value, broken):
        if broken is None:
            return None
        if queue.pending and queue.wait >= value:
            words = queue.diagnosis(wait_bound=broken)
        else:
            words = "%s slow: last heartbeat waited %s" % (queue.name, seconds(value, broken))
        return words + " (latency %s)" % violation(broken, "s")


def never_seen(queue, value):
    if queue.elsewhere:  # a wrong -O global_keyprefix or DB, first of all
        return "%s: no heartbeat record here; one exists %s" % (
            queue.name, _places(queue.elsewhere))
    if queue.failure:
        return "%s: no heartbeat yet, trigger failing: %s" % (queue.name, queue.failure)
    return ("%s: no heartbeat ever recorded: trigger not scheduled for it? "
            "worker app lacks celery_checks.install(app)?" % queue.name)


# ------------------------------------------------------------------- present

class HeartbeatSummary(ProblemSummary):
    def ok(self, results):
        queues = results[0].resource.facts if results else []
        if len(queues) == 1:
            return queues[0].brief()
        unhealthy = [q for q in queues if not q.healthy]
        if unhealthy:
            # never seen or started first, then waiting, then a failing trigger
            first = min(unhealthy, key=lambda q: (q.started, not q.pending))
            return "%d queues OK, %s" % (len(queues), first.brief())
        oldest = max(queues, key=lambda q: q.age)
        return "%d queues healthy, oldest %s" % (len(queues), oldest.brief().replace(" healthy:", ":", 1))

    def item_lines(self, resource):
        return [q.describe() for q in resource.facts] if resource else []

    def settings_lines(self, resource):
        if resource is None:
            return []
        lines = ["heartbeat store %s" % resource.target.shown]
        used = STORE_OPTIONS_USED + sentinel_options_used(resource.target.url)
        unused = unused_options_line(resource.target.options, used)
        return lines + ([unused] if unused else [])


def make_check(args, deadline, facts=None):
    """The check for parsed ``args``; ``facts`` (QueueHeartbeat list) instead
    of reading the store, for tests."""
    return runner.check_of(
        "celery_heartbeat",
        Heartbeats(args.store, args.queues, deadline, facts, described=args.verbose > 0),
        Age("age", args.warning, args.critical),
        Latency("latency", args.latency_warning, args.latency_critical),
        Condition("missing", nagios_state(args.missing_state), never_seen),
        HeartbeatSummary(args.verbose),
    )


main = runner.entry_point("CELERY_HEARTBEAT", parse_args, make_check)


if __name__ == "__main__":
    main()
