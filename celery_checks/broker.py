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
#: the URL schemes kombu accepts for Redis and AMQP, as kombu names them
REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "sentinel")
AMQP_SCHEMES = ("amqp", "pyamqp", "amqps", "librabbitmq")
AMQP_PORT, AMQPS_PORT, REDIS_PORT, SENTINEL_PORT = 5672, 5671, 6379, 26379

# Query keys kombu.Connection takes from a URL (kombu.utils.url.parse_url
# turns every other key into a keyword argument of Connection._init_params,
# which has no others: a TypeError). ssl_* keys become the ``ssl`` dict.
# hostname, port, userid, password, virtual_host and transport are always
# set from the URL itself, so kombu rejects them in the query (given twice).
URL_QUERY_KEYS = ("insist", "ssl", "connect_timeout", "login_method", "heartbeat",
                  "credential_provider")
URL_PART_KEYS = ("transport", "hostname", "port", "userid", "password", "virtual_host")
SSL_CERT_REQS = ("CERT_REQUIRED", "CERT_OPTIONAL", "CERT_NONE", "required", "optional", "none")

# -O keys kombu knows (checked against kombu by tests/test_urls.py): kombu's
# Connection reads the retry keys for every transport, the Redis transport
# reads Channel.from_transport_options (SentinelChannel adds its own), and
# py-amqp's transport hands the options to amqp.Connection() as keyword
# arguments, less those that say where and as whom to connect (the URL's
# business) and the callbacks (not expressible on a command line).
RETRY_TRANSPORT_OPTIONS = ("max_retries", "interval_start", "interval_step",
                           "interval_max", "connect_retries_timeout")
REDIS_TRANSPORT_OPTIONS = (
    "body_encoding", "deadletter_queue", "sep", "ack_emulation", "unacked_key",
    "unacked_index_key", "unacked_mutex_key", "unacked_mutex_expire",
    "visibility_timeout", "unacked_restore_limit", "unacked_restore_interval",
    "unacked_restore_throttle", "fanout_prefix", "fanout_patterns",
    "global_keyprefix", "socket_timeout", "socket_connect_timeout",
    "socket_keepalive", "socket_keepalive_options", "queue_order_strategy",
    "max_connections", "health_check_interval", "retry_on_timeout",
    "priority_steps", "client_name",
) + RETRY_TRANSPORT_OPTIONS
SENTINEL_TRANSPORT_OPTIONS = REDIS_TRANSPORT_OPTIONS + (
    "master_name", "min_other_sentinels", "sentinel_kwargs", "sentinel_fanout_compat")
AMQP_TRANSPORT_OPTIONS = (
    "locale", "client_properties", "connect_timeout", "channel_max", "frame_max",
    "heartbeat", "confirm_publish", "read_timeout", "write_timeout", "socket_settings",
) + RETRY_TRANSPORT_OPTIONS


class BrokerURL:
    """What a kombu broker URL means: where and as whom kombu connects.

    Built by :func:`parse_url` only; every client (redis-py, pika) is made
    from it, so no check reads a URL by rules of its own.

    - ``transport``: ``"redis"`` or ``"amqp"``; ``scheme`` as written (lower case);
    - ``hostname``, ``port``: defaults applied as kombu's transports do
      (AMQP: localhost read as 127.0.0.1, 5672 or 5671 with TLS; Redis:
      127.0.0.1, 6379, sentinel 26379); ``socket_path`` for redis+socket;
    - ``userid``, ``password``: AMQP without them is guest/guest; Redis
      None when absent;
    - ``virtual_host``: the AMQP vhost (``//``, ``/%2F`` and no path are
      ``/``); ``db``: the Redis database (path, or ``?virtual_host=`` of
      redis+socket);
    - ``ssl``: False, True or kombu's dict of ``ssl_*`` query options
      (rediss:// without any: ``{"ssl_cert_reqs": "CERT_NONE"}``, kombu's
      own insecure default);
    - ``sentinels``: the (host, port) of every ``sentinel://`` of the list;
      ``alternates``: the whole ``;``-separated list, as written.
    """

    fields = ("transport", "scheme", "hostname", "port", "socket_path", "userid", "password",
              "virtual_host", "db", "ssl", "sentinels", "alternates", "query")

    def __init__(self, url, **values):
        self.url = url
        for name in self.fields:
            setattr(self, name, values.get(name))

    @property
    def shown(self):
        """The URL as it may be printed: every password masked."""
        return redact_url(self.url)

    @property
    def tls(self):
        return bool(self.ssl)

    def __repr__(self):
        return "BrokerURL(%s)" % self.shown


