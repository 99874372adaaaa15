#!/usr/bin/env python3
"""What celery_checks.install(app)'s publish stamp costs a producer.

    .venv/bin/python bench/stamp.py             # 10,000 tasks each way, Redis and RabbitMQ
    .venv/bin/python bench/stamp.py -n 2000 --rounds 4

Publishes N tasks without and N with the stamp, with app.send_task the way a
web app does, to a redis-server of its own and to a RabbitMQ vhost of its
own (the test kit's services, removed afterwards), in short rounds that
alternate between three set-ups, so that load from elsewhere hits them
alike: no before_task_publish receiver at all; what install(app) connected
before the stamp (a receiver for the heartbeat task only, which already
makes Celery dispatch the signal for every task); the stamping handler
(worker/publish.py). Prints the median time per task of each and the
handler's own cost (N calls, no broker). The machine is shared and noisy:
compare the columns of one run.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def publish_round(app, queue, count):
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task("tests.add", args=(1, 2), queue=queue, producer=producer)
    return (time.perf_counter() - started) / count


def measure(url, total, rounds, purge):
    from celery import Celery
    from celery.signals import before_task_publish

    from celery_checks.worker import publish

    app = Celery("stamp-bench", broker=url, set_as_current=False)
    app.conf.task_ignore_result = True
    times = {"none": [], "heartbeat": [], "stamp": []}
    count = max(1, total // rounds)

    def heartbeat_only(**_):
        pass

    try:
        publish_round(app, "stamp-bench", 100)  # connect, declare, warm up
        for _ in range(rounds):
            for kind in times:
                if kind == "heartbeat":
                    before_task_publish.connect(heartbeat_only, sender="celery_checks.heartbeat",
                                                weak=False, dispatch_uid="stamp-bench")
                elif kind == "stamp":
                    publish.connect()
                try:
                    times[kind].append(publish_round(app, "stamp-bench", count))
                finally:
                    before_task_publish.disconnect(dispatch_uid=publish.HANDLER_UID)
                    before_task_publish.disconnect(sender="celery_checks.heartbeat",
                                                   dispatch_uid="stamp-bench")
                purge(app)
    finally:
        app.close()
    return {kind: statistics.median(values) for kind, values in times.items()}


def handler_alone(count):
    from celery_checks.worker import publish

    started = time.perf_counter()
    for _ in range(count):
        publish.on_publish(sender="tests.add", headers={"id": "x"}, properties={})
    return (time.perf_counter() - started) / count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10000,
                        help="tasks published in each set-up (default 10000)")
    parser.add_argument("--rounds", type=int, default=20,
                        help="alternating rounds they are split in (default 20)")
    args = parser.parse_args(argv)

    from tests.kit import rabbitmq
    from tests.kit.redis_servers import RedisServer

    def purge(app):
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge("stamp-bench")

    rows = []
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            rows.append(("Redis", measure(server.url(0), args.n, args.rounds, purge)))
        finally:
            server.stop()
    if rabbitmq.available() is None:
        with rabbitmq.Vhost("cc-stamp-bench") as vhost:
            rows.append(("RabbitMQ", measure(vhost.url, args.n, args.rounds, purge)))
    alone = handler_alone(args.n)
    print("send_task of %d tasks each way in %d alternating rounds; median per task:"
          % (args.n, args.rounds))
    print("  no receiver: no before_task_publish receiver in the process")
    print("  heartbeat:   install(app) before the stamp (a receiver for heartbeats only)")
    print("  stamp:       install(app) now (every task stamped)")
    print("%-9s %14s %14s %14s %22s" % ("broker", "no receiver", "heartbeat", "stamp",
                                         "stamp vs heartbeat"))
    for name, result in rows:
        cost = result["stamp"] - result["heartbeat"]
        print("%-9s %11.1f us %11.1f us %11.1f us %+10.1f us (%+.1f%%)" % (
            name, result["none"] * 1e6, result["heartbeat"] * 1e6, result["stamp"] * 1e6,
            cost * 1e6, 100 * cost / result["heartbeat"]))
    print("the handler alone (no broker): %.2f us per task" % (alone * 1e6))


if __name__ == "__main__":
    main()
