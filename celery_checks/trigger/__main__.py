"""python -m celery_checks.trigger: the same as trigger_celery_heartbeat."""

from celery_checks.trigger.command import main

main()
