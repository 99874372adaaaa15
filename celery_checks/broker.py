"""Broker URLs and connections, shared by every check that talks to one.

- :func:`resolve_broker_url`: -b, else --broker-file, else $CELERY_BROKER_URL,
  else the default; the password is registered for redaction at once.
- :func:`redis_client` / :func:`redis_errors`: a redis-py client for kombu's
  Redis URLs (redis, rediss, redis+socket, sentinel) and the translation of
  its failures into the status policy.
- :func:`pika_parameters` / :func:`amqp_errors`: the same for RabbitMQ.

redis and pika are imported inside the functions so that a check only pays
for the client library it actually uses.
"""

import contextlib
import os
import re
import sys
from urllib.parse import parse_qsl, unquote, urlsplit

from celery_checks.policy import CheckError, Unreachable
from celery_checks.secrets import redact_url

DEFAULT_BROKER_URL = "redis://localhost:6379/0"
REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "unix", "sentinel")
AMQP_SCHEMES = ("amqp", "pyamqp", "amqps", "librabbitmq")


def resolve_broker_url(broker=None, broker_file=None, environ=os.environ):
    """Pick the broker URL by the documented precedence; CheckError if bad."""
    if broker:
        url, origin = broker, "--broker"
    elif broker_file:
        url, origin = read_url_file(broker_file, "--broker-file"), "--broker-file"
    elif environ.get("CELERY_BROKER_URL"):
        url, origin = environ["CELERY_BROKER_URL"], "$CELERY_BROKER_URL"
    else:
        url, origin = DEFAULT_BROKER_URL, "default"
    # Celery accepts "url1;url2" for fail-over; we check the first one. For
    # sentinel:// the parts are the sentinels of one master: keep them all.
    parts = [part.strip() for part in url.strip().split(";")]
    url = ";".join(parts) if parts[0].lower().startswith("sentinel://") else parts[0]
    for part in parts:
        redact_url(part)  # register the passwords before anything can print them
    transport_of(url, origin)
    return url


def read_url_file(path, option):
    try:
        with open(path, encoding="utf-8") as handle:
            line = handle.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckError("cannot read %s %s: %s" % (option, path, _reason(exc)))
    if not line:
        raise CheckError("%s %s is empty" % (option, path))
    return line


def transport_of(url, origin="URL"):
    """'redis' or 'amqp' for a kombu broker URL; CheckError for anything else."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        return "redis"
    if scheme in AMQP_SCHEMES:
        return "amqp"
    raise CheckError(
        "unsupported broker URL %s from %s (expected redis://, rediss://, "
        "redis+socket://, sentinel://, amqp:// or amqps://)" % (redact_url(url), origin)
    )


def _reason(exc, limit=100):
    """A short, single-line reason for an exception."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    if text.startswith("Command # ") and " caused error: " in text:  # redis-py pipelines
        text = text.split(" caused error: ", 1)[1]
    # redis-py repeats the address the message already names, and ssl
    # appends its source line: keep the status line short.
    text = re.sub(r"^Error -?\d+ connecting to \S+?\. ", "", text)
    text = re.sub(r" \(_ssl\.c:\d+\)", "", text)
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return text or type(exc).__name__


# --------------------------------------------------------------------- Redis

_SSL_CERT_REQS = {
    "cert_required": "required", "required": "required",
    "cert_optional": "optional", "optional": "optional",
    "cert_none": "none", "none": "none",
}


