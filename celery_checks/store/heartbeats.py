"""The heartbeat store: the one place that knows its Redis key layout.

One hash per monitored queue, ``[global_keyprefix]celery_checks:heartbeat:<queue>``:

=================  ========================================================
``published``      store time of the last heartbeat published to the queue
``published_id``   its task id
``publisher``      who published it: ``trigger@<host>`` or ``celery@<host>``
                   (a beat or app process, through ``install(app)``)
``pending_since``  store time of the oldest heartbeat published and not yet
                   followed by a start; absent when none is waiting
``started``        store time a worker last started a heartbeat of the queue
``started_id``     that heartbeat's task id
``worker``         the node name of the worker that started it
``latency``        seconds that heartbeat waited: started - its publish time
``failed``         when the trigger last failed to publish to the queue
                   (cleared by the next publish); ``failure``: its reason
=================  ========================================================

The clock rule: every time above is read from the store's own ``TIME``, by a
Lua script that records in the same step (beat, a worker, a failure) or, for
the trigger's publish, by ``TIME`` just before the publish, recorded once the
messages are out (:func:`now`, :func:`record_published`), so that a publish
that fails is never recorded as one. Trigger host, workers and monitoring host may disagree on
the time; they cannot fake an alert nor hide one, because they never
contribute a clock reading. The publish time travels inside the heartbeat
message (header :data:`PUBLISHED_HEADER`, a store time too), so the worker
can compute the wait without trusting its own clock.

``client`` below is a client of :mod:`celery_checks.connect.redis` (the
scripts go as EVALSHA, EVAL the first time a server meets them).
"""

import os

from celery_checks.connect.layout import as_text, glob_escape
from celery_checks.connect.targets import STORE_ENV
from celery_checks.connect.urls import transport_of
from celery_checks.plugin.policy import CheckError

KEY_PREFIX = "celery_checks:heartbeat:"
PUBLISHED_HEADER = "celery_checks_published"
TASK_NAME = "celery_checks.heartbeat"

# KEYS: one hash per queue; ARGV: publisher, then one task id per key.
# Returns the store time of the publish, as text (Lua numbers would be
# truncated to integers on the way back).
_PUBLISH = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = string.format('%d.%06d', tonumber(t[1]), tonumber(t[2]))
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'published', now, 'published_id', ARGV[i + 1],
             'publisher', ARGV[1])
  redis.call('HDEL', key, 'failed', 'failure')
  if redis.call('HEXISTS', key, 'pending_since') == 0 then
    redis.call('HSET', key, 'pending_since', now)
  end
end
return now
"""

# The trigger's way: KEYS one hash per queue; ARGV: the store time read
# (TIME) before the publish and carried in the messages, publisher, then one
# task id per key. Recorded only once the messages are out, so a publish
# that failed is never taken for a waiting heartbeat. A worker may already
# have started one (it went out first): then it is not waiting.
_PUBLISHED = """
local at = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local id = ARGV[i + 2]
  local last = tonumber(redis.call('HGET', key, 'published') or '')
  if not last or last <= at then
    redis.call('HSET', key, 'published', ARGV[1], 'published_id', id,
               'publisher', ARGV[2])
    redis.call('HDEL', key, 'failed', 'failure')
  end
  if redis.call('HGET', key, 'started_id') ~= id then
    local pending = tonumber(redis.call('HGET', key, 'pending_since') or '')
    if not pending or pending > at then
      redis.call('HSET', key, 'pending_since', ARGV[1])
    end
  end
end
return 1
"""

# The trigger could not publish to these queues: KEYS one hash per queue;
# ARGV: the reason. Only failed/failure change (store time); the next
# successful publish clears them.
_FAILURE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = string.format('%d.%06d', tonumber(t[1]), tonumber(t[2]))
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'failed', now, 'failure', ARGV[1])
end
return now
"""

# KEYS: the queue's hash; ARGV: publish time from the message ('' when the
# message was not stamped), task id, worker node name.
_START = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local key = KEYS[1]
redis.call('HSET', key, 'started', string.format('%.6f', now),
           'started_id', ARGV[2], 'worker', ARGV[3])
local sent = tonumber(ARGV[1])
if sent then
  redis.call('HSET', key, 'latency', string.format('%.6f', math.max(0, now - sent)))
else
  redis.call('HDEL', key, 'latency')
end
-- Did this start answer the newest publish? Then nothing is waiting; if a
-- newer heartbeat was published meanwhile, that one is waiting since then.
local last = tonumber(redis.call('HGET', key, 'published') or '')
if not sent or not last or last <= sent then
  redis.call('HDEL', key, 'pending_since')
else
  redis.call('HSET', key, 'pending_since', string.format('%.6f', last))
end
return string.format('%.6f', now)
"""


def key_for(queue, transport_options=None):
    """The hash of ``queue``; kombu's global_keyprefix keeps apps apart."""
    prefix = (transport_options or {}).get("global_keyprefix") or ""
    return "%s%s%s" % (prefix, KEY_PREFIX, queue)


# ------------------------------------------------------------- store URL

