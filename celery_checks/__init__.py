"""Nagios/Icinga check plugins for Celery.

This package is imported by every check, so it must stay cheap: nothing here
imports celery, redis or pika. The worker-side helpers are loaded on demand.
"""

__version__ = "0.1.0"


def install(app):
    """Enable the celery-checks worker-side parts on a Celery ``app``.

    Registers the ``celery_checks.heartbeat`` task and, when configured, the
    pulse file emitter. Call it once in the module that creates the app.
    """
    from celery_checks.install import install as _install  # celery only here

    return _install(app)
