"""What the benchmark measures: the scenarios, grouped in phases that set up
their services, and the baselines beside them.

A phase is a generator over the context (bench/run.py): it sets up what its
scenarios need (pulse files, queues with messages, workers), then yields one
list of scenarios per state of the services (e.g. 2 workers, then 10); each
list is measured before the phase goes on. Baselines measured in the same
list: ``python -c pass``, ``import nagiosplugin``, each check's floor (the
imports it cannot avoid) and the tool an operator would use instead.
"""

import re
import socket
import statistics
import time

from bench.measure import log
from tests.kit.producers import Apps, publish

HOST = socket.gethostname()

# What a check cannot avoid importing (its libraries' own import cost): the
# distance between a check and its floor is the check's own doing.
FLOORS = {
    "nagiosplugin": "import nagiosplugin",
    "redis": "import nagiosplugin, argparse, redis",
    "pika": "import nagiosplugin, argparse, pika",
    "kombu": "import nagiosplugin, argparse, kombu, kombu.transport.redis",
    "celery": "import argparse, celery, kombu.transport.redis",
}


class Scenario:
    """One command, measured as a whole process."""

    def __init__(self, key, title, argv, expect=(0,), kind="check", tool=None,
                 slow=False, env=None, floor="nagiosplugin"):
        self.key = key
        self.title = title
        self.argv = argv  # argv[0] is an executable name from the Install, or a path
        self.expect = expect
        self.kind = kind  # "check" or "baseline"
        self.tool = tool  # key of the baseline an operator would use instead
        self.slow = slow  # takes about a second or more: fewer rounds
        self.env = env
        self.floor = floor  # FLOORS key: the imports this check cannot avoid
        self.floor_base = None
        self.resolved = None  # argv with the executable's path
        self.samples = []
        self.status = "pending"
        self.first_line = ""
        self.imports = None
        self.phase = None
        self.bases = (None, None)  # python -c pass, import nagiosplugin of its phase

    def stat(self, field, func=statistics.median):
        values = [getattr(s, field) for s in self.samples]
        return func(values) if values else None


