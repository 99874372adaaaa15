"""The phases of a run: each sets up the services its scenarios need and
makes them (bench/scenarios.py says what a scenario is).

A phase is a generator over the context (bench/run.py): it sets up what its
scenarios need (pulse files, queues with messages, workers), then yields one
list of scenarios per state of the services (e.g. 2 workers, then 10); each
list is measured before the phase goes on.
"""

import socket
import time

from bench import answering
from bench.measure import log
from bench.scenarios import Scenario, base_scenarios, before
from tests.kit.producers import Apps, publish

HOST = socket.gethostname()


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


def queue_args(url, queues, *extra):
    args = ["check_celery_queue", "-b", url, "-w", "1000", "-c", "5000"] + list(extra)
    for queue in queues:
        args += ["-q", queue]
    return args


MANAGEMENT_URL = "http://127.0.0.1:15672/"
# Nobody consumes the bench's RabbitMQ queues: orphans, CRITICAL unless told.
NO_ORPHANS = ("--orphan-state", "ok")


def phase_services(ctx):
    """Pulse files, queues on Redis and on RabbitMQ; no worker running."""
    pulse_dir = ctx.workdir / "pulse"
    (pulse_dir / "many").mkdir(parents=True)
    content = '{"node": "celery@%s", "pid": 1, "state": "running", "interval": 30}' % HOST
    (pulse_dir / "worker.pulse").write_text(content)
    for i in range(50):
        (pulse_dir / "many" / ("w%02d.pulse" % i)).write_text(content)

    scenarios = base_scenarios("services", ["socket", "redis", "pika"]) + [
        Scenario("pulsefile-1", "pulsefile, 1 file",
                 ["check_celery_pulsefile", "-f", str(pulse_dir / "worker.pulse")]),
        Scenario("pulsefile-50", "pulsefile, 50 files (glob)",
                 ["check_celery_pulsefile", "-f", str(pulse_dir / "many" / "*.pulse"),
                  "--min-files", "50"]),
    ]
    if ctx.wants(*QUEUE_KEYS):
        db = ctx.take_db()
        redis_url = ctx.redis.url(db)
        redis_queues = ["bench-q%04d" % i for i in range(1000)]
        fill(redis_url, redis_queues[:100], 10, priorities=True)
        fill(redis_url, redis_queues[100:], 1)
        scenarios += [
            Scenario("redis-cli", "`redis-cli llen` (1 list)",
                     ["redis-cli", "-h", ctx.redis.host, "-p", str(ctx.redis.port), "-n", str(db),
                      "llen", redis_queues[0]], kind="baseline"),
            Scenario("queue-redis-1", "queue, Redis, 1 queue (10 msgs, priorities 0-9)",
                     queue_args(redis_url, redis_queues[:1]), tool="redis-cli", floor="socket"),
            Scenario("queue-redis-100", "queue, Redis, 100 queues",
                     queue_args(redis_url, redis_queues[:100]), tool="redis-cli", floor="socket"),
            Scenario("queue-redis-1000", "queue, Redis, 1,000 queues",
                     queue_args(redis_url, redis_queues), tool="redis-cli", floor="socket"),
        ]
        scenarios += before(ctx, "queue-redis-1", "queue, Redis, 1 queue",
                            queue_args(redis_url, redis_queues[:1]))
        scenarios += before(ctx, "queue-redis-1000", "queue, Redis, 1,000 queues",
                            queue_args(redis_url, redis_queues))
    if ctx.install.has("check_celery_tasks") and ctx.wants("tasks-100"):
        db = ctx.take_db()
        record_tasks(ctx.redis.url(db), 100)
        scenarios.append(Scenario(
            "tasks-100", "tasks, 100 recorded task names",
            ["check_celery_tasks", "--store", ctx.redis.url(db), "--state-file",
             str(ctx.workdir / "tasks.state"), "--max-age", "bench.task000=1h", "-w", "20"],
            floor="socket"))
    if ctx.wants("queue-amqp-1", "queue-amqp-20", "queue-mgmt-1", "queue-mgmt-20"):
        vhost = ctx.take_vhost()
        amqp_queues = ["bench-q%02d" % i for i in range(20)]
        fill(vhost.url, amqp_queues, 10)
        scenarios += [
            Scenario("rabbitmqctl", "`rabbitmqctl list_queues`",
                     ["rabbitmqctl", "-q", "list_queues", "-p", vhost.name, "name", "messages"],
                     kind="baseline", slow=True),
            Scenario("queue-amqp-1", "queue, RabbitMQ, 1 queue",
                     queue_args(vhost.url, amqp_queues[:1], *NO_ORPHANS), tool="rabbitmqctl",
                     floor="pika"),
            Scenario("queue-amqp-20", "queue, RabbitMQ, 20 queues",
                     queue_args(vhost.url, amqp_queues, *NO_ORPHANS), tool="rabbitmqctl",
                     floor="pika"),
        ]
        # The management API: ready, unacked, consumers and the oldest's
        # timestamp of every queue in one HTTP request (http.client alone).
        management = queue_args(vhost.url, [], *NO_ORPHANS, "--management-url", MANAGEMENT_URL,
                                "--oldest", "--unacked-warning", "100")
        wait_for_management(ctx, management + ["-q", amqp_queues[-1]])
        scenarios += [
            Scenario("queue-mgmt-1", "queue, RabbitMQ management API, 1 queue",
                     management + ["-q", amqp_queues[0]], tool="rabbitmqctl",
                     floor="nagiosplugin"),
            Scenario("queue-mgmt-20", "queue, RabbitMQ management API, 20 queues",
                     management + [a for q in amqp_queues for a in ("-q", q)],
                     tool="rabbitmqctl", floor="nagiosplugin"),
        ]
    yield scenarios


