"""Publishing tasks the way an application does (Celery's send_task), for
tests that need messages waiting in a queue, and declaring a queue on
Redis the way a worker consuming it does (kombu's binding), for tests that
need it declared and empty."""


class Apps:
    """``make(broker_url, **transport_options)`` -> a Celery app (no user
    app is imported); :meth:`close` closes every app made."""

    def __init__(self):
        self.apps = []

    def __call__(self, broker_url, **transport_options):
        from celery import Celery

        app = Celery("celery-checks-test-producer", broker=broker_url, set_as_current=False)
        app.conf.broker_transport_options = transport_options
        app.conf.task_ignore_result = True
        self.apps.append(app)
        return app

    def close(self):
        for app in self.apps:
            app.close()


def publish(app, queue, count=1, priority=None, task="tests.add", args=(1, 2)):
    """Send ``count`` tasks like an application would; returns their ids."""
    ids = []
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            ids.append(app.send_task(task, args=args, queue=queue, priority=priority,
                                     producer=producer).id)
    return ids


def declare_on_redis(client, queue, prefix=""):
    """What a worker consuming ``queue`` leaves in Redis: kombu's binding of
    the queue to the exchange named after it (under ``prefix``, kombu's
    global_keyprefix)."""
    client.sadd("%s_kombu.binding.%s" % (prefix, queue), "%s\x06\x16\x06\x16%s" % (queue, queue))
