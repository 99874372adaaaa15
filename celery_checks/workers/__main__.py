"""python -m celery_checks.workers: the same as check_celery_workers."""

from celery_checks.workers import main

main()