def wait_for_management(ctx, argv, limit=30):
    """RabbitMQ has no figures for a new queue before its next statistics
    collection (every 5 s): wait until the check answers."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if ctx.measure(ctx.install.resolve(argv)).rc == 0:
            return
        time.sleep(0.5)
    log("the management API gave no figures in %ss" % limit)


def consumers_scenarios(url):
    """The Redis consumers broadcast next to the plain depth check, on the
    queue the running workers consume (each has a consumer: it ends as
    soon as both replied)."""
    return [
        Scenario("queue-plain-redis-2w", "queue, Redis, 1 queue (workers running)",
                 queue_args(url, ["celery"]), floor="socket"),
        Scenario("queue-consumers-redis-2w", "queue, Redis, consumers broadcast (2 workers)",
                 queue_args(url, ["celery"], "--consumers-critical", "1:"), floor="socket"),
    ]


def record_tasks(store_url, count):
    """Records of ``count`` task names in the store, as a worker's flush
    writes them (celery_checks/store/tasks.py)."""
    from celery_checks.connect.redis import redis_client
    from celery_checks.store import tasks as store

    client = redis_client(store_url)
    now, tallies = time.monotonic(), {}
    for number in range(count):
        tally = tallies["bench.task%03d" % number] = store.Tally()
        tally.counts = [50, number % 3, number % 2, 0, 0]
        tally.runtime_sum, tally.buckets[3] = 1.5, 50 + number % 3
        tally.success_at = tally.failure_at = now
        tally.exception = "ValueError"
    store.record(client, tallies, now)
    client.close()


QUEUE_KEYS = ("queue-redis-1", "queue-redis-100", "queue-redis-1000")
# The worker check's sources and the floor of each.
SOURCES = (("ping", "socket"), ("events", "kombu"))
# Idle solo workers, each group on a database of its own, all running at
# once so every size is measured in the same rounds; the missing-worker
# cases (a second or more each) only with the smaller groups.
WORKER_GROUPS = (2, 10, 50)
MISSING_GROUPS = (2, 10)
HEARTBEAT_QUEUES = (1, 100, 1000)


def worker_keys():
    return ["workers-%s-%s%s" % (source, n, suffix) for source, _ in SOURCES
            for n in WORKER_GROUPS
            for suffix in (("", "-missing") if n in MISSING_GROUPS else ("",))]


def worker_scenarios(tag, url, names, missing, baselines=True):
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
    ] if baselines else []
    for source, floor in SOURCES:
        check = ["check_celery_workers", "-b", url, "--source", source]
        scenarios.append(Scenario("workers-%s-%s" % (source, tag),
                                  "workers, %s, %s of %s present" % (source, tag, tag),
                                  check + expect, tool=status if baselines else None,
                                  floor=floor))
        if int(tag) in MISSING_GROUPS:
            scenarios.append(Scenario(
                "workers-%s-%s-missing" % (source, tag),
                "workers, %s, 1 of %d missing" % (source, len(names) + 1),
                check + gone, expect=(2,), tool=status, slow=True, floor=floor))
    return scenarios


def phase_workers(ctx):
    """A heartbeat worker on its own DB (1, 100, 1,000 queues), and 2, 10
    and 50 idle workers, each group on its own DB: all measured together."""
    scenarios = []
    built = ctx.install.has("check_celery_heartbeat") or ctx.install.has("trigger_celery_heartbeat")
    wanted = ["heartbeat-%d" % n for n in HEARTBEAT_QUEUES] + ["trigger-10"]
    if built and ctx.wants(*wanted):
        hb_url = ctx.redis.url(ctx.take_db())
        hb_queues = ["bench-hb%04d" % i for i in range(max(HEARTBEAT_QUEUES))]
        # A real worker consumes the first 100 (the trigger's heartbeats go
        # through it); the other records are written by the same store
        # functions the trigger and the worker call.
        ctx.workers.start(hb_url, ["bench-hb@%s" % HOST], queues=hb_queues[:100])
        scenarios += heartbeat_scenarios(ctx, hb_url, hb_queues)
    floors = ["socket", "redis"] + (["celery"] if scenarios else [])
    if not ctx.wants(*worker_keys() + ["queue-plain-redis-2w", "queue-consumers-redis-2w"]):
        if scenarios:
            yield base_scenarios("workers", floors) + scenarios
        return
    floors.append("kombu")
    missing = "bench-gone@%s" % HOST
    for size in WORKER_GROUPS:
        db = ctx.take_db()
        url = ctx.redis.url(db)
        names = ["bench-w%dx%02d@%s" % (size, i, HOST) for i in range(1, size + 1)]
        log("starting %d workers" % size)
        pids = ctx.workers.start(url, names, timeout=300)
        if size in (min(WORKER_GROUPS), max(WORKER_GROUPS)):
            ctx.worker_groups[size] = (url, names, pids)
        scenarios += worker_scenarios(str(size), url, names, missing,
                                      baselines=size in MISSING_GROUPS)
        if size == min(WORKER_GROUPS):
            scenarios += consumers_scenarios(url)
        if size in (min(WORKER_GROUPS), max(WORKER_GROUPS)):
            scenarios.append(answering.reference_scenario(ctx, db, size))
            scenarios += before(ctx, "workers-ping-%d" % size,
                                "workers, ping, %d of %d present" % (size, size),
                                ["check_celery_workers", "-b", url, "--source", "ping"]
                                + [arg for name in names for arg in ("--expect", name)])
    yield base_scenarios("workers", floors) + scenarios


def heartbeat_scenarios(ctx, store_url, queues):
    """Trigger heartbeats through the first 100 queues, wait until the
    worker ran them; the other records written through the store."""
    from celery_checks.connect.redis import redis_client
    from celery_checks.store import heartbeats as store

    def trigger(queues):
        return ["trigger_celery_heartbeat", "-b", store_url] + [
            arg for queue in queues for arg in ("-q", queue)]

    result = []
    if ctx.install.has("trigger_celery_heartbeat"):
        sample = ctx.measure(ctx.install.resolve(trigger(queues[:100])))
        if sample.rc != 0:
            log("trigger failed: %s" % sample.output.strip()[:300])
        result.append(Scenario("trigger-10", "trigger, 10 queues", trigger(queues[:10]),
                               floor="celery"))
    client = redis_client(store_url)
    try:
        rest = queues[100:]
        at = store.record_publish(client, rest, ["bench"] * len(rest), "bench")
        for queue in rest:
            store.record_start(client, queue, at, "bench", "bench-hb@%s" % HOST)
    finally:
        client.close()
    if ctx.install.has("check_celery_heartbeat"):
        # records written once, read for the whole run: ages may not alert
        check = ["check_celery_heartbeat", "--store", store_url, "-w", "7200", "-c", "14400"]
        groups = []
        for size in HEARTBEAT_QUEUES:
            argv = check + [arg for q in queues[:size] for arg in ("-q", q)]
            title = "heartbeat, %s queue%s" % ("{:,}".format(size), "s" if size > 1 else "")
            groups.append(Scenario("heartbeat-%d" % size, title, argv, floor="socket"))
            if size in (1, 1000):
                groups += before(ctx, "heartbeat-%d" % size, title, argv)
        ran = next(g for g in groups if g.key == "heartbeat-100")  # through the worker
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if ctx.measure(ctx.install.resolve(ran.argv)).rc == 0:
                break
            time.sleep(0.5)
        result += groups
    return result


PHASES = [("services", "No worker running", phase_services),
          ("workers", "Real workers (solo pool)", phase_workers)]


