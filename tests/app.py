"""The tiny Celery app the tests' real workers run (celery -A tests.app)."""

import os
import time

from celery import Celery

app = Celery("tests", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"))
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
)


@app.task(name="tests.add")
def add(x, y):
    return x + y


@app.task(name="tests.sleep")
def sleep(seconds):
    time.sleep(seconds)
