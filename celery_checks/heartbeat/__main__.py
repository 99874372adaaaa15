"""python -m celery_checks.heartbeat: the same as check_celery_heartbeat."""

from celery_checks.heartbeat.check import main

main()