def redis_client(url, transport_options=None, timeout=5.0):
    """A redis-py client for a kombu Redis URL.

    Every socket operation gets ``timeout`` so a silent server cannot hold the
    check past -t; no retries, a check is one short attempt.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options = dict(transport_options or {})
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query))
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
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    username = _redis_username(username, password)
    if scheme in ("redis+socket", "unix"):
        db = _db_number(query.get("virtual_host") or query.get("db") or "0")
        return redis.Redis(
            unix_socket_path=parts.path, db=db, username=username,
            password=password, **common
        )
    if scheme == "sentinel":
        return _sentinel_master(url, options, common)
    db = _db_number(parts.path.lstrip("/") or query.get("virtual_host") or "0")
    kwargs = dict(
        host=parts.hostname or "localhost", port=parts.port or 6379, db=db,
        username=username, password=password, **common
    )
    if scheme == "rediss":
        kwargs["ssl"] = True
        reqs = query.get("ssl_cert_reqs", "required").lower()
        kwargs["ssl_cert_reqs"] = _SSL_CERT_REQS.get(reqs, "required")
        for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if query.get(key):
                kwargs[key] = query[key]
    return redis.Redis(**kwargs)


def _redis_username(username, password):
    """A password without a user name authenticates the ``default`` user.

    redis-py >= 6 says so (HELLO 3 AUTH default PW) and Redis accepts it even
    when no password is set; redis-py 4 (Debian 12) sends the legacy
    ``AUTH PW``, which Redis >= 6 refuses without a password configured.
    Naming ``default`` gives every version the same answer; a Redis < 6
    rejects the two-argument form and redis-py retries with ``AUTH PW``.
    """
    return "default" if password and not username else username


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


def _without_client_setinfo(redis):
    """redis-py >= 5 sends CLIENT SETINFO on connect (two more round trips)
    and redis-py 8 reads its own version from the package metadata to do so
    (~10 ms): a check needs neither."""
    if hasattr(redis, "DriverInfo"):
        return {"driver_info": None}
    if int(redis.__version__.split(".")[0]) >= 5:
        return {"lib_name": None, "lib_version": None}
    return {}


def _db_number(text):
    try:
        return int(text)
    except ValueError:
        raise CheckError("invalid Redis database number %r in the URL" % text)


def _sentinel_master(url, options, common):
    """kombu's sentinel://[:pw@]host:port[;sentinel://host2:port2]/db form."""
    from redis.sentinel import Sentinel

    master_name = options.get("master_name")
    if not master_name:
        raise CheckError("sentinel:// needs the master_name transport option (-O master_name=NAME)")
    hosts, password, db = [], None, 0
    for part in url.split(";"):
        p = urlsplit(part.strip())
        hosts.append((p.hostname or "localhost", p.port or 26379))
        password = password or (unquote(p.password) if p.password else None)
        if p.path.strip("/"):
            db = _db_number(p.path.strip("/"))
    sentinel = Sentinel(
        hosts,
        sentinel_kwargs=dict(
            options.get("sentinel_kwargs") or {}, socket_timeout=common["socket_timeout"],
            socket_connect_timeout=common["socket_connect_timeout"], retry=common["retry"]),
        socket_timeout=common["socket_timeout"],
        socket_connect_timeout=common["socket_connect_timeout"],
        retry=common["retry"],
        password=password,
        db=db,
    )
    return sentinel.master_for(master_name)


class _NoAlarm(Exception):
    """Stands in for nagiosplugin.Timeout where no check runs (the trigger)."""


def _alarm():
    """The exception the -t alarm raises, when a nagiosplugin check runs."""
    module = sys.modules.get("nagiosplugin")
    return module.Timeout if module is not None else _NoAlarm


def _silent(what, shown):
    """-t expired while we waited on the broker: it is the broker that hangs,
    an outage to report (CRITICAL), not our own failure (UNKNOWN)."""
    return Unreachable("%s %s did not answer before the -t timeout" % (what, shown))


@contextlib.contextmanager
def redis_errors(url, what="broker"):
    """Translate redis-py failures into the status policy (CRITICAL)."""
    import redis
    from redis.sentinel import MasterNotFoundError

    shown = redact_url(url)
    try:
        yield
    except _alarm():
        raise _silent(what, shown)
    except MasterNotFoundError:  # its text repeats every sentinel client's repr
        raise Unreachable("cannot reach %s %s: no sentinel answered with the master's "
                          "address (sentinels down, or master_name unknown to them)" % (what, shown))
    except redis.AuthenticationError as exc:
        raise Unreachable("%s %s refused authentication: %s" % (what, shown, _reason(exc)))
    except redis.TimeoutError as exc:
        raise Unreachable("%s %s did not answer in time: %s" % (what, shown, _reason(exc)))
    except redis.ConnectionError as exc:
        raise Unreachable("cannot reach %s %s: %s" % (what, shown, _reason(exc)))
    except redis.ResponseError as exc:
        text = str(exc)
        if text.startswith(("NOAUTH", "WRONGPASS")):  # redis-py < 5 words it so
            raise Unreachable("%s %s refused authentication: %s" % (what, shown, _reason(exc)))
        # redis-py strips the NOPERM code into NoPermissionError (ACL denies
        # a command): the server refuses us, like a wrong password does.
        if isinstance(exc, redis.exceptions.NoPermissionError) or "NOPERM" in text[:60] \
                or "invalid DB index" in text or "DB index is out of range" in text:
            raise Unreachable("%s %s refused us: %s" % (what, shown, _reason(exc)))
        raise
    except OSError as exc:  # e.g. an SSL handshake against a plaintext port
        raise Unreachable("cannot reach %s %s: %s" % (what, shown, _reason(exc)))


