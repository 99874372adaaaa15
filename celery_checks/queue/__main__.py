"""python -m celery_checks.queue: the same as check_celery_queue."""

from celery_checks.queue.check import main

main()
