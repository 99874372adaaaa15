"""trigger_celery_heartbeat's options, run and failure handling (the
package docstring says what it does, step by step)."""

import argparse
import signal
import socket
import sys
import textwrap
import traceback
import uuid

from celery_checks import __version__
from celery_checks.plugin import cli, secrets
from celery_checks.store import heartbeats as store
from celery_checks.trigger.publisher import Publisher
from celery_checks.plugin.policy import CheckError, Unreachable

PROG = "trigger_celery_heartbeat"
DEFAULT_EXPIRES = 300
DEFAULT_TIMEOUT = 10

EPILOG = """\
Exit status:
  0  heartbeats published (one line on stdout)
  1  nothing or not all published: the store or the broker failed, a
     queue is not declared on the broker, -t expired (one line on stderr;
     the check then reports "trigger failing" with the reason)
  2  bad arguments (usage on stderr), nothing published
  3  -h or -V: nothing published, so a cron entry or a unit
     misconfigured with them never reads as success

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


class TriggerParser(cli.CheckArgumentParser):
    """The checks' parser (shared options, URLs resolved after parsing), but
    bad arguments exit 2 with the usage on stderr (cron mails stderr); -h
    and -V exit 3 like every check's: nothing was published."""

    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write("%s: error: %s\n" % (self.prog, secrets.redact(" ".join(message.split()))))
        sys.exit(2)

    def exit(self, status=0, message=None):
        if message:
            (sys.stdout if status == 0 else sys.stderr).write(message)
        sys.stdout.flush()
        sys.exit(3 if status == 0 else status)


def parse_args(argv=None):
    parser = TriggerParser(
        prog=PROG,
        description="Publish one celery_checks heartbeat to each queue and record\n"
        "the publish time in the heartbeat store, for check_celery_heartbeat.",
        epilog=EPILOG,
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(
            prog, width=cli.HELP_WIDTH, max_help_position=30),
        add_help=False,
        status_name=PROG,
    )
    parser._optionals.title = "options"
    parser.add_argument("-h", "--help", action="help", help="show this help and exit 3")
    parser.add_argument("-V", "--version", action="version", help="show the version and exit 3",
                        version="%s (celery-checks) %s" % (PROG, __version__))
    cli.add_queue_option(parser, "queue to send a heartbeat through; repeatable (default: celery)")
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
    cli.add_store_options(parser)
    return parser.parse_args(argv)


def store_client(args, timeout):
    from celery_checks.connect.redis import redis_client

    return redis_client(args.store.url, args.broker.options, timeout)


def run(args, task_ids, step):
    """Prepare, read the store's time, publish, record what was published.
    Returns None, or the failure message after recording it for the queues
    it concerns (best effort: the store may be what failed)."""
    from celery_checks.connect.redis import redis_errors

    publisher = client = None
    sent, published, recorded = [], None, False
    try:
        publisher = Publisher(args, step)
        with redis_errors(args.store.url, "heartbeat store"):
            client = store_client(args, step)
            published = store.now(client)
        ids = dict(zip(args.queues, task_ids))
        # A queue no worker declared gets nothing (its heartbeat would be
        # lost), the others theirs: a typo in one -q must not stop them all.
        for queue in args.queues:
            if queue not in publisher.undeclared:
                publisher.send(queue, ids[queue], published)
                sent.append(queue)
        with redis_errors(args.store.url, "heartbeat store"):
            store.record_published(client, sent, [ids[q] for q in sent], published,
                                   _publisher(), args.broker.options)
        recorded = True
        if publisher.undeclared:
            raise _Undeclared(publisher.undeclared)
        return None
    except BaseException as exc:
        message = _message(exc, args)
        _salvage(args, client, sent, task_ids, published, recorded, exc, message)
        raise _Failed(message)
    finally:
        if publisher is not None:
            publisher.close()


class _Undeclared(Exception):
    def __init__(self, queues):
        super().__init__(queues)
        self.queues = queues


class _Failed(Exception):
    pass


def _publisher():
    return "trigger@%s" % socket.gethostname()


def _message(exc, args):
    if isinstance(exc, _Expired):
        return "gave up after %ds (-t)" % args.timeout
    if isinstance(exc, _Undeclared):
        return "%s %s not declared on broker %s: no worker consumes %s" % (
            "queue" if len(exc.queues) == 1 else "queues", ", ".join(exc.queues),
            secrets.redact_url(args.broker.url), "it" if len(exc.queues) == 1 else "them")
    if isinstance(exc, (Unreachable, CheckError)):
        return str(exc)
    if isinstance(exc, Exception):
        return "internal error: %s" % _reason(exc)
    return type(exc).__name__  # KeyboardInterrupt, SystemExit


def _salvage(args, client, sent, task_ids, published, recorded, exc, message):
    """After a failure: record the heartbeats that did go out (so a queue
    is not left looking idle), and the failure for the queues that did not
    get one, so the check says "trigger failing" with the reason. Never
    records a publish that did not happen. Bounded by its own short timeout;
    errors here are dropped, the failure itself is what we report."""
    signal.alarm(0)
    failed = [q for q in args.queues if q not in sent]
    try:
        if client is None:
            client = store_client(args, 1.0)
        if sent and not recorded:
            ids = dict(zip(args.queues, task_ids))
            store.record_published(client, sent, [ids[q] for q in sent], published,
                                   _publisher(), args.broker.options)
        if failed:
            store.record_failure(client, failed, secrets.redact(message), args.broker.options)
    except BaseException:
        pass


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
    # Network steps in a row: each gets under half of -t, so a silent peer
    # is named by its own timeout before -t has to fire.
    step = max(0.2, args.timeout * 0.4)
    task_ids = [str(uuid.uuid4()) for _ in args.queues]
    try:
        run(args, task_ids, step)
    except _Failed as exc:
        _fail(str(exc), args)
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
