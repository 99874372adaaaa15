"""trigger_celery_heartbeat: publish one heartbeat to each monitored queue.

Run it from cron every minute (or let celery beat publish them, see
``celery_checks.beat_schedule``); ``check_celery_heartbeat`` then tells
whether each heartbeat went through its queue in time.

1. record the publish in the heartbeat store, one round trip: the store's
   own TIME becomes the publish time (the clock rule, heartbeat_store.py);
2. publish ``celery_checks.heartbeat`` to each queue by name with a minimal
   Celery app built here (no user app import), the publish time in a header
   and an expiry, so an outage never leaves a flood of stale heartbeats.

Not a Nagios check: for cron, it prints one line and exits 0 on success;
on failure one line on stderr and exit 1; bad arguments exit 2 with usage.
Queues are not declared: a queue with special arguments (quorum, TTL) stays
as the workers declared it.
"""

import argparse
import signal
import socket
import sys
import textwrap
import traceback
import uuid

from celery_checks import __version__, cli, secrets
from celery_checks import heartbeat_store as store
from celery_checks.broker import broker_settings
from celery_checks.policy import CheckError, Unreachable

PROG = "trigger_celery_heartbeat"
DEFAULT_EXPIRES = 300
DEFAULT_TIMEOUT = 10

EPILOG = """\
Exit status:
  0  heartbeats published (one line on stdout)
  1  the store or the broker failed or -t expired (one line on stderr)
  2  bad arguments (usage on stderr)

Examples:
  # crontab: a heartbeat through two queues every minute; cron mails
  # only failures (stderr)
  * * * * * trigger_celery_heartbeat --broker-file /etc/celery/broker \\
      -q celery -q mail >/dev/null
  trigger_celery_heartbeat -b amqp://mq// --store redis://cache/3 -q celery
"""


class _Expired(BaseException):
    """Our own -t, raised by SIGALRM wherever the run is (BaseException, so
    no library's ``except Exception`` swallows it)."""


class TriggerParser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write("%s: error: %s\n" % (self.prog, secrets.redact(" ".join(message.split()))))
        sys.exit(2)


def parse_args(argv=None):
    parser = TriggerParser(
        prog=PROG,
        description="Publish one celery_checks heartbeat to each queue and record\n"
        "the publish time in the heartbeat store, for check_celery_heartbeat.",
        epilog=EPILOG,
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(
            prog, width=cli.HELP_WIDTH, max_help_position=30),
    )
    parser._optionals.title = "options"
    parser.add_argument("-V", "--version", action="version",
                        version="%s (celery-checks) %s" % (PROG, __version__))
    parser.add_argument(
        "-q", "--queue", metavar="QUEUE", action="append", dest="queues",
        help="queue to send a heartbeat through; repeatable (default: celery)",
    )
    parser.add_argument(
        "--expires", metavar="SECONDS", type=cli.positive_int, default=DEFAULT_EXPIRES,
        help="workers discard a heartbeat not started this long after its "
        "publish (default: %d)" % DEFAULT_EXPIRES,
    )
    parser.add_argument(
        "-t", "--timeout", metavar="SECONDS", type=cli.positive_int, default=DEFAULT_TIMEOUT,
        help="give up after this many seconds, exit 1 (default: %d)" % DEFAULT_TIMEOUT,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="show a traceback on failure")
    cli.add_broker_options(parser)
    store.add_store_options(parser)
    args = parser.parse_args(argv)
    try:
        args.broker_url, args.transport_options = broker_settings(args)
        args.store_url = store.resolve_store_url(args.store, args.store_file, args.broker_url)
    except CheckError as exc:
        parser.error(str(exc))
    args.queues = list(dict.fromkeys(q.strip() for q in args.queues or ["celery"]))
    if not all(args.queues):
        parser.error("a queue name cannot be empty")
    return args


def record(args, task_ids, timeout):
    from celery_checks.broker import redis_client, redis_errors

    with redis_errors(args.store_url, "heartbeat store"):
        client = redis_client(args.store_url, args.transport_options, timeout)
        return store.record_publish(
            client, args.queues, task_ids, "trigger@%s" % socket.gethostname(),
            args.transport_options)


def forget(args, task_ids, published, exc, timeout):
    """The publish failed after it was recorded: say so in the store, so
    the check reports a failing trigger rather than a stuck queue."""
    from celery_checks.broker import redis_client

    try:
        client = redis_client(args.store_url, args.transport_options, timeout)
        store.record_failed_publish(client, args.queues, task_ids, published,
                                    secrets.redact(str(exc)), args.transport_options)
    except (Exception, _Expired):  # the failure itself is what we report
        pass


def publish(args, task_ids, published, timeout):
    """send_task to each queue over one connection; no retries, every
    socket operation bounded by ``timeout``."""
    from celery import Celery

    from celery_checks.broker import bounded_timeouts, kombu_redis_compat, transport_of

    transport = transport_of(args.broker_url)
    if transport == "redis":
        kombu_redis_compat()  # kombu 5.2 + redis-py 4.3 (Debian 12)
    # every socket operation bounded by ``timeout``, whatever -O says
    options = bounded_timeouts(args.transport_options, timeout, transport)
    options.setdefault("max_retries", 0)
    app = Celery("celery_checks_trigger", broker=args.broker_url, set_as_current=False)
    app.conf.update(
        broker_transport_options=options,
        broker_connection_timeout=timeout,
        broker_connection_retry=False,
        broker_connection_max_retries=0,
        task_create_missing_queues=True,
    )
    try:
        with app.producer_or_acquire() as producer:
            for queue, task_id in zip(args.queues, task_ids):
                app.send_task(
                    store.TASK_NAME, kwargs={"queue": queue}, queue=queue,
                    task_id=task_id, expires=args.expires, ignore_result=True,
                    headers={store.PUBLISHED_HEADER: published},
                    producer=producer, retry=False, declare=[],
                )
    except Exception as exc:
        from celery_checks.broker import describe_amqp_error  # digs out the cause

        raise Unreachable("cannot publish to broker %s: %s" % (
            secrets.redact_url(args.broker_url), describe_amqp_error(exc)))


def _reason(exc):
    text = " ".join(str(exc).split())
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


def _fail(message, args=None):
    lines = "%s: %s" % (PROG, " ".join(message.split()))
    if args is not None and args.verbose:
        lines = traceback.format_exc() + lines
    sys.stderr.write(secrets.redact(lines) + "\n")
    sys.exit(1)


def _expired(signum, frame):
    raise _Expired()


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGALRM, _expired)
    signal.alarm(args.timeout)
    # Two network steps in a row: each gets under half of -t, so a silent
    # peer is named by its own timeout before -t has to fire.
    step = max(0.2, args.timeout * 0.4)
    task_ids = [str(uuid.uuid4()) for _ in args.queues]
    try:
        published = record(args, task_ids, step)
        try:
            publish(args, task_ids, published, step)
        except Unreachable as exc:
            forget(args, task_ids, published, exc, step)
            raise
    except _Expired:
        _fail("gave up after %ds (-t)" % args.timeout, args)
    except (Unreachable, CheckError) as exc:
        _fail(str(exc), args)
    except Exception as exc:
        _fail("internal error: %s" % _reason(exc), args)
    finally:
        signal.alarm(0)
    queues = ", ".join(args.queues)
    print(textwrap.shorten(
        "published %d heartbeat%s (expire in %ds) to %s" % (
            len(args.queues), "" if len(args.queues) == 1 else "s", args.expires, queues),
        200, placeholder=" ..."))
    return 0


if __name__ == "__main__":
    main()
