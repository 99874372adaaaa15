"""check_celery_pulsefile: is each pulse file fresh?

- :mod:`.options`  options and --help
- :mod:`.check`    the Resource (the files), contexts, summary, main()
"""

from celery_checks.pulsefile.check import main  # noqa: F401 (the console script)
