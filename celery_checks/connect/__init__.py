"""The connection layer: the only code that knows URLs, Redis, AMQP and kombu.

- :mod:`.urls`      what a broker or store URL means (read as kombu reads it)
- :mod:`.targets`   which URL a check uses (one precedence rule for every
                    kind of URL) and what its Resource is given
- :mod:`.options`   the -O transport options kombu knows, and their values
- :mod:`.redis`     the one Redis client (hiredis underneath); its failures likewise
- :mod:`.redis_reach` its TLS context and the master sentinels name
- :mod:`.amqp`      pika's parameters for a URL; its failures likewise
- :mod:`.kombu`     a kombu Connection for the checks that need one
- :mod:`.layout`    where kombu keeps queues, bindings and replies in Redis
- :mod:`.pidbox`    Celery's remote control on Redis: a broadcast, its replies
- :mod:`.management` RabbitMQ's management API over http.client
- :mod:`.failures`  what every client's failure becomes (short reasons, -t)

Client libraries are imported inside functions: a check pays only for the
one it uses.
"""
