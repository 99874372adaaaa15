"""check_celery_heartbeat: does a heartbeat go through each queue in time?

- :mod:`.options`  options and --help
- :mod:`.check`    the Resource (the store's records), contexts, summary, main()
"""

from celery_checks.heartbeat.check import main  # noqa: F401 (the console script)
