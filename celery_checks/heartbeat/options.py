"""check_celery_heartbeat's command line: its options and --help."""

from celery_checks.plugin import cli, thresholds

WARNING_AGE = "300"
CRITICAL_AGE = "600"
# The trigger runs every minute: a heartbeat that waited longer than that
# has the next one queued behind it, so the queue no longer drains within a
# cycle. After the trigger's --expires (300 s) a waiting heartbeat is
# discarded when a worker reaches it: it can never start.
WARNING_LATENCY = "60"
CRITICAL_LATENCY = "300"
HELP = dict(
    check="""\
For each queue (-q, repeatable, default celery), from the heartbeat store:
age      now - when a worker last started a heartbeat of the queue (a queue
         that never started one counts from its first publish)
latency  how long the last heartbeat waited in the queue: start - publish;
         a heartbeat published and not yet started counts its wait so far
         (default --latency-warning 60: longer than the trigger's one-minute
         interval, the next heartbeat queues behind it; --latency-critical
         300: the trigger's --expires, after which it is discarded unrun)
Heartbeats are published by trigger_celery_heartbeat (cron) or by celery
beat (celery_checks.beat_schedule) and run by workers whose app calls
celery_checks.install(app). All times are the store's own clock (Redis
TIME), so clock skew between hosts neither raises nor hides an alert.
The store is the broker when it is Redis; with RabbitMQ name it (--store).
One round trip for all queues; reads only.""",
    perfdata="""\
QUEUE_age      per queue: age in s, warn/crit from -w/-c, min 0
QUEUE_latency  per queue: latency in s, warn/crit from --latency-*, min 0
               (absent until a heartbeat carried its publish time)
A queue never seen has no perfdata. Values are never negative.""",
    states="""\
OK        every queue's heartbeat age is inside -w and its latency inside
          --latency-warning; the line says "healthy" only for a queue whose
          last heartbeat started and none waits ("first heartbeat waiting
          11s, none started yet", "next waiting 0.2s" otherwise)
WARNING   a queue's age is outside -w or its latency outside
          --latency-warning; the line says why: "stuck" (a heartbeat waits,
          no worker started it), "first heartbeat waiting ... none started
          yet" (no consumer, or its app lacks install(app) or, on
          RabbitMQ, checks_store_url), "trigger
          stale" (nothing published for longer than -w allows: is cron or
          beat running?), "trigger failing" (the trigger could not publish:
          its reason), "slow" (the last heartbeat waited long)
CRITICAL  the same outside -c / --latency-critical; a queue never seen
          (--missing-state; the hint names the other global_keyprefix or
          DB of this server where its record exists); the store cannot be
          reached""",
    examples="""\
check_celery_heartbeat -q celery -q mail
check_celery_heartbeat --broker-file /etc/celery/broker -w 180 -c 600
check_celery_heartbeat --store redis://cache:6379/3 -q celery \\
    --latency-warning 30 --latency-critical 120""",
    prog="check_celery_heartbeat", broker=True,
    summary="Alert when heartbeats stop going through Celery queues.",
    thresholds=("each queue's heartbeat age in seconds", WARNING_AGE, CRITICAL_AGE),
)


def parse_args(argv=None):
    parser = cli.make_parser(**HELP)
    cli.add_queue_option(parser, "queue whose heartbeat to check; repeatable (default: celery)")
    thresholds.add_threshold_pair(
        parser, "each queue's latency in seconds", WARNING_LATENCY, CRITICAL_LATENCY,
        flags=(("--latency-warning",), ("--latency-critical",)),
        notes=(", the trigger's interval", ", the trigger's --expires"))
    cli.add_state_option(parser, "--missing-state",
                         "state of a queue with no heartbeat record at all", 2)
    cli.add_store_options(parser)
    return parser.parse_args(argv)
