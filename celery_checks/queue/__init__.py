"""check_celery_queue: how many messages wait in each Celery queue?

- :mod:`.check`  options and help, the Resource, contexts, summary, main()
- :mod:`.redis`  the queues as kombu keeps them in Redis (one pipeline;
                 where a queue nobody declared is instead)
- :mod:`.amqp`   the queues of a RabbitMQ vhost (passive declares)
- :mod:`.facts`  what the check knows of a queue, whichever broker said it
"""

from celery_checks.queue.check import main  # noqa: F401 (the console script)
