"""python -m celery_checks.tasks: the same as check_celery_tasks."""

from celery_checks.tasks.check import main

main()
