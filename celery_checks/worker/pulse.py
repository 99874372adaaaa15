"""Pulse emitter: a file that stays fresh only while the loop is alive.

Worker and beat processes keep a small JSON file fresh for
check_celery_pulsefile. Unlike celery-pulse, which touches the file from a
free-running thread, the pulse here is written by the loop that does the
work, so a blocked loop, a lost broker connection or a consumer that stopped
consuming leave the file to go stale:

- worker: a consumer bootstep in the main process. With an event loop (the
  hub: Redis or RabbitMQ under prefork, solo or threads) the hub's timer
  writes it; otherwise (gevent, eventlet, transports without async support)
  the polling loop writes it once per cycle, which waits up to 2 s for
  messages. The bootstep starts only once the consumer is connected and its
  task consumer set up, and stops on connection loss and shutdown.
- beat: the scheduler's own tick writes it, and the tick is made to come
  back at least every interval.

Configuration, read when the worker or beat starts (so ``install(app)`` may
come before ``config_from_object``); nothing happens unless a path is set:

    checks_pulse_file       worker path, with Celery's node-name placeholders
                            (%n %h %d %p, as for -n and --logfile)
    checks_beat_pulse_file  beat's path (%n is "beat", %h the host name)
    checks_pulse_interval   seconds between writes (default 10)

A Django project sets them as CELERY_CHECKS_PULSE_FILE etc. through
``config_from_object("django.conf:settings", namespace="CELERY")``.
"""

import json
import os
import socket
import time

import celery
from celery import bootsteps, signals
from celery.utils.log import get_logger
from celery.utils.nodenames import node_format

logger = get_logger(__name__)

DEFAULT_INTERVAL = 10.0
WORKER_KEY = "checks_pulse_file"
BEAT_KEY = "checks_beat_pulse_file"
INTERVAL_KEY = "checks_pulse_interval"


def pulse_interval(app):
    """Seconds between writes from app.conf; the default when unusable."""
    value = app.conf.get(INTERVAL_KEY)
    if value is None or value == "":
        return DEFAULT_INTERVAL
    try:
        interval = float(value)
        if not 0 < interval < float("inf"):
            raise ValueError
    except (TypeError, ValueError):
        logger.error("celery-checks: %s=%r is not a positive number of seconds; using %ss",
                     INTERVAL_KEY, value, DEFAULT_INTERVAL)
        return DEFAULT_INTERVAL
    return interval


def pulse_for(app, key, node):
    """A PulseWriter for the path configured under ``key``, or None."""
    template = app.conf.get(key)
    if not template:
        return None
    try:
        path = node_format(str(template), node)
    except ValueError as exc:  # an unknown %x placeholder
        logger.error("celery-checks: %s=%r: %s; no pulse file", key, template, exc)
        return None
    return PulseWriter(os.path.abspath(path), node, pulse_interval(app))


class PulseWriter:
    """Writes {node, pid, time, state, celery} atomically; never raises."""

    def __init__(self, path, node, interval):
        self.path = path
        self.node = node
        self.interval = interval
        self.last = None  # monotonic time of the last attempt to write
        self.failing = False

    def due(self):
        return self.last is None or time.monotonic() - self.last >= self.interval

    def remaining(self):
        """Seconds until the next write is due."""
        if self.last is None:
            return 0.0
        return max(0.0, self.interval - (time.monotonic() - self.last))

    def write(self, state="running"):
        content = json.dumps({
            "node": self.node, "pid": os.getpid(), "time": round(time.time(), 3),
            "state": state, "celery": celery.__version__,
        }) + "\n"
        self.last = time.monotonic()  # a failing write is retried next interval
        try:
            self._replace(content)
        except Exception as exc:  # a pulse must never take the worker down
            if not self.failing:
                logger.error("celery-checks: cannot write pulse file %s: %s "
                             "(logged once, retrying every %ss)", self.path, exc, self.interval)
            self.failing = True
            return False
        if self.failing:
            logger.warning("celery-checks: pulse file %s written again", self.path)
            self.failing = False
        return True

    def _replace(self, content):
        directory, name = os.path.split(self.path)
        # Same directory so os.replace is atomic; the leading dot keeps
        # globs such as *.pulse from ever matching a half-written file.
        temporary = os.path.join(directory, ".%s.%d.tmp" % (name, os.getpid()))
        try:
            handle = open(temporary, "w")
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            handle = open(temporary, "w")
        try:
            with handle:
                handle.write(content)
            os.replace(temporary, self.path)
        except BaseException:
            _unlink_quietly(temporary)
            raise


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


