"""check_celery_queue's command line: its options, --help and their checks."""

import argparse

from celery_checks.connect.layout import RedisLayout
from celery_checks.plugin import cli, thresholds
from celery_checks.plugin.perfdata import shown
from celery_checks.plugin.policy import CheckError

DEFAULT_QUEUE = "celery"
DEFAULT_REPLY_TIMEOUT = 1.0
#: the -O keys the Redis path reads (RedisLayout; redis_client the sentinel
#: ones of a sentinel:// URL; the consumers broadcast fanout_prefix); the
#: RabbitMQ path reads none: pika takes where and as whom from the URL and
#: its timeouts from -t.
REDIS_OPTIONS_USED = ("sep", "global_keyprefix", "unacked_key", "priority_steps",
                      "fanout_prefix")

HELP = dict(
    check="""\
Messages waiting in each queue: published, not yet delivered to a worker.
Redis: the sum of LLEN over the queue's list and its priority sub-lists
(QUEUE, QUEUE<sep>3, QUEUE<sep>6, QUEUE<sep>9 for kombu's defaults; the sep,
priority_steps and global_keyprefix transport options are honoured), all
queues in one pipeline. A queue counts as declared when messages wait in
it or kombu's _kombu.binding.* sets bind it (every worker and producer
declaring it writes one); an empty queue nobody declared under the key
prefix and DB given is "not declared" (--missing-state), with where its
bindings are when they exist under another key prefix or in another DB
(a wrong -O global_keyprefix or DB number), or a close name (a typo).
Messages that workers reserved but did not acknowledge (kombu's unacked
hash) are reported apart. RabbitMQ: the ready count and the consumer
count of a passive queue_declare per queue, on one connection; a queue
the vhost does not have is "not found" (--missing-state). With
--management-url, instead one HTTP request to RabbitMQ's management API
for every queue of the broker URL's vhost: ready, unacknowledged and
consumers of each (figures RabbitMQ refreshes every 5 s by default).
--all-queues checks every queue the Redis bindings name (every queue a
worker or producer declared) or the management API lists, leaving out
Celery's pidbox, reply and celeryev queues; none found is judged like a
queue not declared.
Consumers on Redis (--consumers, --consumers-*): one active_queues
broadcast, the workers' own replies counted per queue (what `celery
inspect active_queues` asks); it ends as soon as every worker the
broadcast reached answered (Redis counts them) or every range and orphan
can be judged, else --reply-timeout after the broadcast. A solo worker
answers between tasks only.
Orphan: a queue with waiting messages and no consumer, wherever
consumers are known (RabbitMQ always, Redis when counted).
Oldest (--oldest, --oldest-*): the age of the message next in line,
from the publish time celery_checks.install(app) stamps on each task in
the producing process. Redis: the tail of each priority list (LINDEX -1,
nothing moves), aged by the Redis server's TIME; RabbitMQ (management
API): the head message's AMQP timestamp, aged by this host's clock.
Messages without the stamp: age unknown (said with -v), never 0; a
stamp more than 2 s in the future is flagged (clocks disagree).""",
    perfdata="""\
QUEUE            waiting messages in QUEUE, labelled with the queue's name
                 (only characters perfdata forbids become _), with
                 warn/crit from -w/-c, min 0
consumers_QUEUE  consumers of QUEUE (RabbitMQ; Redis when counted), with
                 the --consumers-* ranges, min 0
unacked          Redis: messages reserved by workers, not yet acknowledged,
                 over all queues
unacked_QUEUE    the same for one QUEUE (RabbitMQ with --management-url;
                 Redis with --unacked-per-queue or --unacked-*, attributed
                 by the message's routing key), --unacked-* ranges
oldest_QUEUE     seconds the oldest waiting message of QUEUE has waited
                 (s; 0 when none waits; left out when unknown), with the
                 --oldest-* ranges""",
    states="""\
OK        every queue's count is inside the ranges
WARNING   a queue's count, consumers, unacked or oldest age is outside
          its warning range
CRITICAL  the same outside a critical range; a queue with waiting
          messages and no consumer (the default of --orphan-state); a
          queue not declared on Redis or not found on RabbitMQ, or no
          queue found by --all-queues (the default of --missing-state);
          the broker or the management API is down, refuses us or does
          not answer within -t
UNKNOWN   the management API has no figures yet for a queue declared
          since RabbitMQ last collected them (every 5 s by default)""",
    examples="""\
check_celery_queue -b redis://redis:6379/0 -q celery -q mail -w 100 -c 1000
check_celery_queue --broker-file /etc/celery/broker_url --all-queues -c 5000
check_celery_queue -b amqp://nagios@rabbit/prod -q celery -c 1000 \\
    --consumers-critical 1:
check_celery_queue -b amqp://monitor@rabbit/prod --all-queues \\
    --management-url http://monitor@rabbit:15672/ --unacked-warning 500
check_celery_queue -b redis://redis:6379/0 -q mail --consumers-critical 1: \\
    --oldest-warning 60 --oldest-critical 600
check_celery_queue -O global_keyprefix=myapp: -O 'priority_steps=[0,5,9]'""",
    prog="check_celery_queue", broker=True,
    summary="Alert when messages pile up in Celery queues.",
    thresholds=("each queue's waiting messages", None, None),
)


