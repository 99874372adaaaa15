"""tests.app as the heartbeat tests configure it (celery -A tests.heartbeat_app):

- TEST_HEARTBEAT_STORE: the store named in ``app.conf.checks_store_url``, as
  a RabbitMQ shop configures it;
- TEST_HEARTBEAT_KEYPREFIX: kombu's global_keyprefix transport option;
- TEST_HEARTBEAT_BEAT_QUEUES (comma separated) and TEST_HEARTBEAT_BEAT_EVERY:
  a fast celery beat schedule from ``celery_checks.beat_schedule``.
"""

import os

import celery_checks
from tests.app import app

if os.environ.get("TEST_HEARTBEAT_STORE"):
    app.conf.checks_store_url = os.environ["TEST_HEARTBEAT_STORE"]

if os.environ.get("TEST_HEARTBEAT_KEYPREFIX"):
    app.conf.broker_transport_options = {"global_keyprefix": os.environ["TEST_HEARTBEAT_KEYPREFIX"]}

if os.environ.get("TEST_HEARTBEAT_BEAT_QUEUES"):
    app.conf.beat_schedule = celery_checks.beat_schedule(
        os.environ["TEST_HEARTBEAT_BEAT_QUEUES"].split(","),
        every=float(os.environ.get("TEST_HEARTBEAT_BEAT_EVERY", "1")),
    )