# -------------------------------------------------------------------- worker

class WorkerPulse(bootsteps.StartStopStep):
    """Consumer bootstep: writes the pulse while the consumer consumes.

    Started after the task consumer exists (so after the broker connection),
    stopped by Celery when the connection is lost or the worker shuts down.
    """

    label = "celery-checks pulse"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs):
        super().__init__(c, **kwargs)
        self.pulse = pulse_for(c.app, WORKER_KEY, c.hostname)
        self.consumer = c
        self.consuming = False
        self.entry = None
        self.hooked = False

    def include_if(self, c):
        return self.pulse is not None

    def start(self, c):
        self._cancel()
        self.consuming = True
        if c.hub is not None:
            # Event loop: the hub runs its timer between polls, in the main
            # thread; a task that blocks the hub (solo pool) blocks the pulse.
            c.hub.call_soon(self.tick)
            self.entry = c.hub.call_repeatedly(self.pulse.interval, self.tick)
        elif not self.hooked:
            # synloop calls c.perform_pending_operations() every cycle.
            self.hooked = True
            pending = c.perform_pending_operations

            def cycle():
                if self.pulse.due():
                    self.tick()
                return pending()

            c.perform_pending_operations = cycle
        logger.info("celery-checks: pulse file %s every %ss", self.pulse.path, self.pulse.interval)

    def tick(self):
        if self.consuming and self._has_queues():
            self.pulse.write("running")

    def _has_queues(self):
        # `celery control cancel_consumer` for every queue leaves a
        # connected worker that consumes nothing: not alive for our purpose.
        task_consumer = getattr(self.consumer, "task_consumer", None)
        return task_consumer is None or bool(task_consumer.queues)

    def stop(self, c):
        self.consuming = False
        self._cancel()

    def shutdown(self, c):
        self.stop(c)
        self.pulse.write("stopped")

    def _cancel(self):
        entry, self.entry = self.entry, None
        if entry is not None:
            entry.cancel()


# ---------------------------------------------------------------------- beat

def _beat_pulse(app, service):
    """Wrap the scheduler's tick (and close) of a starting beat service."""
    host = getattr(service, "hostname", None) or socket.gethostname()
    pulse = pulse_for(app, BEAT_KEY, "beat@" + host)
    if pulse is None:
        return
    scheduler = service.scheduler
    tick, close = scheduler.tick, scheduler.close

    def pulse_tick(*args, **kwargs):
        delay = tick(*args, **kwargs)
        if pulse.due():
            pulse.write("running")
        # Come back when the next pulse is due even if no task is: beat
        # would otherwise sleep up to beat_max_loop_interval (300 s).
        if delay is None:
            return delay
        return min(delay, pulse.remaining())

    def pulse_close(*args, **kwargs):
        try:
            return close(*args, **kwargs)
        finally:
            pulse.write("stopped")

    scheduler.tick = pulse_tick
    scheduler.close = pulse_close
    logger.info("celery-checks: beat pulse file %s every %ss", pulse.path, pulse.interval)


def register_pulse(app):
    """Add the worker bootstep and the beat hook; both idle unless configured."""
    app.steps["consumer"].add(WorkerPulse)

    def on_beat_init(sender, **kwargs):
        if getattr(sender, "app", None) is app:
            _beat_pulse(app, sender)

    signals.beat_init.connect(on_beat_init, weak=False,
                              dispatch_uid="celery_checks.pulse.%d" % id(app))
