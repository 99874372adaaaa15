"""Nagios/Icinga check plugins for Celery.

This package is imported by every check, so it must stay cheap: nothing here
imports celery, redis or pika. The worker-side helpers are loaded on demand.
"""

__version__ = "0.1.0"


def install(app):
    """Enable the celery-checks worker-side parts on a Celery ``app``.

    Registers the ``celery_checks.heartbeat`` task, the task records of
    check_celery_tasks and, when configured, the pulse file emitter. Call it
    once in the module that creates the app.
    """
    # celery only here. The module is not named "install": importing it
    # would rebind celery_checks.install from this function to the module.
    from celery_checks.worker.install import install as _install

    return _install(app)


def beat_schedule(queues=("celery",), every=60, expires=300):
    """celery beat entries publishing a heartbeat to each queue every
    ``every`` seconds: ``app.conf.beat_schedule.update(beat_schedule([...]))``
    (Django: ``CELERY_BEAT_SCHEDULE``). See celery_checks.worker.heartbeat."""
    from celery_checks.worker.heartbeat import beat_schedule as _beat_schedule

    return _beat_schedule(queues, every, expires)