def worker_store(conf, environ=os.environ):
    """(url, transport_options) of the store for a worker/beat app's conf:
    ``checks_store_url``, else $CELERY_CHECKS_STORE_URL, else the broker
    when it is Redis; (None, {}) when there is none."""
    broker_options = dict(conf.get("broker_transport_options") or {})
    url = conf.get("checks_store_url") or environ.get(STORE_ENV)
    if url:
        options = {"global_keyprefix": broker_options.get("global_keyprefix")}
        return url, options
    # Celery's settings read $CELERY_BROKER_URL (what `celery -b URL worker`
    # sets) in their broker_write_url / broker_url properties, not in the
    # mapping behind them: conf.get() alone missed a broker given that way.
    broker = (getattr(conf, "broker_write_url", None) or getattr(conf, "broker_url", None)
              or conf.get("broker_write_url") or conf.get("broker_url") or "")
    if isinstance(broker, (list, tuple)):
        broker = broker[0] if broker else ""
    broker = broker.split(";")[0].strip()
    try:
        if broker and transport_of(broker) == "redis":
            return broker, broker_options
    except CheckError:
        pass
    return None, {}


# ------------------------------------------------------------------ writes

def record_publish(client, queues, task_ids, publisher, transport_options=None):
    """Record that heartbeats ``task_ids`` are about to be published to
    ``queues``, in one round trip; returns the store time (float)."""
    keys = [key_for(q, transport_options) for q in queues]
    return float(as_text(client.script(_PUBLISH, keys, [publisher] + list(task_ids))))


def now(client):
    """The store's clock (TIME), as the publish time of heartbeats about
    to be sent."""
    seconds, micros = client.call("TIME")
    return int(seconds) + int(micros) / 1e6


def record_published(client, queues, task_ids, published, publisher, transport_options=None):
    """Record heartbeats ``task_ids`` that went out to ``queues`` stamped
    with store time ``published`` (from :func:`now`), in one round trip."""
    if not queues:
        return
    keys = [key_for(q, transport_options) for q in queues]
    client.script(_PUBLISHED, keys, ["%.6f" % published, publisher] + list(task_ids[:len(keys)]))


def record_failure(client, queues, reason, transport_options=None):
    """The trigger could not publish to ``queues``: keep ``reason`` for the
    check ("trigger failing"); nothing else in the records changes."""
    keys = [key_for(q, transport_options) for q in queues]
    client.script(_FAILURE, keys, [reason[:300]])


def record_start(client, queue, published, task_id, worker, transport_options=None):
    """Record that ``worker`` started heartbeat ``task_id`` of ``queue``,
    published at store time ``published`` (None if unknown)."""
    key = key_for(queue, transport_options)
    sent = "" if published is None else "%.6f" % float(published)
    return float(as_text(client.script(_START, [key], [sent, task_id or "", worker or ""])))


# ------------------------------------------------------------------- reads

# What the check reads (one HMGET per queue; the task ids are there for
# people reading the store): the times, then the words; what it judges,
# or with it what only -v describes (who started and who published the
# last heartbeat, and when).
_JUDGED = (("pending_since", "started", "latency", "failed"), ("failure",))
_DESCRIBED = (("published",) + _JUDGED[0], _JUDGED[1] + ("worker", "publisher"))


def read(client, queues, transport_options=None, described=True):
    """(store time, {queue: record}) in one round trip; a record is a dict
    of the fields it has (floats for times), empty when never seen; without
    ``described``, only those the check judges (1,000 queues' records are
    a third smaller)."""
    floats, texts = _DESCRIBED if described else _JUDGED
    fields = floats + texts
    replies = client.pipeline([("TIME",)] + [
        ("HMGET", key_for(queue, transport_options)) + fields for queue in queues])
    seconds, micros = replies[0]
    now = int(seconds) + int(micros) / 1e6
    return now, {q: _decode(values, floats, texts) for q, values in zip(queues, replies[1:])}


def places_elsewhere(client, queues, transport_options=None, deadline=None):
    """{queue: [(db, prefix)]}: where else on this server the records of
    ``queues`` (without one where the check looked) are. ``db`` is None
    for the store's own DB (another global_keyprefix: a wrong or missing
    -O), ``prefix`` None for the check's own prefix (another DB: a wrong DB
    number). This DB first (one SCAN), then every other DB INFO keyspace
    lists, until ``deadline``. Best effort: a server that refuses INFO or
    SELECT (ACLs) only leaves the hint out."""
    from celery_checks.connect.layout import each_db
    from celery_checks.connect.redis import ReplyError

    ours = key_for("", transport_options)
    db = client.db
    wanted = set(queues)
    pattern = "*" + glob_escape(KEY_PREFIX) + ("*" if len(queues) > 1 else glob_escape(queues[0]))
    found = {}

    def collect(number, keys):
        for key in keys:
            prefix, _, queue = as_text(key).rpartition(KEY_PREFIX)
            if queue not in wanted or (number == db and prefix + KEY_PREFIX == ours):
                continue
            place = (None if number == db else number,
                     None if prefix + KEY_PREFIX == ours else prefix)
            found.setdefault(queue, set()).add(place)

    for number, where in each_db(client, db, deadline):
        try:
            collect(number, where.scan(pattern, deadline=deadline))
        except ReplyError:
            continue
    return {q: sorted(p, key=lambda place: (place[0] is not None, place[0] or 0, place[1] or ""))
            for q, p in found.items()}


def _decode(values, floats, texts):
    """HMGET's values of ``floats + texts`` as a record (absent fields left out)."""
    record = {}
    for field, value in zip(floats, values):
        if value is not None:
            try:
                record[field] = float(value)  # float() reads the bytes as they are
            except ValueError:
                pass  # a damaged field counts as absent
    for field, value in zip(texts, values[len(floats):]):
        if value is not None:
            record[field] = value.decode("utf-8", "replace")
    return record