def slow_rounds(runs):
    """Rounds a slow scenario takes part in: a third, at least 5."""
    return min(runs, max(5, runs // 3))


def base_scenarios(tag, floors=()):
    scenarios = [
        Scenario("python-%s" % tag, "`python -c pass`", ["python", "-c", "pass"], kind="baseline"),
        Scenario("floor-nagiosplugin-%s" % tag, "`python -c \"import nagiosplugin\"`",
                 ["python", "-c", FLOORS["nagiosplugin"]], kind="baseline"),
    ]
    for name in floors:
        scenarios.append(Scenario("floor-%s-%s" % (name, tag), "floor: `%s`" % FLOORS[name],
                                  ["python", "-c", FLOORS[name]], kind="baseline"))
    return scenarios


def fill(broker_url, queues, per_queue, priorities=False):
    """Publish the way Celery does (send_task), without workers consuming;
    with ``priorities`` the messages cycle through priorities 0-9."""
    apps = Apps()
    app = apps(broker_url)
    try:
        for queue in queues:
            for i in range(per_queue):
                publish(app, queue, priority=i % 10 if priorities else None, args=(i, i))
    finally:
        apps.close()


def queue_args(url, queues):
    args = ["check_celery_queue", "-b", url, "-w", "1000", "-c", "5000"]
    for queue in queues:
        args += ["-q", queue]
    return args


def phase_services(ctx):
    """Pulse files, queues on Redis and on RabbitMQ; no worker running."""
    pulse_dir = ctx.workdir / "pulse"
    (pulse_dir / "many").mkdir(parents=True)
    content = '{"node": "celery@%s", "pid": 1, "state": "running", "interval": 30}' % HOST
    (pulse_dir / "worker.pulse").write_text(content)
    for i in range(50):
        (pulse_dir / "many" / ("w%02d.pulse" % i)).write_text(content)

    scenarios = base_scenarios("services", ["redis", "pika"]) + [
        Scenario("pulsefile-1", "pulsefile, 1 file",
                 ["check_celery_pulsefile", "-f", str(pulse_dir / "worker.pulse")]),
        Scenario("pulsefile-50", "pulsefile, 50 files (glob)",
                 ["check_celery_pulsefile", "-f", str(pulse_dir / "many" / "*.pulse"),
                  "--min-files", "50"]),
    ]
    if ctx.wants("queue-redis-1", "queue-redis-100"):
        db = ctx.take_db()
        redis_url = ctx.redis.url(db)
        redis_queues = ["bench-q%03d" % i for i in range(100)]
        fill(redis_url, redis_queues, 10, priorities=True)
        scenarios += [
            Scenario("redis-cli", "`redis-cli llen` (1 list)",
                     ["redis-cli", "-h", ctx.redis.host, "-p", str(ctx.redis.port), "-n", str(db),
                      "llen", redis_queues[0]], kind="baseline"),
            Scenario("queue-redis-1", "queue, Redis, 1 queue (10 msgs, priorities 0-9)",
                     queue_args(redis_url, redis_queues[:1]), tool="redis-cli", floor="redis"),
            Scenario("queue-redis-100", "queue, Redis, 100 queues",
                     queue_args(redis_url, redis_queues), tool="redis-cli", floor="redis"),
        ]
    if ctx.install.has("check_celery_tasks") and ctx.wants("tasks-100"):
        db = ctx.take_db()
        record_tasks(ctx.redis.client(db), 100)
        scenarios.append(Scenario(
            "tasks-100", "tasks, 100 recorded task names",
            ["check_celery_tasks", "--store", ctx.redis.url(db), "--state-file",
             str(ctx.workdir / "tasks.state"), "--max-age", "bench.task000=1h", "-w", "20"],
            floor="redis"))
    if ctx.wants("queue-amqp-1", "queue-amqp-20"):
        vhost = ctx.take_vhost()
        amqp_queues = ["bench-q%02d" % i for i in range(20)]
        fill(vhost.url, amqp_queues, 10)
        scenarios += [
            Scenario("rabbitmqctl", "`rabbitmqctl list_queues`",
                     ["rabbitmqctl", "-q", "list_queues", "-p", vhost.name, "name", "messages"],
                     kind="baseline", slow=True),
            Scenario("queue-amqp-1", "queue, RabbitMQ, 1 queue",
                     queue_args(vhost.url, amqp_queues[:1]), tool="rabbitmqctl", floor="pika"),
            Scenario("queue-amqp-20", "queue, RabbitMQ, 20 queues",
                     queue_args(vhost.url, amqp_queues), tool="rabbitmqctl", floor="pika"),
        ]
    yield scenarios


def record_tasks(client, count):
    """Records of ``count`` task names in the store, as a worker's flush
    writes them (celery_checks/store/tasks.py)."""
    from celery_checks.store import tasks as store

    now, tallies = time.monotonic(), {}
    for number in range(count):
        tally = tallies["bench.task%03d" % number] = store.Tally()
        tally.counts = [50, number % 3, number % 2, 0, 0]
        tally.runtime_sum, tally.buckets[3] = 1.5, 50 + number % 3
        tally.success_at = tally.failure_at = now
        tally.exception = "ValueError"
    store.record(client, tallies, now)
    client.close()


# The worker check's sources and the floor of each.
SOURCES = (("ping", "redis"), ("events", "kombu"))


def worker_keys():
    return ["workers-%s-%s%s" % (source, n, suffix) for source, _ in SOURCES
            for n in (2, 10) for suffix in ("", "-missing")]


def worker_scenarios(tag, url, names, missing):
    expect = []
    for name in names:
        expect += ["--expect", name]
    gone = expect + ["--expect", missing]
    status = "celery-status-%s" % tag
    scenarios = [
        Scenario(status, "`celery status` (%s workers)" % tag,
                 ["celery", "-b", url, "status"], kind="baseline", slow=True),
        Scenario("inspect-ping-%s" % tag, "`celery inspect ping` (%s workers)" % tag,
                 ["celery", "-b", url, "inspect", "ping"], kind="baseline", slow=True),
    ]
    for source, floor in SOURCES:
        check = ["check_celery_workers", "-b", url, "--source", source]
        scenarios += [
            Scenario("workers-%s-%s" % (source, tag),
                     "workers, %s, %s of %s present" % (source, tag, tag),
                     check + expect, tool=status, floor=floor),
            Scenario("workers-%s-%s-missing" % (source, tag),
                     "workers, %s, 1 of %d missing" % (source, len(names) + 1),
                     check + gone, expect=(2,), tool=status, slow=True, floor=floor),
        ]
    return scenarios


def phase_workers(ctx):
    """2 workers (and a heartbeat worker on its own DB), then 10 workers."""
    scenarios = []
    built = ctx.install.has("check_celery_heartbeat") or ctx.install.has("trigger_celery_heartbeat")
    if built and ctx.wants("heartbeat-1", "heartbeat-100", "trigger-10"):
        hb_url = ctx.redis.url(ctx.take_db())
        hb_queues = ["bench-hb%03d" % i for i in range(100)]
        ctx.workers.start(hb_url, ["bench-hb@%s" % HOST], queues=hb_queues)
        scenarios += heartbeat_scenarios(ctx, hb_url, hb_queues)
    if not ctx.wants(*worker_keys()):
        if scenarios:
            yield base_scenarios("2w", ["redis", "celery"]) + scenarios
        return

    url = ctx.redis.url(ctx.take_db())
    names = ["bench-w%02d@%s" % (i, HOST) for i in range(1, 11)]
    missing = "bench-gone@%s" % HOST
    ctx.workers.start(url, names[:2])
    floors = ["redis", "kombu"] + (["celery"] if scenarios else [])
    yield base_scenarios("2w", floors) + scenarios + worker_scenarios("2", url, names[:2], missing)
    ctx.workers.start(url, names[2:])
    yield base_scenarios("10w", ["redis", "kombu"]) + worker_scenarios("10", url, names, missing)


def heartbeat_scenarios(ctx, store_url, queues):
    """Trigger heartbeats through all queues, wait until the worker ran them."""
    def trigger(queues):
        return ["trigger_celery_heartbeat", "-b", store_url] + [
            arg for queue in queues for arg in ("-q", queue)]

    result = []
    if ctx.install.has("trigger_celery_heartbeat"):
        sample = ctx.measure(ctx.install.resolve(trigger(queues)))
        if sample.rc != 0:
            log("trigger failed: %s" % sample.output.strip()[:300])
        result.append(Scenario("trigger-10", "trigger, 10 queues", trigger(queues[:10]),
                               floor="celery"))
    if ctx.install.has("check_celery_heartbeat"):
        check = ["check_celery_heartbeat", "--store", store_url]
        one = Scenario("heartbeat-1", "heartbeat, 1 queue", check + ["-q", queues[0]], floor="redis")
        many = Scenario("heartbeat-100", "heartbeat, 100 queues",
                        check + [arg for q in queues for arg in ("-q", q)], floor="redis")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if ctx.measure(ctx.install.resolve(many.argv)).rc == 0:
                break
            time.sleep(0.5)
        result += [one, many]
    return result


PHASES = [("services", "No worker running", phase_services),
          ("workers", "Real workers (solo pool)", phase_workers)]


def selected(scenarios, only):
    """The scenarios --only keeps (baselines always), or none when it keeps no check."""
    chosen = [s for s in scenarios if not only or re.search(only, s.key) or s.kind == "baseline"]
    if only and not any(s.kind == "check" for s in chosen):
        return []
    return chosen