def _usage(message, url):
    return CheckError("bad URL %s: %s" % (redact_url(url), message))


def _split_url(url, text):
    """kombu.utils.url.url_to_parts, with kombu's errors as usage errors."""
    scheme = urlsplit(text).scheme
    parts = urlsplit("http://" + text[len(scheme) + 3:])
    try:
        port = parts.port
    except ValueError as exc:  # "Port out of range 0-65535", "could not be cast"
        raise _usage("port %s" % ("out of range" if "range" in str(exc) else "not a number"), url)
    path = parts.path or ""
    path = path[1:] if path.startswith("/") else path
    try:
        query = dict(parse_qsl(parts.query, strict_parsing=bool(parts.query)))
    except ValueError:
        raise _usage("malformed query string", url)
    hostname = unquote(parts.hostname or "") or None
    if hostname and any(char.isspace() for char in hostname):
        raise _usage("a space in the host name", url)
    return (scheme.lower(), hostname, port, unquote(parts.username or "") or None,
            unquote(parts.password or "") or None, unquote(path) or None, query)


def _url_query(url, query):
    """kombu.utils.url.parse_url's query rules: ssl_* keys make the ssl
    dict, the few Connection arguments pass, anything else kombu rejects."""
    ssl, rest = {}, {}
    for key, value in query.items():
        if key.startswith("ssl_"):
            if key == "ssl_check_hostname":
                value = value.lower() != "false"
            elif key == "ssl_cert_reqs" and value not in SSL_CERT_REQS:
                raise _usage("invalid ssl_cert_reqs=%s (expected required, optional or "
                             "none)" % value, url)
            ssl[key] = value
        elif key in URL_PART_KEYS:
            raise _usage("kombu rejects %s= in the query (put it in the URL itself)" % key, url)
        elif key not in URL_QUERY_KEYS:
            raise _usage("unknown query parameter %s= (kombu rejects it)" % key, url)
        else:
            rest[key] = value
    if ssl and "ssl" in rest:
        raise _usage("both ssl= and ssl_* in the query", url)
    return ssl, rest


def parse_url(url):
    """The one reading of a broker or store URL: a :class:`BrokerURL` with
    exactly what kombu.Connection(url) would connect to, or CheckError (a
    usage error) for a URL kombu would reject."""
    url = url.strip()
    alternates = [part.strip() for part in url.split(";")]
    first = alternates[0]
    if "://" not in first:
        raise _usage("no scheme (expected redis://, rediss://, redis+socket://, "
                     "sentinel://, amqp://, amqps://)", url)
    written = first.split("://", 1)[0]
    scheme = written.lower()
    if "+" in written and written != "redis+socket":
        # kombu splits "x+y://" into transport x, taken as written
        raise _usage("unsupported scheme %s:// (kombu knows redis+socket://)" % written, url)
    if scheme in AMQP_SCHEMES:
        return _parse_amqp(url, first, alternates)
    if scheme in REDIS_SCHEMES:
        return _parse_redis(url, first, alternates)
    raise _usage("unsupported scheme %s:// (expected redis://, rediss://, "
                 "redis+socket://, sentinel://, amqp://, amqps://)" % written, url)


def _parse_amqp(url, first, alternates):
    scheme, hostname, port, userid, password, path, query = _split_url(url, first)
    ssl, rest = _url_query(url, query)
    # ?ssl=VALUE is passed on as a string: any non-empty one means TLS to kombu
    ssl = ssl or rest.pop("ssl", None) or scheme == "amqps"
    hostname = hostname or "localhost"
    return BrokerURL(
        url, transport="amqp", scheme=scheme,
        # py-amqp's transport connects to 127.0.0.1 for "localhost"
        hostname="127.0.0.1" if hostname == "localhost" else hostname,
        port=port or (AMQPS_PORT if ssl else AMQP_PORT),
        userid=userid or "guest", password=password or "guest",
        virtual_host=path or "/", ssl=ssl, sentinels=[], alternates=alternates, query=rest)


def _db_number(url, vhost):
    """kombu's Redis Channel._prepare_virtual_host."""
    if not vhost or vhost == "/":
        return 0
    if vhost.startswith("/"):
        vhost = vhost[1:]
    try:
        return int(vhost)
    except ValueError:
        raise _usage("invalid Redis database number %r" % vhost, url)


