"""The one ``before_task_publish`` handler celery-checks puts in a process.

Every task the process publishes (web app, beat, a worker's own
``.delay()``) leaves stamped with its publish time, which Celery 5 messages
do not carry, so check_celery_queue can tell how long the oldest message
has waited:

- the ``celery_checks_sent`` header, seconds since the epoch (ms), read on
  Redis (kombu keeps the headers in the message's JSON);
- the AMQP ``timestamp`` property, whole seconds, which RabbitMQ's
  management API shows as the queue's ``head_message_timestamp``.

A retried task is stamped anew: its age counts from its new publish.
Tasks that need more at publish (the heartbeat) add a hook for their
name (:func:`add_hook`) rather than a handler of their own.
"""

import time

from celery_checks.connect.layout import PUBLISH_TIME_HEADER

HANDLER_UID = "celery_checks.publish"
_hooks = {}  # task name -> fn(sender=, body=, headers=, routing_key=, ...)


def stamp(headers, properties):
    """Put the publish time on one outgoing task message."""
    now = time.time()
    if headers is not None:
        headers[PUBLISH_TIME_HEADER] = round(now, 3)
    if properties is not None:
        properties["timestamp"] = int(now)


def on_publish(sender=None, headers=None, properties=None, **kwargs):
    hook = _hooks.get(sender)
    if hook is not None:
        hook(sender=sender, headers=headers, properties=properties, **kwargs)
    stamp(headers, properties)


def add_hook(task_name, hook):
    """Run ``hook`` (the signal's keyword arguments) before a ``task_name``
    task leaves, inside the one handler; a later hook replaces an earlier."""
    _hooks[task_name] = hook
    connect()


def connect():
    """Connect the handler, once per process (signals are process-wide)."""
    from celery.signals import before_task_publish

    before_task_publish.connect(on_publish, weak=False, dispatch_uid=HANDLER_UID)
