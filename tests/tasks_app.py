"""tests.app with tasks that fail, retry, reject and die, as the task-record
tests configure it (celery -A tests.tasks_app):

- TEST_TASKS_STORE: the store (``app.conf.checks_store_url``);
- TEST_TASKS_RESULTS: a result backend, so a test reads each task's result;
- TEST_TASKS_FLUSH: ``checks_tasks_flush_interval`` (seconds);
- TEST_TASKS_MAX_NAMES: ``checks_tasks_max_names``;
- TEST_TASKS_RECORD: ``checks_tasks_record`` (0: off; the benchmark's baseline);
- TEST_TASKS_BEAT_EVERY: a celery beat schedule running ``tests.nightly``
  that often (seconds).
"""

import os

from celery.exceptions import Reject

from tests.app import app

if os.environ.get("TEST_TASKS_STORE"):
    app.conf.checks_store_url = os.environ["TEST_TASKS_STORE"]
if os.environ.get("TEST_TASKS_RESULTS"):
    app.conf.result_backend = os.environ["TEST_TASKS_RESULTS"]
    app.conf.task_ignore_result = False
for _key, _env in (("checks_tasks_flush_interval", "TEST_TASKS_FLUSH"),
                   ("checks_tasks_max_names", "TEST_TASKS_MAX_NAMES"),
                   ("checks_tasks_record", "TEST_TASKS_RECORD")):
    if os.environ.get(_env):
        app.conf[_key] = os.environ[_env]
if os.environ.get("TEST_TASKS_BEAT_EVERY"):
    app.conf.beat_schedule = {"nightly": {
        "task": "tests.nightly", "schedule": float(os.environ["TEST_TASKS_BEAT_EVERY"])}}


@app.task(name="tests.divide")
def divide(x, y):
    return x / y  # y=0: ZeroDivisionError


@app.task(name="tests.flaky", bind=True, max_retries=5)
def flaky(self, retries):
    """Asks for ``retries`` retries, then succeeds."""
    if self.request.retries < retries:
        raise self.retry(countdown=0)
    return self.request.retries


@app.task(name="tests.refuse")
def refuse():
    raise Reject("refused", requeue=False)


@app.task(name="tests.die")
def die():
    os._exit(1)  # the pool process dies under the task


@app.task(name="tests.nightly")
def nightly():
    return "done"


LONG_NAME = "tests.long." + "x" * 300  # names are cut to 200 characters in the store


@app.task(name=LONG_NAME)
def long_name():
    return 1


@app.task(name="tests.named")
def named(number):
    return number