def _parse_redis(url, first, alternates):
    if first.startswith("redis+socket://"):
        # kombu passes "socket://PATH?QUERY" on to the Redis channel, which
        # reads user, password, path and ?virtual_host= (the DB) from it.
        text = first[len("redis+"):]
        scheme, _host, _port, userid, password, path, query = _split_url(url, text)
        if not path:
            raise _usage("no socket path", url)
        unknown = sorted(set(query) - {"virtual_host", "db"})
        if unknown:
            raise _usage("unknown query parameter %s= (redis+socket:// takes "
                         "virtual_host=DB)" % unknown[0], url)
        return BrokerURL(
            url, transport="redis", scheme="redis+socket", socket_path="/" + path,
            userid=userid, password=password, db=_db_number(url, query.get("virtual_host")),
            ssl=False, sentinels=[], alternates=alternates, query={})
    scheme, hostname, port, userid, password, path, query = _split_url(url, first)
    ssl, rest = _url_query(url, query)
    if scheme == "rediss" and not ssl:
        ssl = {"ssl_cert_reqs": "CERT_NONE"}  # kombu's (logged) insecure default
    if "ssl" in rest:
        # kombu's Redis channel silently ignores a non-dict ssl: plain TCP
        raise _usage("ssl= has no effect on Redis in kombu (use rediss:// or ssl_cert_reqs=)", url)
    ssl = ssl or False
    sentinels = []
    if scheme == "sentinel":
        for part in alternates:
            if part.lower().startswith("sentinel://"):
                _s, host, sport = _split_url(url, part)[:3]
                sentinels.append((host, sport or SENTINEL_PORT))
    return BrokerURL(
        url, transport="redis", scheme=scheme, hostname=hostname or "127.0.0.1",
        port=port or (SENTINEL_PORT if scheme == "sentinel" else REDIS_PORT),
        userid=userid, password=password, db=_db_number(url, path), ssl=ssl,
        sentinels=sentinels, alternates=alternates, query=rest)


def check_transport_options(parsed, options):
    """CheckError naming an -O key that none of kombu's Redis and AMQP
    transports knows (a typo), and the nearest key it knows.

    A key of the other transport is accepted: kombu takes it silently (the
    Redis channel ignores what it does not read, py-amqp's Connection takes
    any keyword), so an app runs with it and so must its check; -vv names
    the keys a check does not use (:func:`unused_options_line`)."""
    import difflib

    if parsed.transport == "amqp":
        own, name = AMQP_TRANSPORT_OPTIONS, "AMQP"
    elif parsed.scheme == "sentinel":
        own, name = SENTINEL_TRANSPORT_OPTIONS, "Redis Sentinel"
    else:
        own, name = REDIS_TRANSPORT_OPTIONS, "Redis"
    known = own + tuple(key for key in KOMBU_TRANSPORT_OPTIONS if key not in own)
    for key in options:
        if key not in known:
            near = difflib.get_close_matches(key, own, 1, 0.6) or \
                difflib.get_close_matches(key, known, 1, 0.6)
            hint = "did you mean %s?" % near[0] if near else "see kombu's transport options"
            raise CheckError("unknown transport option -O %s for the %s transport (%s)"
                             % (key, name, hint))


#: -O keys redis_client() reads itself (to find a master through sentinels).
SENTINEL_CONNECTION_OPTIONS = ("master_name", "min_other_sentinels", "sentinel_kwargs")
#: every -O key kombu knows for the transports the checks speak
KOMBU_TRANSPORT_OPTIONS = SENTINEL_TRANSPORT_OPTIONS + tuple(
    key for key in AMQP_TRANSPORT_OPTIONS if key not in SENTINEL_TRANSPORT_OPTIONS)
#: -O keys kombu's Redis transport reads only for a consumer that
#: acknowledges messages (the unacked hash, restored after the visibility
#: timeout) or consumes several queues in turn: a check consumes nothing
#: with acknowledgement, so they never change what it does.
KOMBU_CONSUMER_OPTIONS = (
    "ack_emulation", "unacked_key", "unacked_index_key", "unacked_mutex_key",
    "unacked_mutex_expire", "visibility_timeout", "unacked_restore_limit",
    "unacked_restore_interval", "unacked_restore_throttle", "queue_order_strategy")


def sentinel_options_used(url):
    """The sentinel keys redis_client() reads for this URL: none unless it
    is a sentinel:// URL."""
    return SENTINEL_CONNECTION_OPTIONS if parse_url(url).scheme == "sentinel" else ()


