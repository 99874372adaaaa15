"""python -m celery_checks.pulsefile: the same as check_celery_pulsefile."""

from celery_checks.pulsefile.check import main

main()