# ------------------------------------------------------------------ RabbitMQ

def pika_parameters(url, timeout=5.0):
    """pika connection parameters for a kombu AMQP URL, bounded by ``timeout``."""
    import pika

    parts = urlsplit(url)
    scheme = "amqps" if parts.scheme.lower() == "amqps" else "amqp"
    rest = url.split("://", 1)[1]
    params = pika.URLParameters("%s://%s" % (scheme, rest))
    if not parts.username:
        params.credentials = pika.PlainCredentials("guest", "guest")
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    params.heartbeat = 0  # the connection lives for less than -t
    params.client_properties = {"connection_name": "celery-checks"}
    return params


def vhost_of(url):
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


@contextlib.contextmanager
def amqp_errors(url, what="broker"):
    """Translate pika failures into the status policy (CRITICAL)."""
    import pika.exceptions as pe
    from pika.adapters.utils.connection_workflow import AMQPConnectorException

    shown = redact_url(url)
    try:
        yield
    except _alarm():
        raise _silent(what, shown)
    except AMQPConnectorException as exc:  # e.g. the handshake timed out
        raise Unreachable("cannot reach %s %s: %s" % (what, shown, describe_amqp_error(exc)))
    except pe.ProbableAuthenticationError:
        raise Unreachable("%s %s refused authentication (wrong user or password)" % (what, shown))
    except pe.ProbableAccessDeniedError:
        raise Unreachable("%s %s refused access to vhost %r" % (what, shown, vhost_of(url)))
    except pe.ConnectionClosedByBroker as exc:
        raise Unreachable("%s %s closed the connection: %s %s" % (what, shown, exc.reply_code, exc.reply_text))
    except pe.AMQPConnectionError as exc:
        raise Unreachable("cannot reach %s %s: %s" % (what, shown, describe_amqp_error(exc)))
    except OSError as exc:
        raise Unreachable("cannot reach %s %s: %s" % (what, shown, _reason(exc)))


def describe_amqp_error(exc):
    """pika nests the real cause in args; dig out a readable reason."""
    seen = exc
    for _ in range(5):
        if isinstance(seen, OSError):
            break
        inner = [a for a in getattr(seen, "args", ()) if isinstance(a, BaseException)]
        # pika's connection workflow keeps the cause in .exception(s), not args
        inner += [getattr(seen, "exception", None)] + list(getattr(seen, "exceptions", ()))[-1:]
        # kombu re-raises a socket error as its own OperationalError: follow
        # the chain to it (only to an OSError: other context is noise)
        context = seen.__context__ if isinstance(seen.__context__, OSError) else None
        inner += [seen.__cause__ or context]
        inner = [a for a in inner if isinstance(a, BaseException)]
        if not inner:
            break
        seen = inner[0]
    code, words = getattr(seen, "reply_code", None), getattr(seen, "reply_text", None)
    if code and words:  # py-amqp (kombu): the broker's own words, first sentence
        if code == 403 and "Login was refused" in str(words):
            return "refused authentication (wrong user or password)"
        return "%s %s" % (code, str(words).split(". ")[0])
    if isinstance(seen, OSError):
        if seen.errno == 22:
            # py-amqp sets socket options on a connection the peer already reset
            return "connection reset as it opened (Invalid argument)"
        return _reason(seen)
    if type(seen).__name__ in ("StreamLostError", "IncompatibleProtocolError"):
        # pika's words for "the peer hung up before the AMQP handshake"
        return "connection closed by the peer before the AMQP handshake"
    if type(seen).__name__ == "AMQPConnectorStackTimeout":
        return "no AMQP handshake in time (the peer accepted but did not answer)"
    text = _reason(seen)
    if text in ("", type(seen).__name__) or text == "()":
        return "connection failed (%s)" % type(seen).__name__
    return text
