"""What a broker or store URL means: :func:`parse_url`, the one reading of
every URL, as kombu reads it (a :class:`BrokerURL`); tests/test_urls.py
holds it against kombu itself. Which URL a check uses: connect/targets.py.
"""

from urllib.parse import parse_qsl, unquote, urlsplit

from celery_checks.plugin.policy import CheckError
from celery_checks.plugin.secrets import redact_url

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


def host_name_fault(hostname):
    """Why no client can look ``hostname`` up (said after the URL), or None:
    the rules of the idna codec that socket.getaddrinfo() applies to a host
    name (an empty label or one over 63 characters), which otherwise surface
    as an "internal error: UnicodeError" from whichever library connects."""
    if not hostname.isascii():  # an internationalised name: the codec itself
        try:
            hostname.encode("idna")
        except UnicodeError as exc:
            return "the host name is not a valid internationalised name (%s)" % (
                exc.__cause__ or exc)
        return None
    labels = hostname.split(".")
    if not all(labels[:-1]):  # the last may be empty: a trailing dot
        return "the host name has an empty label (two dots in a row, or a leading dot)"
    if any(len(label) > 63 for label in labels):
        return "the host name has a label longer than 63 characters"
    return None


def bracketed_host_fault(exc):
    """What urlsplit()'s ValueError says of a host in brackets."""
    return "unreadable host: %s (an IPv6 address is written in brackets, [::1])" % exc


def _usage(message, url):
    return CheckError("bad URL %s: %s" % (redact_url(url), message))


def _split_url(url, text):
    """kombu.utils.url.url_to_parts, with kombu's errors as usage errors."""
    try:
        scheme = urlsplit(text).scheme
        parts = urlsplit("http://" + text[len(scheme) + 3:])
    except ValueError as exc:  # a [ without its ], or no address inside: as kombu fails
        raise _usage(bracketed_host_fault(exc), url)
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
    fault = hostname and host_name_fault(hostname)
    if fault:
        raise _usage(fault, url)
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


def transport_of(url, origin="URL"):
    """'redis' or 'amqp' for a kombu broker URL; CheckError for anything else."""
    return parse_url(url).transport
