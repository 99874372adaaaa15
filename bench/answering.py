"""What the workers themselves spend answering one ping, beside what the
check waits for it.

check_celery_workers' ping waits until every worker it reached has answered;
with 50 idle solo workers on this benchmark's own cores, that wait is the
workers' own work (each decodes the broadcast and publishes a reply), which
no client can shorten. This measures it: the CPU time (user + system, from
/proc) of a group's worker processes over R pings in a row, less what they
spend over the same time left alone (their own heartbeats), per ping; and
the check's median waiting (wall - CPU) over the same pings. On N cores,
workers that spend C seconds answering cannot all have answered in less
than C / N.

And it makes the scenario that measures the same wait from outside:
the ping's messages sent by redis-cli (:func:`reference_scenario`), a
client of next to no cost, whose growth from 2 to 50 workers is what the
workers' answering adds to any client's wall time (bench/compare.py).
"""

import os
import statistics
import time

from bench.measure import log
from bench.scenarios import Scenario

KEY = "answering"
WITH = ("workers-ping-2", "workers-ping-50")  # measured when these are
# The reference scenario's key for a group of workers
REFERENCE = "ping-redis-cli-%d"
ROUNDS = 20
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """User + system CPU seconds of these processes so far (/proc)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def reference_scenario(ctx, db, size):
    """The ping's own exchange of messages with ``size`` workers on ``db``,
    by redis-cli fed the commands check_celery_workers sends (bind a reply
    queue, PUBLISH the ping, one blocking pop per worker, unbind): a client
    that costs next to nothing, so what its wall time grows by from the
    smallest group to a larger one is the workers' own answering (and the
    broker's), which no client can wait less for."""
    from celery_checks.connect.layout import RedisLayout
    from celery_checks.connect.pidbox import (
        PIDBOX_EXCHANGE, REPLY_EXCHANGE, broadcast_message, random_id)

    layout, oid = RedisLayout({}), random_id()
    reply_queue = "%s.%s" % (oid, REPLY_EXCHANGE)
    member = layout.binding_member(oid, reply_queue)
    tables = layout.binding_tables(REPLY_EXCHANGE)
    # expires in a day: the same command file serves every round
    message = broadcast_message("ping", "bench", oid, time.time() + 86400)
    commands = ["SADD %s %s" % (table, member) for table in reversed(tables)]
    commands.append("PUBLISH %s %s" % (layout.fanout_topic(PIDBOX_EXCHANGE, db, True), message))
    commands += ["BRPOP %s 5" % reply_queue] * size
    commands += ["SREM %s %s" % (table, member) for table in tables]
    commands.append("DEL %s" % reply_queue)
    path = ctx.workdir / ("ping-%d.redis" % size)
    # redis-cli's quoting: single quotes hold the JSON's double quotes
    assert not any("'" in part or "\\" in part for part in commands)
    path.write_text("".join(" ".join("'%s'" % word for word in command.split(" ", 2)) + "\n"
                            for command in commands))
    return Scenario(REFERENCE % size, "the ping's messages by `redis-cli` (%d workers)" % size,
                    ["sh", "-c", "exec redis-cli -h %s -p %d -n %d < %s" % (
                        ctx.redis.host, ctx.redis.port, db, path)], kind="baseline")


def measure(ctx, groups):
    """{size: (workers' CPU per ping, check's median waiting)} for the
    worker ``groups`` ({size: (url, names, pids)}) started by the phases."""
    results = {}
    for size, (url, names, pids) in sorted(groups.items()):
        argv = ctx.install.resolve(["check_celery_workers", "-b", url]
                                   + [arg for name in names for arg in ("--expect", name)])
        ctx.measure(argv)  # warm-up
        before, started = cpu_seconds(pids), time.monotonic()
        waits = []
        for _ in range(ROUNDS):
            sample = ctx.measure(argv)
            waits.append(sample.wall - sample.cpu)
        answering, spent = cpu_seconds(pids) - before, time.monotonic() - started
        # the same stretch of time without pings: what they do anyway
        before = cpu_seconds(pids)
        time.sleep(spent)
        idle = cpu_seconds(pids) - before
        results[size] = (max(answering - idle, 0.0) / ROUNDS, statistics.median(waits))
        log("%d workers: %.1f ms of their CPU per ping, check waiting %.1f ms" % (
            size, results[size][0] * 1000, results[size][1] * 1000))
    return results


def report(results, level="###"):
    """The table of :func:`measure`'s figures (none when not measured)."""
    if not results:
        return []
    cores = os.cpu_count() or 1
    lines = ["", "%s Workers answering a ping" % level, "",
             "CPU time the idle solo workers of a group spend answering one ping "
             "(their own heartbeats over the same time taken out; %d pings in a row), "
             "against what the check waits for them (wall - CPU, median): on this "
             "machine's %d cores the workers cannot all have answered sooner than "
             "their CPU / %d." % (ROUNDS, cores, cores), "",
             "| workers | their CPU per ping | ÷ %d cores | the check's waiting |" % cores,
             "|---|---|---|---|"]
    for size, (cpu, waiting) in sorted(results.items()):
        lines.append("| %d | %.1f ms | %.1f ms | %.1f ms |" % (
            size, cpu * 1000, cpu * 1000 / cores, waiting * 1000))
    return lines
