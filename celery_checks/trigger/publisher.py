"""The trigger's broker side: celery's app and producer, made ready before
anything is recorded, and the queues a publish would lose."""

from celery_checks.plugin import secrets
from celery_checks.plugin.policy import CheckError, Unreachable
from celery_checks.store import heartbeats as store


class Publisher:
    """The broker side, made ready before anything is recorded: celery
    imported, the app built, the connection open and every queue found
    declared. Whatever fails here (a transport that cannot be imported, a
    broker down or silent, a queue no worker declared) fails before the
    store knows of a publish, so it cannot read as a waiting heartbeat."""

    def __init__(self, args, timeout):
        from celery import Celery

        from celery_checks.connect.kombu import kombu_redis_compat
        from celery_checks.connect.options import bounded_timeouts

        self.args = args
        self.redis = args.broker.transport == "redis"
        if self.redis:
            kombu_redis_compat()  # kombu 5.2 + redis-py 4.3 (Debian 12)
        # every socket operation bounded by ``timeout``, whatever -O says
        options = bounded_timeouts(args.broker.options, timeout, args.broker.transport)
        options.setdefault("max_retries", 0)
        self.app = app = Celery("celery_checks_trigger", broker=args.broker.url,
                                set_as_current=False)
        app.conf.update(
            broker_transport_options=options,
            broker_connection_timeout=timeout,
            broker_connection_retry=False,
            broker_connection_max_retries=0,
            task_create_missing_queues=True,
        )
        self.timeout = timeout
        self.connection = None
        with self._errors():
            self.connection = app.connection_for_write()
            self.connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                             timeout=timeout)
            self.producer = app.amqp.Producer(self.connection.default_channel)
            self.undeclared = self._undeclared(args.queues)

    def _errors(self):
        return _broker_errors(self.args.broker.url)

    def _undeclared(self, queues):
        """The queues a publish would lose: on Redis no _kombu.binding.*
        set names them (no worker ever declared them), on RabbitMQ a passive
        declare finds no such queue. Nothing is declared."""
        if self.redis:
            return self._undeclared_redis(queues)
        from amqp.exceptions import NotFound

        missing = []
        for queue in queues:
            channel = self.connection.channel()
            try:
                channel.queue_declare(queue=queue, passive=True)
            except NotFound:
                missing.append(queue)
                continue  # the broker closed that channel
            channel.close()
        return missing

    def _undeclared_redis(self, queues):
        from celery_checks.connect.redis import redis_client
        from celery_checks.connect.layout import RedisLayout, discover_redis_queues

        layout = RedisLayout(self.args.broker.options)
        client = redis_client(self.args.broker.url, self.args.broker.options, self.timeout)
        try:
            # Fast path: a worker consuming Q binds it to exchange Q.
            replies = client.pipeline([("SMEMBERS", layout.binding_key(q)) for q in queues])
            missing = []
            for queue, members in zip(queues, replies):
                if queue not in layout.queues_of_binding(layout.binding_key(queue), members):
                    missing.append(queue)
            if missing:  # bound to another exchange? one SCAN of the bindings
                known = set(discover_redis_queues(client, layout))
                missing = [q for q in missing if q not in known]
            return missing
        finally:
            client.close()

    def send(self, queue, task_id, published):
        """send_task to one queue; no retries."""
        with self._errors():
            self.app.send_task(
                store.TASK_NAME, kwargs={"queue": queue}, queue=queue,
                task_id=task_id, expires=self.args.expires, ignore_result=True,
                headers={store.PUBLISHED_HEADER: published},
                producer=self.producer, retry=False, declare=[],
            )

    def close(self):
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception:
                pass


class _broker_errors:
    """Any broker failure as Unreachable naming the redacted URL; our own
    alarm and internal errors (an ImportError) pass through."""

    def __init__(self, url):
        self.url = url

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, (CheckError, Unreachable)):
            return False
        if isinstance(exc, ImportError):
            return False
        from celery_checks.connect.amqp import describe_amqp_error  # digs out the cause

        raise Unreachable("cannot publish to broker %s: %s" % (
            secrets.redact_url(self.url), describe_amqp_error(exc)))
