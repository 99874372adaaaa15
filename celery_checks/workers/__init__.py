"""check_celery_workers: are the expected workers there, and only those?

- :mod:`.check`      options and help, the Resource, contexts, summary, main()
- :mod:`.inventory`  the expected nodes (--expect) and the verdict on the online ones
- :mod:`.sources`    the interface every source of worker facts keeps, and the registry:
- :mod:`.ping`       one broadcast ping (connect.redis alone on Redis, kombu on AMQP)
- :mod:`.events`     worker-heartbeat events, asked for at once
- :mod:`.stdin`      ``celery status`` / ``inspect ping`` output piped in
- :mod:`.replies`    what a source returns: one Reply per node
"""

from celery_checks.workers.check import main  # noqa: F401 (the console script)
