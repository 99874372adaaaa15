"""What runs inside Celery (worker and beat processes), apart from the plugins:

- :mod:`.install`    ``celery_checks.install(app)``: enables what follows on an app
- :mod:`.heartbeat`  the ``celery_checks.heartbeat`` task, its store stamp, beat_schedule()
- :mod:`.publish`    the one before_task_publish handler: every task's publish time
- :mod:`.pulse`      the pulse emitter (a worker bootstep, beat's tick)
- :mod:`.tasks`      the task records (signals, tallies, a flushing thread)

These import celery; no check imports them.
"""
