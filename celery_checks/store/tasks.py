"""The task records: what workers finished, per task name, for check_celery_tasks.

Keys (kombu's ``global_keyprefix`` in front of each, as for the heartbeats):

``celery_checks:tasks``            a set: the task names recorded (the index)
``celery_checks:task:<name>``      one hash per task name:

=====================  =====================================================
``succeeded``          runs that returned (Celery's SUCCESS)
``failed``             runs that raised (FAILURE), and runs whose pool
                       process died under them (WorkerLostError)
``retried``            runs that asked for a retry (RETRY)
``rejected``           runs that raised ``celery.exceptions.Reject``
``revoked``            tasks the worker discarded as revoked or expired, or
                       terminated by ``revoke(terminate=True)``
``last_success``       store time of the last success
``last_failure``       store time of the last failure; ``last_exception``
                       the class name of its exception
``runtime_sum``        seconds, summed over every run that was timed
``b0`` ... ``b<N>``    how many timed runs took at most :data:`BUCKETS` [i]
                       seconds (``b<N>``: longer than the last bound)
=====================  =====================================================

Counters only grow; the check keeps the previous values in its state file
and judges the difference (counters that went down were reset: the store was
flushed). Runtimes are measured by the worker's monotonic clock, from the
start of the task to its end; every time of day is the store's ``TIME``.

The clock rule: workers buffer what finished and send it at most every
``checks_tasks_flush_interval`` seconds in one script (:func:`record`), which
reads ``TIME`` and sets each "last" time to the store time minus how long
ago, by the worker's monotonic clock, it happened. One round trip per flush,
so at most one per finished task.

Bounds on what task names (user input) can cost: a name is cut to
:data:`MAX_NAME` characters, and once the index holds ``max_names``
(``checks_tasks_max_names``, default :data:`MAX_NAMES`) names, the tasks of
any new name are counted under :data:`OTHER`. So the store holds at most
``max_names + 1`` hashes of ``len(BUCKETS) + 10`` fields each.
"""

from bisect import bisect_left

from celery_checks.connect.layout import as_text

INDEX_KEY = "celery_checks:tasks"
KEY_PREFIX = "celery_checks:task:"
MAX_NAME = 200
MAX_NAMES = 500
OTHER = "(other)"
#: upper bounds (seconds) of the runtime buckets; one more counts the rest
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
           600, 1800, 3600)
COUNTERS = ("succeeded", "failed", "retried", "rejected", "revoked")
#: per task in :func:`record`'s ARGV: name, the counters, runtime sum,
#: seconds since the last success and failure ('' when none), the exception
_FIXED = 1 + len(COUNTERS) + 4

# KEYS: the index. ARGV: key prefix, max names, other's name, bucket count,
# then per task _FIXED values and the bucket counts.
_RECORD = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local index, prefix = KEYS[1], ARGV[1]
local cap, other, nb = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local counters = {'succeeded', 'failed', 'retried', 'rejected', 'revoked'}
local i = 5
local function stamp(key, field, ago)
  if ago == '' then return false end
  local at = now - tonumber(ago)
  local old = tonumber(redis.call('HGET', key, field) or '')
  if old and old >= at then return false end
  redis.call('HSET', key, field, string.format('%.6f', at))
  return true
end
while i <= #ARGV do
  local name = ARGV[i]
  if redis.call('SISMEMBER', index, name) == 0 then
    if redis.call('SCARD', index) >= cap then name = other end
    redis.call('SADD', index, name)
  end
  local key = prefix .. name
  for c = 1, 5 do
    local n = tonumber(ARGV[i + c])
    if n > 0 then redis.call('HINCRBY', key, counters[c], n) end
  end
  local sum = tonumber(ARGV[i + 6])
  if sum > 0 then redis.call('HINCRBYFLOAT', key, 'runtime_sum', ARGV[i + 6]) end
  stamp(key, 'last_success', ARGV[i + 7])
  if stamp(key, 'last_failure', ARGV[i + 8]) then
    redis.call('HSET', key, 'last_exception', ARGV[i + 9])
  end
  for b = 0, nb - 1 do
    local n = tonumber(ARGV[i + 10 + b])
    if n > 0 then redis.call('HINCRBY', key, 'b' .. b, n) end
  end
  i = i + 10 + nb
end
return 1
"""


def index_key(transport_options=None):
    return _prefix(transport_options) + INDEX_KEY


def key_for(name, transport_options=None):
    return "%s%s%s" % (_prefix(transport_options), KEY_PREFIX, name)


def _prefix(transport_options):
    return (transport_options or {}).get("global_keyprefix") or ""


def bucket_of(runtime):
    """The index of the bucket counting a run of ``runtime`` seconds: the
    first whose bound is not below it."""
    return bisect_left(BUCKETS, runtime)


class Tally:
    """What one process saw of one task name since its last flush."""

    __slots__ = ("counts", "runtime_sum", "buckets", "success_at", "failure_at", "exception")

    def __init__(self):
        self.counts = [0] * len(COUNTERS)  # in the order of COUNTERS
        self.runtime_sum = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.success_at = self.failure_at = None  # monotonic times
        self.exception = ""

    def argv(self, name, monotonic_now):
        def ago(at):
            return "" if at is None else "%.6f" % max(0.0, monotonic_now - at)

        return ([name] + self.counts
                + ["%.6f" % self.runtime_sum, ago(self.success_at), ago(self.failure_at),
                   self.exception] + self.buckets)


def record(client, tallies, monotonic_now, max_names=MAX_NAMES, transport_options=None):
    """Add ``tallies`` ({name: Tally}) to the store in one round trip."""
    argv = [_prefix(transport_options) + KEY_PREFIX, max_names, OTHER, len(BUCKETS) + 1]
    for name, tally in tallies.items():
        argv += tally.argv(name[:MAX_NAME], monotonic_now)
    client.script(_RECORD, [index_key(transport_options)], argv)


# ------------------------------------------------------------------- reads

def read(client, transport_options=None):
    """(store time, {name: record}) in two round trips (the index and TIME,
    then every hash); a record holds ints for the counters and buckets
    (a list), floats for the times and the runtime sum."""
    (seconds, micros), members = client.pipeline([
        ("TIME",), ("SMEMBERS", index_key(transport_options))])
    now = int(seconds) + int(micros) / 1e6
    names = sorted(as_text(name) for name in members)
    replies = client.pipeline([("HGETALL", key_for(n, transport_options)) for n in names]) \
        if names else []
    return now, {name: decode(raw) for name, raw in zip(names, replies) if raw}


def decode(raw):
    """A record from a hash as HGETALL returns it (field, value, ...);
    damaged fields count as absent."""
    fields = {as_text(k): as_text(v) for k, v in zip(raw[::2], raw[1::2])}
    record = {c: _number(int, fields.get(c)) or 0 for c in COUNTERS}
    record["runtime_sum"] = _number(float, fields.get("runtime_sum")) or 0.0
    record["buckets"] = [_number(int, fields.get("b%d" % i)) or 0 for i in range(len(BUCKETS) + 1)]
    for field in ("last_success", "last_failure"):
        record[field] = _number(float, fields.get(field))
    record["last_exception"] = fields.get("last_exception") or None
    return record


def _number(kind, text):
    try:
        return None if text is None else kind(text)
    except ValueError:
        return None