def parse_args(argv=None):
    parser = cli.make_parser(**HELP)
    group = parser.add_argument_group("queues")
    group.add_argument(
        "-q", "--queue", metavar="NAME", action="append", dest="queues", type=_queue_name,
        help="queue to count; repeatable (default: %s)" % DEFAULT_QUEUE,
    )
    group.add_argument(
        "--all-queues", action="store_true",
        help="every queue the Redis bindings or the management API name (see Check:)",
    )
    cli.add_state_option(
        group, "--missing-state", "state for a queue the broker does not know (Redis: "
        "not declared, RabbitMQ: not found) or no queue found by --all-queues", 2)
    group = parser.add_argument_group("consumers")
    group.add_argument(
        "--consumers", action="store_true",
        help="Redis: count each queue's consumers by a broadcast to the workers "
        "(implied by --consumers-warning and --consumers-critical)",
    )
    for level in ("warning", "critical"):
        group.add_argument(
            "--consumers-%s" % level, metavar="RANGE", type=thresholds.threshold_range,
            help="%s range on each queue's consumers (e.g. 1:)" % level,
        )
    cli.add_state_option(
        group, "--orphan-state", "state for a queue with waiting messages and no consumer, "
        "wherever consumers are known", 2)
    group.add_argument(
        "--reply-timeout", metavar="SECONDS", type=cli.positive_float,
        help="Redis: wait at most this long after the broadcast for the workers' "
        "replies (default: %s, at most half of -t)" % DEFAULT_REPLY_TIMEOUT,
    )
    group = parser.add_argument_group("unacknowledged and oldest")
    group.add_argument(
        "--unacked-per-queue", action="store_true",
        help="Redis: also count unacknowledged messages per queue (reads "
        "every reserved message, costly when there are many)",
    )
    group.add_argument(
        "--oldest", action="store_true",
        help="report each queue's oldest waiting message's age (implied by "
        "--oldest-*)",
    )
    for what, unit in (("unacked", "unacknowledged messages"),
                       ("oldest", "oldest waiting message's age in seconds")):
        for level in ("warning", "critical"):
            group.add_argument(
                "--%s-%s" % (what, level), metavar="RANGE", type=thresholds.threshold_range,
                help="%s range on each queue's %s" % (level, unit),
            )
    group = parser.add_argument_group("RabbitMQ management API")
    group.add_argument(
        "--management-url", metavar="URL", dest="management_given",
        help="http://[user[:password]@]host:15672/: ask it instead of AMQP; user "
        "and password default to the broker URL's (prefer the file or "
        "$CELERY_CHECKS_MANAGEMENT_URL)",
    )
    group.add_argument(
        "--management-url-file", metavar="PATH",
        help="read the management URL from the first line of this file",
    )
    args = parser.parse_args(argv)
    try:
        _finish(args)
    except CheckError as exc:
        parser.error(str(exc))
    return args


def _finish(args):
    import os

    from celery_checks.connect.management import management_url

    args.transport = args.broker.transport
    args.management = management_url(args.management_given, args.management_url_file,
                                     args.broker, os.environ)
    if args.all_queues and args.queues:
        raise CheckError("use either -q/--queue or --all-queues, not both")
    args.count_consumers = args.transport == "redis" and bool(
        args.consumers or args.consumers_warning or args.consumers_critical)
    args.oldest = bool(args.oldest or args.oldest_warning or args.oldest_critical)
    unacked_ranges = bool(args.unacked_warning or args.unacked_critical)
    if args.transport == "amqp":
        if args.management is None:
            for given, what in ((args.all_queues, "--all-queues"), (args.oldest, "--oldest"),
                                (args.unacked_per_queue or unacked_ranges, "--unacked-*")):
                if given:
                    raise CheckError("%s needs RabbitMQ's management API on a RabbitMQ "
                                     "broker: give --management-url" % what)
        if args.reply_timeout is not None:
            raise CheckError("--reply-timeout is for the Redis consumers broadcast: RabbitMQ "
                             "knows its consumers")
        too_long = [q for q in args.queues or () if len(q.encode("utf-8")) > 255]
        if too_long:
            raise CheckError("AMQP queue names are at most 255 bytes: %.40s..." % too_long[0])
    else:
        args.unacked_per_queue = args.unacked_per_queue or unacked_ranges
        args.layout = RedisLayout(args.broker.options)
        for queue in args.queues or ():
            bucket = args.layout.bucket_of(queue)
            if bucket:
                raise CheckError("%s is the key of queue %s's priority %d sub-list, not a "
                                 "queue (kombu cannot tell them apart)" % (
                                     shown(queue), shown(bucket[0]), bucket[1]))
    if args.reply_timeout is None:
        args.reply_timeout = min(DEFAULT_REPLY_TIMEOUT, args.timeout / 2)
    elif args.reply_timeout > args.timeout - 0.5:
        raise CheckError("--reply-timeout must stay below -t (%ss) by 0.5 s" % args.timeout)
    # Keep the order given, drop repeats (a repeated label breaks perfdata).
    args.queues = list(dict.fromkeys(args.queues or ([] if args.all_queues else [DEFAULT_QUEUE])))


def _queue_name(text):
    if not text:
        raise argparse.ArgumentTypeError("a queue name cannot be empty")
    return text
