"""trigger_celery_heartbeat: publish one heartbeat to each monitored queue.

Run it from cron every minute (or let celery beat publish them, see
``celery_checks.beat_schedule``); ``check_celery_heartbeat`` then tells
whether each heartbeat went through its queue in time.

1. prepare everything that can fail: import celery, build a minimal app
   (no user app import), connect to the broker, and find every queue
   declared there (a heartbeat to a queue no worker declared is lost);
2. read the store's TIME: the publish time (the clock rule,
   celery_checks/store/heartbeats.py);
3. publish ``celery_checks.heartbeat`` to each queue by name, the publish
   time in a header and an expiry, so an outage never leaves a flood of
   stale heartbeats;
4. record the publishes in the store, one round trip.

A failure at any step (any exception, our own -t alarm) records nothing
but the failure and its reason for the queues that got no heartbeat, so
the check says "trigger failing", never "healthy" nor "stuck".

Not a Nagios check: for cron, it prints one line and exits 0 on success;
on failure one line on stderr and exit 1; bad arguments exit 2 with usage.
Queues are not declared: a queue with special arguments (quorum, TTL) stays
as the workers declared it.

- :mod:`.command`    options and help, the run (prepare, time, publish,
                     record), what a failure records, main()
- :mod:`.publisher`  the broker side: celery's app and producer, the queues
                     a publish would lose
"""

from celery_checks.trigger.command import main  # noqa: F401 (the console script)
