"""The worker-side task records for check_celery_tasks: what each worker
process finished, per task name, sent to the store (celery_checks/store/tasks.py).

Where the facts come from (Celery signals, each in the process that sees it):

- ``task_prerun`` / ``task_postrun``: in the process that runs the task (the
  pool child under prefork, the worker itself under solo, threads, gevent
  and eventlet); postrun's ``state`` says how the run ended (SUCCESS,
  FAILURE, RETRY, REJECTED; IGNORED is not counted) and its ``retval`` is
  the exception of a failure; the runtime is the monotonic time between the
  two;
- ``task_revoked``: in the worker's main process (a revoked or expired
  task discarded, or one terminated by ``revoke(terminate=True)``);
- ``task_failure`` with a ``WorkerLostError``: in the main process, when a
  prefork child died under a task (it ran no postrun).

A task never waits for the store: the signal handlers only add to a tally in
memory (a lock and a few additions); a daemon thread of each process sends
the tallies every ``checks_tasks_flush_interval`` seconds (default
:data:`DEFAULT_FLUSH`) in one script, with socket timeouts of
:data:`TIMEOUT` seconds, and at shutdown once more. A store that is down,
slow or refuses us loses the tallies of that flush: they are dropped, never
retried, and the worker log says so once (per process) until the store
answers again, which is said too. No store (a RabbitMQ broker without
``checks_store_url``): nothing is recorded, said once at start.

Settings (``app.conf``; Django: ``CELERY_CHECKS_TASKS_...``):

    checks_tasks_record          False turns the recording off
    checks_tasks_flush_interval  seconds between sends (default 1)
    checks_tasks_max_names       distinct task names kept (default 500)
"""

import logging
import os
import threading
from bisect import bisect_left
from time import monotonic

from celery_checks.store import heartbeats as heartbeat_store
from celery_checks.store import tasks as store
from celery_checks.worker.heartbeat import _Store

log = logging.getLogger(__name__)

DEFAULT_FLUSH = 1.0
TIMEOUT = 1.0
# postrun's state -> the counter it adds to (store.COUNTERS' order)
OUTCOMES = {"SUCCESS": 0, "FAILURE": 1, "RETRY": 2, "REJECTED": 3}
SUCCEEDED, FAILED, REVOKED = 0, 1, 4


def _setting(app, key, kind, default):
    value = app.conf.get(key)
    try:
        value = kind(value)
        return value if value > 0 else default
    except (TypeError, ValueError):
        return default


class Recorder:
    """Tallies of one process, sent by a thread of that process, started
    with the first tally. A forked child (prefork) inherits neither the
    thread nor a usable lock: it starts afresh (os.register_at_fork)."""

    def __init__(self, app):
        self.app = app
        self.target = _Store(app, timeout=TIMEOUT, what="task store")
        self.failing = False
        self.dropped = 0
        self._forked()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self):
        self.lock = threading.Lock()
        self.tallies = {}
        self.started = {}  # task id -> monotonic start
        self.running = False

    def _launch(self):
        self.running = True
        self.interval = _setting(self.app, "checks_tasks_flush_interval", float, DEFAULT_FLUSH)
        self.max_names = _setting(self.app, "checks_tasks_max_names", int, store.MAX_NAMES)
        threading.Thread(target=self._loop, name="celery-checks-tasks", daemon=True).start()

    def finished(self, name, outcome, runtime=None, exception=None):
        """Count a finished task (``outcome``: an index of store.COUNTERS)."""
        now = monotonic()
        with self.lock:
            if not self.running:  # under the lock: one thread, also in a threads pool
                self._launch()
            tally = self.tallies.get(name)
            if tally is None:
                name = str(name)[:store.MAX_NAME]
                if len(self.tallies) >= self.max_names:
                    name = store.OTHER
                tally = self.tallies.get(name)
                if tally is None:
                    tally = self.tallies[name] = store.Tally()
            tally.counts[outcome] += 1
            if runtime is not None:
                tally.runtime_sum += runtime
                tally.buckets[bisect_left(store.BUCKETS, runtime)] += 1
            if outcome == SUCCEEDED:
                tally.success_at = now
            elif outcome == FAILED:
                tally.failure_at, tally.exception = now, exception or "?"

    def _loop(self):
        wait = threading.Event().wait
        while True:
            wait(self.interval)
            self.flush()

    def flush(self):
        """Send what was tallied; drop it if the store fails. Never raises."""
        with self.lock:
            tallies, self.tallies = self.tallies, {}
        if not tallies:
            return
        try:
            self.target.call(store.record, tallies, monotonic(), self.max_names)
        except Exception as exc:
            self.dropped += len(tallies)
            if not self.failing:
                log.error("%s; dropping task records until it answers again "
                          "(said once)", exc)
            self.failing = True
            return
        if self.failing:
            log.warning("celery_checks: task store answers again; records of %d task "
                        "names were dropped meanwhile", self.dropped)
            self.failing, self.dropped = False, 0


def register_task_records(app):
    """Connect the signal handlers of ``app``'s task records (unless
    ``checks_tasks_record`` is false)."""
    from celery import signals

    recorder = Recorder(app)
    uid = "celery_checks.tasks.%d" % id(app)

    def enabled():
        setting = app.conf.get("checks_tasks_record")
        return setting is None or str(setting).lower() not in ("0", "false", "no", "off", "")

    def ours(sender):
        return getattr(sender, "app", None) is app

    # prerun and postrun run for every task: kept to a few dictionary steps.
    def prerun(sender=None, task_id=None, **_):
        if getattr(sender, "app", None) is app:
            recorder.started[task_id] = monotonic()

    def postrun(sender=None, task_id=None, state=None, retval=None, **_):
        began = recorder.started.pop(task_id, None)
        outcome = OUTCOMES.get(state)
        if outcome is None or getattr(sender, "app", None) is not app:
            return
        runtime = None if began is None else max(0.0, monotonic() - began)
        exception = (type(retval).__name__ if outcome == FAILED
                     and isinstance(retval, BaseException) else None)
        recorder.finished(sender.name, outcome, runtime, exception)

    def revoked(sender=None, request=None, **_):
        if ours(sender):
            recorder.finished(sender.name, REVOKED)

    def lost(sender=None, exception=None, **_):
        # Only the main process's report of a dead pool child: every other
        # failure was counted by postrun already.
        if ours(sender) and type(exception).__name__ == "WorkerLostError":
            recorder.finished(sender.name, FAILED, exception="WorkerLostError")

    def started(sender=None, **_):
        if not enabled():
            return
        if not heartbeat_store.worker_store(app.conf)[0]:
            log.warning("celery_checks: no store (the broker is not Redis and "
                        "checks_store_url is not set): task outcomes are not recorded")
            return
        for signal, handler in ((signals.task_prerun, prerun), (signals.task_postrun, postrun),
                                (signals.task_revoked, revoked), (signals.task_failure, lost)):
            signal.connect(handler, weak=False, dispatch_uid=uid)

    def shutdown(**_):
        recorder.flush()

    signals.worker_init.connect(started, weak=False, dispatch_uid=uid)
    signals.worker_process_shutdown.connect(shutdown, weak=False, dispatch_uid=uid)
    signals.worker_shutdown.connect(shutdown, weak=False, dispatch_uid=uid)
    return recorder