#: the -O keys that bound a socket operation, in kombu's Redis and py-amqp
#: transports
TIMEOUT_OPTIONS = ("socket_timeout", "socket_connect_timeout", "connect_timeout",
                   "read_timeout", "write_timeout")


def bounded_timeouts(options, timeout, transport):
    """Transport options for kombu whose socket timeouts are at most
    ``timeout``: an app's broker_transport_options may carry ones meant for
    a long-running worker (30 s, 120 s), which would let a silent broker
    hold the run until -t (UNKNOWN) instead of being reported (CRITICAL).
    A shorter one given with -O stays."""
    options = dict(options)
    own = ("socket_timeout", "socket_connect_timeout") if transport == "redis" else \
        ("connect_timeout", "read_timeout", "write_timeout")
    for key in TIMEOUT_OPTIONS:
        value = options.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= timeout:
            continue
        if key in own or key in options:
            options[key] = timeout
    return options


def unused_transport_options(options, used):
    """The -O keys given (kombu knows them all: check_transport_options
    refused the others) that do not change what this check does, sorted:
    ``used`` is what the check (or kombu on its behalf) really reads."""
    return sorted(key for key in options if key not in used)


def unused_options_line(options, used):
    """The -vv long-output line naming them, or None when every key is used:
    an -O copied from the app's broker_transport_options is accepted, and
    the user is told which keys had no effect here."""
    unused = unused_transport_options(options, used)
    if not unused:
        return None
    return "transport options not used by this check: %s" % ", ".join(unused)


def resolve_broker_url(broker=None, broker_file=None, environ=os.environ):
    """Pick the broker URL by the documented precedence; CheckError if bad.

    Returns the URL to use, stripped: the first of a ``;``-separated
    fail-over list (kombu's first choice), or for sentinel:// the whole list
    (the sentinels of one master)."""
    if broker:
        url, origin = broker, "--broker"
    elif broker_file:
        url, origin = read_url_file(broker_file, "--broker-file"), "--broker-file"
    elif environ.get("CELERY_BROKER_URL"):
        url, origin = environ["CELERY_BROKER_URL"], "$CELERY_BROKER_URL"
    else:
        url, origin = DEFAULT_BROKER_URL, "default"
    url = url.strip()
    if not url:
        raise CheckError("the broker URL from %s is empty" % origin)
    parsed = parse_url(url)
    if parsed.scheme != "sentinel":
        url = parsed.alternates[0]
        parse_url(url)
    return url


def broker_settings(args, environ=os.environ):
    """(broker URL, transport options) of parsed command-line arguments:
    the URL by :func:`resolve_broker_url`, the -O keys checked against
    what kombu knows for its transport. CheckError (a usage error) if bad."""
    url = resolve_broker_url(args.broker, args.broker_file, environ)
    options = dict(args.transport_option or ())
    check_transport_options(parse_url(url), options)
    return url, options


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
    return parse_url(url).transport


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
    """pika connection parameters for a kombu AMQP URL, bounded by ``timeout``:
    host, port, vhost, user, password and TLS as :func:`parse_url` reads
    them (never pika's own URL rules, which read ``//`` as vhost '')."""
    import pika

    target = parse_url(url)
    if target.transport != "amqp":
        raise CheckError("%s is not an AMQP URL" % target.shown)
    return pika.ConnectionParameters(
        host=target.hostname,
        port=target.port,
        virtual_host=target.virtual_host,
        credentials=pika.PlainCredentials(target.userid, target.password, erase_on_connect=True),
        ssl_options=_pika_ssl(target),
        connection_attempts=1,
        retry_delay=0,
        socket_timeout=timeout,
        stack_timeout=timeout,
        blocked_connection_timeout=timeout,
        heartbeat=0,  # the connection lives for less than -t
        client_properties={"connection_name": "celery-checks"},
    )


def _pika_ssl(target):
    if not target.ssl:
        return None
    import ssl

    import pika

    options = target.ssl if isinstance(target.ssl, dict) else {}
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    reqs = str(options.get("ssl_cert_reqs", "required")).lower().replace("cert_", "")
    if reqs == "none" or options.get("ssl_check_hostname") is False:
        context.check_hostname = False
    if reqs in ("none", "optional"):
        context.verify_mode = ssl.CERT_NONE if reqs == "none" else ssl.CERT_OPTIONAL
    return pika.SSLOptions(context, target.hostname)


def vhost_of(url):
    return parse_url(url).virtual_host


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
