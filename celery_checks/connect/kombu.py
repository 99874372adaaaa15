"""kombu, for the checks that speak Celery's own protocol through it (the
workers check on AMQP, its events source, the trigger's publish)."""

from celery_checks.connect.redis import _redis_username


def kombu_redis_compat():
    """Make kombu's Redis transport behave alike on old and new releases;
    call before opening a kombu Connection to Redis.

    - kombu < 5.3 (Debian 12: 5.2.4) gives its asynchronous Redis connection
      a ``disconnect(self)`` while redis-py >= 4.2 calls ``disconnect(error)``
      when a connect attempt fails: every broker that times out or breaks the
      handshake became a TypeError hiding the reason. Accept the argument.
    - a password without a user name goes to the ``default`` user, as in
      :func:`redis_client`.
    """
    import inspect

    from kombu.transport import redis as transport

    original = transport.Channel._connparams
    if getattr(original, "celery_checks_compat", False):
        return

    def _connparams(self, asynchronous=False):
        params = original(self, asynchronous)
        params["username"] = _redis_username(params.get("username"), params.get("password"))
        cls = params.get("connection_class")
        if cls is not None and len(inspect.signature(cls.disconnect).parameters) == 1:
            class Connection(cls):
                def disconnect(self, *args):
                    cls.disconnect(self)

            params["connection_class"] = Connection
        return params

    _connparams.celery_checks_compat = True
    transport.Channel._connparams = _connparams
