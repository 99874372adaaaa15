"""The tiny Celery app the tests' real workers run (celery -A tests.app)."""

import os
import time

from celery import Celery

import celery_checks

app = Celery("tests", broker=os.environ.get("CELERY_BROKER_URL", "memory://"))
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
)
# The pulse emitter's settings, given by tests/test_pulse_emitter.py as
# environment variables named like the Django settings (CELERY_CHECKS_...).
for _key in ("checks_pulse_file", "checks_pulse_interval", "checks_beat_pulse_file"):
    if os.environ.get("CELERY_" + _key.upper()):
        app.conf[_key] = os.environ["CELERY_" + _key.upper()]
# broker_transport_options as JSON (e.g. a global_keyprefix), for the tests
# that check the -O transport options reach the same keys as the workers.
if os.environ.get("CELERY_BROKER_TRANSPORT_OPTIONS"):
    import json

    app.conf.broker_transport_options = json.loads(os.environ["CELERY_BROKER_TRANSPORT_OPTIONS"])
# Tests that need a worker without celery-checks set CELERY_CHECKS_DISABLE=1.
if not os.environ.get("CELERY_CHECKS_DISABLE"):
    celery_checks.install(app)


@app.task(name="tests.add")
def add(x, y):
    return x + y


@app.task(name="tests.sleep")
def sleep(seconds):
    time.sleep(seconds)


@app.task(name="tests.block")
def block(path, limit=60):
    """Hold the worker until ``path`` exists (the test releases it), so
    the messages it prefetched stay reserved, unacknowledged, for as long
    as the test needs: no sleep decides what the broker shows."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
