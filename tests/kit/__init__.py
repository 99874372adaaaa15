"""The test kit: every helper the tests and the benchmark share, written once.

- :mod:`tests.kit.project`   the checkout and the executables it declares
                             (read from the installed distribution's metadata)
- :mod:`tests.kit.plugin`    run an executable; its :class:`Result`, the
                             perfdata grammar; many runs at once or forked
- :mod:`tests.kit.waiting`   wait for a condition, a port
- :mod:`tests.kit.faults`    a closed port, a silent or hanging-up listener,
                             a proxy that cuts or freezes connections
- :mod:`tests.kit.redis_servers`  redis-server processes of our own (plain,
                             TLS, unix socket, sentinel) and their databases
- :mod:`tests.kit.rabbitmq`  vhosts and users of our own on the running broker
- :mod:`tests.kit.workers`   real ``celery worker`` / ``celery beat`` processes

Nothing here does any work at import time; every service is started by a
call and stopped by PID (never by name), by whoever started it.
"""
