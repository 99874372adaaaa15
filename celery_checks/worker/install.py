"""``celery_checks.install(app)``: the worker-side parts, enabled on an app.

Imported only by worker and beat processes (it needs celery); the checks
never import it.

Configuration lives in ``app.conf`` under ``checks_*`` keys, so a Django
project sets them as ``CELERY_CHECKS_*`` through the usual
``app.config_from_object("django.conf:settings", namespace="CELERY")``.
"""

from celery_checks.worker.heartbeat import register_heartbeat_task
from celery_checks.worker.publish import connect as connect_publish_stamp
from celery_checks.worker.pulse import register_pulse
from celery_checks.worker.tasks import register_task_records


def install(app):
    """Register the heartbeat task, stamp every task this process publishes
    with its publish time (worker/publish.py), the task records
    (check_celery_tasks) and, when configured, the pulse emitter."""
    connect_publish_stamp()
    register_heartbeat_task(app)
    register_pulse(app)
    register_task_records(app)
    return app
