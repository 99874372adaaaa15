"""redis-py clients for kombu's Redis URLs (redis, rediss, redis+socket,
sentinel), made from :func:`celery_checks.connect.urls.parse_url`, and their
failures in the status policy (CRITICAL naming the redacted URL)."""

import contextlib

from celery_checks.connect.failures import alarm, reason, silent
from celery_checks.connect.urls import parse_url
from celery_checks.plugin.policy import CheckError, Unreachable
from celery_checks.plugin.secrets import redact_url


def redis_client(url, transport_options=None, timeout=5.0):
    """A redis-py client for a kombu Redis URL, made from :func:`parse_url`.

    Every socket operation gets ``timeout`` so a silent server cannot hold the
    check past -t; no retries, a check is one short attempt.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options = dict(transport_options or {})
    target = parse_url(url)
    if target.transport != "redis":
        raise CheckError("%s is not a Redis URL" % target.shown)
    common = dict(
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # redis-py >= 6 retries 3 times by default, which turns one silent
        # server into 4 timeouts and runs past -t: one attempt only.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        client_name=None,
    )
    common.update(_without_client_setinfo(redis))
    username = _redis_username(target.userid, target.password)
    if target.socket_path:
        return redis.Redis(
            unix_socket_path=target.socket_path, db=target.db, username=username,
            password=target.password, **common
        )
    if target.scheme == "sentinel":
        return _sentinel_master(target, options, common)
    kwargs = dict(
        host=target.hostname, port=target.port, db=target.db,
        username=username, password=target.password, **common
    )
    kwargs.update(_redis_ssl(target))
    return redis.Redis(**kwargs)


def _redis_ssl(target):
    """redis-py's TLS arguments for kombu's ssl dict (passed on as they are)."""
    if not target.ssl:
        return {}
    import ssl

    kwargs = dict(target.ssl, ssl=True)
    reqs = kwargs.get("ssl_cert_reqs")
    if reqs is not None:
        kwargs["ssl_cert_reqs"] = getattr(ssl, reqs if reqs.isupper() else "CERT_" + reqs.upper())
    return kwargs


def _redis_username(username, password):
    """A password without a user name authenticates the ``default`` user.

    redis-py >= 6 says so (HELLO 3 AUTH default PW) and Redis accepts it even
    when no password is set; redis-py 4 (Debian 12) sends the legacy
    ``AUTH PW``, which Redis >= 6 refuses without a password configured.
    Naming ``default`` gives every version the same answer; a Redis < 6
    rejects the two-argument form and redis-py retries with ``AUTH PW``.
    """
    return "default" if password and not username else username


def _without_client_setinfo(redis):
    """redis-py >= 5 sends CLIENT SETINFO on connect (two more round trips)
    and redis-py 8 reads its own version from the package metadata to do so
    (~10 ms): a check needs neither."""
    if hasattr(redis, "DriverInfo"):
        return {"driver_info": None}
    if int(redis.__version__.split(".")[0]) >= 5:
        return {"lib_name": None, "lib_version": None}
    return {}


def _sentinel_master(target, options, common):
    """kombu's sentinel://[:pw@]host:port[;sentinel://host2:port2]/db form:
    the sentinels of every sentinel:// of the list; user, password and DB
    of the first, as kombu's SentinelChannel takes them."""
    from redis.sentinel import Sentinel

    master_name = options.get("master_name")
    if not master_name:
        raise CheckError("sentinel:// needs the master_name transport option (-O master_name=NAME)")
    sentinel = Sentinel(
        target.sentinels or [(target.hostname, target.port)],
        min_other_sentinels=options.get("min_other_sentinels") or 0,
        sentinel_kwargs=dict(
            options.get("sentinel_kwargs") or {}, socket_timeout=common["socket_timeout"],
            socket_connect_timeout=common["socket_connect_timeout"], retry=common["retry"]),
        socket_timeout=common["socket_timeout"],
        socket_connect_timeout=common["socket_connect_timeout"],
        retry=common["retry"],
        db=target.db,
        **_redis_ssl(target)
    )
    return sentinel.master_for(
        master_name, username=_redis_username(target.userid, target.password),
        password=target.password)


@contextlib.contextmanager
def redis_errors(url, what="broker"):
    """Translate redis-py failures into the status policy (CRITICAL)."""
    import redis
    from redis.sentinel import MasterNotFoundError

    shown = redact_url(url)
    try:
        yield
    except alarm():
        raise silent(what, shown)
    except MasterNotFoundError:  # its text repeats every sentinel client's repr
        raise Unreachable("cannot reach %s %s: no sentinel answered with the master's "
                          "address (sentinels down, or master_name unknown to them)" % (what, shown))
    except redis.AuthenticationError as exc:
        raise Unreachable("%s %s refused authentication: %s" % (what, shown, reason(exc)))
    except redis.TimeoutError as exc:
        raise Unreachable("%s %s did not answer in time: %s" % (what, shown, reason(exc)))
    except redis.ConnectionError as exc:
        raise Unreachable("cannot reach %s %s: %s" % (what, shown, reason(exc)))
    except redis.ResponseError as exc:
        text = str(exc)
        if text.startswith(("NOAUTH", "WRONGPASS")):  # redis-py < 5 words it so
            raise Unreachable("%s %s refused authentication: %s" % (what, shown, reason(exc)))
        # redis-py strips the NOPERM code into NoPermissionError (ACL denies
        # a command): the server refuses us, like a wrong password does.
        if isinstance(exc, redis.exceptions.NoPermissionError) or "NOPERM" in text[:60] \
                or "invalid DB index" in text or "DB index is out of range" in text:
            raise Unreachable("%s %s refused us: %s" % (what, shown, reason(exc)))
        raise
    except OSError as exc:  # e.g. an SSL handshake against a plaintext port
        raise Unreachable("cannot reach %s %s: %s" % (what, shown, reason(exc)))
