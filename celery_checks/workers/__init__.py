"""check_celery_workers: are the expected workers there, and only those?

- :mod:`.options`    options and --help, and their checks
- :mod:`.check`      the Resource, contexts, summary: make_check()
- :mod:`.inventory`  the expected nodes (--expect) and the verdict on the online ones
- :mod:`.sources`    the interface every source of worker facts keeps, and the registry:
- :mod:`.ping`       one broadcast ping (connect.redis alone on Redis, kombu on AMQP)
- :mod:`.events`     worker-heartbeat events, asked for at once
- :mod:`.stdin`      ``celery status`` / ``inspect ping`` output piped in
- :mod:`.replies`    what a source returns: one Reply per node

``main`` (the console script) reads the options and sends the ping
(sources.begin) before it imports .check and nagiosplugin: the workers
answer while those load.
"""

from celery_checks.plugin import runner
from celery_checks.workers.options import parse_args
from celery_checks.workers.sources import begin


def _make_check(args, deadline, begun):
    from celery_checks.workers.check import make_check

    return make_check(args, deadline, begun=begun)


main = runner.entry_point("CELERY_WORKERS", parse_args, _make_check, start=begin)
