"""check_celery_tasks: failures, retries and runtimes per task, and the
dead-man's switch for periodic tasks.

- :mod:`.check`  options and help, the Resource, contexts, summary, main()
- :mod:`.facts`  what the check knows of a task (pure: counts over the
                 interval, percentiles, durations in words)
"""

from celery_checks.tasks.check import main  # noqa: F401 (the console script)
