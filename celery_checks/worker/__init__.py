"""What runs inside Celery (worker and beat processes), apart from the plugins:

- :mod:`.install`    ``celery_checks.install(app)``: enables what follows on an app
- :mod:`.heartbeat`  the ``celery_checks.heartbeat`` task, the publish stamp, beat_schedule()
- :mod:`.pulse`      the pulse emitter (a worker bootstep, beat's tick)
- :mod:`.tasks`      the task records (signals, tallies, a flushing thread)

These import celery; no check imports them.
"""
