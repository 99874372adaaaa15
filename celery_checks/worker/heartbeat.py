"""The worker-side heartbeat: the ``celery_checks.heartbeat`` task, the
publish-time stamp, and the celery beat schedule helper.

``register_heartbeat_task(app)`` (called by ``celery_checks.install(app)``):

- registers ``celery_checks.heartbeat``: it runs in any pool, ignores its
  result, never retries, and records in the heartbeat store when it started,
  on which worker, and how long it waited since its publish;
- hooks into the process's ``before_task_publish`` handler
  (worker/publish.py) to stamp each heartbeat
  published through the app (celery beat, ``.delay()``) with the store time
  and records the publish, as ``trigger_celery_heartbeat`` does for its own
  messages. Celery 5 messages carry no sent time, and beat publishes by
  itself, so this is how the wait is measured from the real publish there too.

Expired heartbeats (Celery's ``expires``) are discarded by the worker before
the task runs, so they record nothing.

Nothing here imports celery at module level: ``beat_schedule`` is used from
Django settings files.
"""

import logging
import os
import socket

from celery_checks.store import heartbeats as store
from celery_checks.plugin.secrets import redact, redact_url

log = logging.getLogger(__name__)

DEFAULT_EVERY = 60
DEFAULT_EXPIRES = 300


def beat_schedule(queues=("celery",), every=DEFAULT_EVERY, expires=DEFAULT_EXPIRES):
    """Entries for ``app.conf.beat_schedule`` (Django: ``CELERY_BEAT_SCHEDULE``)
    that publish one heartbeat to each queue every ``every`` seconds; each
    expires ``expires`` seconds after its publish."""
    if isinstance(queues, str):
        queues = [queues]
    return {
        "celery_checks.heartbeat %s" % queue: {
            "task": store.TASK_NAME,
            "schedule": every,
            "kwargs": {"queue": queue},
            "options": {"queue": queue, "expires": expires},
        }
        for queue in queues
    }


class _Store:
    """The app's store client (celery_checks.connect.redis, the checks'
    own), made lazily in each process (a client made before a prefork fork
    must not be shared with the children); one connection, so the threads
    of a threads pool take turns."""

    def __init__(self, app, timeout=5.0, what="heartbeat store"):
        import threading

        self.app = app
        self.timeout, self.what = timeout, what
        self._client = None
        self._pid = None
        self._lock = threading.Lock()
        # a child forked while a parent's thread held the lock gets its own
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self):
        import threading

        self._lock, self._client = threading.Lock(), None

    def client(self):
        from celery_checks.connect.redis import redis_client

        url, options = store.worker_store(self.app.conf)
        if not url:
            raise RuntimeError(
                "celery_checks: no heartbeat store: the broker is not Redis, "
                "set checks_store_url (Django: CELERY_CHECKS_STORE_URL)")
        if self._client is None or self._pid != os.getpid():
            self._client = redis_client(url, options, timeout=self.timeout)
            self._pid = os.getpid()
            self.url, self.options = url, options
        return self._client

    def call(self, function, *args):
        from celery_checks.connect.redis import RedisError

        try:
            with self._lock:
                client = self.client()
                return function(client, *args, transport_options=self.options)
        except (RedisError, OSError) as exc:
            # One line naming the redacted store; no chained traceback that
            # could carry the URL with its password.
            raise RuntimeError(redact("celery_checks: %s %s: %s: %s" % (
                self.what, redact_url(self.url), type(exc).__name__, exc))) from None


def register_heartbeat_task(app):
    from celery_checks.worker.publish import add_hook

    heartbeat_store = _Store(app)

    @app.task(name=store.TASK_NAME, bind=True, ignore_result=True,
              max_retries=0, shared=False)
    def heartbeat(self, queue=None):
        """Record that this worker started a heartbeat of ``queue``."""
        request = self.request
        queue = queue or (request.delivery_info or {}).get("routing_key") or "celery"
        published = _published_header(request)
        heartbeat_store.call(store.record_start, queue, published, request.id, request.hostname)

    def stamp(sender=None, body=None, headers=None, routing_key=None, **_):
        """Before a heartbeat leaves this process: record its publish in the
        store and carry the store time in its headers."""
        if headers is None or store.PUBLISHED_HEADER in headers:
            return  # protocol 1, or already stamped (the trigger does)
        queue = _queue_of(body) or routing_key or "celery"
        publisher = "celery@%s" % socket.gethostname()
        try:
            headers[store.PUBLISHED_HEADER] = heartbeat_store.call(
                store.record_publish, [queue], [headers.get("id") or ""], publisher)
        except Exception as exc:
            # Beat must keep publishing; the worker records the start without
            # a wait, and the check's age still tells the truth.
            log.warning("%s; heartbeat to %s sent without publish time", exc, queue)

    # The process's one before_task_publish handler (worker/publish.py) runs
    # it for heartbeats: the app installed last names the store. A process
    # normally has a single app.
    add_hook(store.TASK_NAME, stamp)
    return heartbeat


def _published_header(request):
    # Celery puts custom message headers on the request itself; some
    # versions also keep them in request.headers.
    value = getattr(request, store.PUBLISHED_HEADER, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(store.PUBLISHED_HEADER)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _queue_of(body):
    """The queue kwarg of a heartbeat message body (protocol 2 or 1)."""
    if isinstance(body, (tuple, list)) and len(body) >= 2 and isinstance(body[1], dict):
        return body[1].get("queue")
    if isinstance(body, dict):
        return (body.get("kwargs") or {}).get("queue")
    return None
