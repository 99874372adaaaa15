"""Broker URLs mean what they mean to Celery.

- Differentially, in-process: for each URL form of kombu's and Celery's
  documentation and tests, what celery_checks.connect.urls.parse_url derives
  (host, port, user, password, vhost or DB, transport, TLS, sentinels)
  equals what kombu itself would hand to py-amqp or redis-py: the keyword
  arguments of kombu's pyamqp Transport.establish_connection and of the
  Redis Channel._connparams, captured without connecting. A URL kombu
  rejects is a usage error of ours.
- The -O keys we accept are the ones kombu knows for the transport.
- For real, as processes: the forms this machine can serve, against
  RabbitMQ and Redis, give the right answer.
"""

import itertools
import types
import uuid

import pytest

from celery_checks.connect import options, urls
from celery_checks.plugin.policy import CheckError
from tests.kit.faults import closed_port
from tests.kit.plugin import run_check
from tests.kit.producers import declare_on_redis, publish
from tests.kit.rabbitmq import HOST as AMQP_HOST
from tests.kit.rabbitmq import PORT as AMQP_PORT

AMQP_FORMS = [
    "amqp://guest:guest@localhost:5672//",     # Celery's documented default
    "amqp://guest:guest@localhost:5672/",
    "amqp://guest:guest@localhost:5672/%2F",
    "amqp://guest:guest@localhost:5672",
    "amqp://",
    "amqp://localhost",
    "amqp://rabbit/prod",
    "amqp://nagios@rabbit/prod",               # the README's example: user, no password
    "pyamqp://guest@localhost//",
    "pyamqp://user:pass@host:10000/vhost",
    "amqp://user:@host//",                     # empty password: guest, as kombu reads it
    "amqp://:pw@host//",                       # empty user: guest
    "amqp://u%40corp:p%40ss%3Aw%2Fo@host//",   # percent-encoded user and password
    "amqp://u:p@ss@host//",                    # an unencoded @ in the password
    "amqp://host//x",                          # vhost "/x"
    "amqp://host/a/b",
    "amqp://host/%2Fprod",
    "AMQP://Rabbit.Example.COM/v",             # upper case scheme and host
    "amqp://[::1]:5673/v",
    "amqp://[fe80::1]/",
    "amqps://host",
    "amqps://guest:guest@host:5671//",
    "amqp://host?ssl=1",
    "amqp://host:0/",                          # port 0: kombu's default port
    "amqp://host/?heartbeat=30&connect_timeout=2",
    "amqp://h1;amqp://h2//",                   # fail-over list: the first
]

REDIS_FORMS = [
    "redis://",
    "redis://localhost",
    "redis://localhost:6380/0",
    "redis://localhost:6380/5",
    "redis:///3",
    "redis://:password@hostname:6381/0",
    "redis://:p%40ss%3Aw@hostname/1",
    "redis://username:password@hostname:6380/2",
    "redis://user@host/1",                     # ACL user, no password
    "redis://host//",                          # "/" as the vhost: DB 0
    "redis://host/%2F",
    "REDIS://Host/4",
    "redis://[::1]:6380/1",
    "redis://host:0/1",
    "redis://host/0?ssl_cert_reqs=none",       # ssl_* make it TLS, also on redis://
    "rediss://host",                           # kombu's insecure default
    "rediss://:pw@host:6380/0?ssl_cert_reqs=required",
    "rediss://host/0?ssl_cert_reqs=CERT_OPTIONAL&ssl_ca_certs=/etc/ca.pem",
    "rediss://host/0?ssl_cert_reqs=none&ssl_check_hostname=false",
    "redis+socket:///tmp/redis.sock",
    "redis+socket:///tmp/redis.sock?virtual_host=2",
    "redis+socket://:pw@/var/run/redis/redis.sock?virtual_host=7",
    "redis+socket:///tmp/redis.sock?db=3",     # kombu ignores ?db=: DB 0
    "sentinel://localhost:26381",
    "sentinel://:pw@s1:26381/2;sentinel://:pw@s2:26380/2;sentinel://s3",
    "sentinel://s1;sentinel://s2/5",           # the DB of the first URL only
    "redis://h1/1;redis://h2/2",
]

REJECTED = [
    ("redis://localhost:99999/0", "port out of range"),
    ("amqp://host:65536//", "port out of range"),
    ("redis://localhost:abc/0", "port not a number"),
    ("redis://host/x", "invalid Redis database number 'x'"),
    ("redis://host/0/", "invalid Redis database number '0/'"),
    ("redis://host?virtual_host=3", "kombu rejects virtual_host= in the query"),
    ("amqp://host/?virtual_host=prod", "kombu rejects virtual_host= in the query"),
    ("redis://host/0?password=x", "kombu rejects password= in the query"),
    ("redis://host/0?foo=1", "unknown query parameter foo="),
    ("amqp://host//?tls=1", "unknown query parameter tls="),
    ("rediss://host/0?ssl_cert_reqs=bogus", "invalid ssl_cert_reqs=bogus"),
    ("unix:///tmp/redis.sock", "unsupported scheme unix://"),
    ("sqs://key:sekrit@x", "unsupported scheme sqs://"),
    ("localhost:6380", "no scheme"),
    ("redis+socket://", "no socket path"),
    ("REDIS+SOCKET:///tmp/s", "unsupported scheme REDIS+SOCKET://"),
    ("amqp://rab bit//", "a space in the host name"),
    ("redis://:sekrit@[::1/0", "unreadable host: Invalid IPv6 URL"),
    ("amqp://guest:sekrit@fe80::1]:5672//", "unreadable host: Invalid IPv6 URL"),
]


class _Captured(Exception):
    pass


def kombu_amqp(url):
    """What kombu's py-amqp transport would pass to amqp.Connection()."""
    import kombu

    connection = kombu.Connection(url)
    transport = connection.transport

    def capture(**kwargs):
        raise _Captured(kwargs)

    transport.Connection = capture
    with pytest.raises(_Captured) as info:
        transport.establish_connection()
    opts = info.value.args[0]
    return dict(transport="amqp", hostname=connection.hostname, port=connection.port,
                userid=opts["userid"], password=opts["password"],
                virtual_host=opts["virtual_host"], tls=bool(opts["ssl"]))


def kombu_redis(url):
    """What kombu's Redis channel would pass to redis-py (its _connparams)."""
    import kombu
    from kombu.utils.url import url_to_parts

    connection = kombu.Connection(url)
    cls = connection.get_transport_cls()
    channel = cls.Channel.__new__(cls.Channel)  # no connection is opened
    channel.connection = types.SimpleNamespace(client=connection, default_port=cls.default_port)
    params = channel._connparams()
    derived = dict(transport="redis", hostname=params.get("host"), port=params.get("port"),
                   socket_path=params.get("path"), userid=params["username"],
                   password=params["password"], db=params["db"],
                   tls="ssl_cert_reqs" in params or "ssl_ca_certs" in params)
    if params.get("ssl_cert_reqs") is not None:
        derived["ssl_cert_reqs"] = params["ssl_cert_reqs"].name
    if cls.__name__ == "SentinelTransport":
        derived["sentinels"] = [
            (parts.hostname, parts.port or cls.default_port)
            for parts in map(url_to_parts, connection.alt) if parts.scheme == "sentinel"
        ] or [(params["host"], params["port"])]  # kombu's fallback for a single sentinel
    return derived


def ours(url):
    import ssl

    parsed = urls.parse_url(url)
    derived = dict(transport=parsed.transport, userid=parsed.userid, password=parsed.password,
                   tls=parsed.tls)
    if parsed.transport == "amqp":
        derived.update(hostname=parsed.hostname, port=parsed.port,
                       virtual_host=parsed.virtual_host)
        return derived
    derived.update(hostname=None if parsed.socket_path else parsed.hostname,
                   port=None if parsed.socket_path else parsed.port,
                   socket_path=parsed.socket_path, db=parsed.db)
    if isinstance(parsed.ssl, dict) and "ssl_cert_reqs" in parsed.ssl:
        reqs = parsed.ssl["ssl_cert_reqs"]
        derived["ssl_cert_reqs"] = ssl.VerifyMode[reqs if reqs.isupper()
                                                  else "CERT_" + reqs.upper()].name
    if parsed.scheme == "sentinel":
        derived["sentinels"] = parsed.sentinels
    return derived


def test_the_table_is_big_enough():
    assert len(AMQP_FORMS) + len(REDIS_FORMS) >= 30


@pytest.mark.parametrize("url", AMQP_FORMS)
def test_amqp_url_reads_as_kombu_reads_it(url):
    assert ours(url) == kombu_amqp(url)


@pytest.mark.parametrize("url", REDIS_FORMS)
def test_redis_url_reads_as_kombu_reads_it(url):
    assert ours(url) == kombu_redis(url)


@pytest.mark.parametrize("url,why", REJECTED)
def test_a_url_kombu_rejects_is_a_usage_error(url, why):
    import kombu

    if not url.startswith(("unix:", "localhost:", "redis+socket://", "REDIS+", "amqp://rab bit")):
        with pytest.raises(Exception):  # kombu refuses it too
            (kombu_amqp if url.startswith("amqp") else kombu_redis)(url)
    with pytest.raises(CheckError) as info:
        urls.parse_url(url)
    assert why in str(info.value)
    assert "sekrit" not in str(info.value)
    del kombu


def test_transport_option_lists_are_kombus():
    """Our -O lists are the newest kombu's (5.7): equal there; on an older
    kombu (Debian 12's 5.2.4) every key it knows is in them, so no key an
    app runs with is refused."""
    import inspect

    import amqp
    import kombu
    from kombu.connection import Connection
    from kombu.transport import redis

    retry = {key for key in options.RETRY_TRANSPORT_OPTIONS
             if key in inspect.getsource(Connection._extract_failover_opts)}
    where_and_who = {"self", "kwargs", "host", "userid", "password", "login_method",
                     "login_response", "authentication", "virtual_host", "ssl"}
    parameters = inspect.signature(amqp.Connection.__init__).parameters
    passed_on = {name for name, p in parameters.items() if name not in where_and_who
                 and not name.startswith("on_") and not callable(p.default)}
    kombus = {
        options.REDIS_TRANSPORT_OPTIONS: set(redis.Channel.from_transport_options) | retry,
        options.SENTINEL_TRANSPORT_OPTIONS: set(redis.SentinelChannel.from_transport_options) | retry,
        options.AMQP_TRANSPORT_OPTIONS: passed_on | retry,
    }
    newest = tuple(int(part) for part in kombu.__version__.split(".")[:2]) >= (5, 7)
    for ours, theirs in kombus.items():
        assert theirs <= set(ours), sorted(theirs - set(ours))
        if newest:
            assert set(ours) == theirs, sorted(set(ours) ^ theirs)
    if newest:
        assert set(options.RETRY_TRANSPORT_OPTIONS) == retry


# ------------------------------------------------------- as the user runs it

def queue(*args):
    return run_check("check_celery_queue", *args)


def test_unknown_transport_option_names_the_nearest_known_one():
    result = queue("-b", "redis://127.0.0.1:%d/0" % closed_port(), "-O", "global_keyprefx=p:")
    result.assert_unknown("unknown transport option -O global_keyprefx for the Redis "
                          "transport (did you mean global_keyprefix?)")
    assert "usage:" in result.stdout
    result = queue("-b", "amqp://%s:%d//" % (AMQP_HOST, AMQP_PORT), "-O", "nosuchoption=1")
    result.assert_unknown("unknown transport option -O nosuchoption for the AMQP transport")
    assert result.first_line.count("\n") == 0


BROKER_EXECUTABLES = [
    ("check_celery_queue", ["-q", "celery"]),
    ("check_celery_workers", ["--source", "ping", "--reply-timeout", "0.5"]),
    ("check_celery_workers", ["--source", "events", "--window", "0.5"]),
    ("check_celery_heartbeat", ["-q", "celery"]),
    ("trigger_celery_heartbeat", ["-q", "celery"]),
]


@pytest.mark.parametrize("name, args", BROKER_EXECUTABLES)
@pytest.mark.parametrize("option, why", [
    ("sep=", "transport option sep cannot be empty"),
    ("priority_steps=5", "transport option priority_steps must be a JSON list"),
    ("max_connections=abc", "transport option max_connections must be a whole number > 0"),
    ("health_check_interval=abc", "transport option health_check_interval must be a number"),
    ("body_encoding=1", "transport option body_encoding: kombu knows base64 only"),
    ('sentinel_kwargs={"password": "s3cret"', "transport option sentinel_kwargs must be a JSON "
                                              "object"),
])
def test_an_option_value_kombu_cannot_use_is_a_usage_error(name, args, option, why):
    """Values as typed on a command line (an empty sep, a step count for a
    list, a word for a number, JSON missing its brace): each executable
    passed them on, and the events source, the trigger or the queue check
    failed later: 'internal error: TypeError ...', 'cannot publish'."""
    url = "redis://127.0.0.1:%d/0" % closed_port()
    store = ["--store", url] if "heartbeat" in name else []
    result = run_check(name, "-b", url, *store, *args, "-O", option)
    if name.startswith("trigger"):
        assert result.rc == 2 and result.stdout == "", result.describe("usage error")
        assert why in result.stderr.splitlines()[-1], result.describe(why)
    else:
        result.assert_unknown(why)
        assert "usage:" in result.stdout
    assert "internal error" not in result.stdout + result.stderr
    assert "s3cret" not in result.stdout + result.stderr


@pytest.mark.parametrize("option", ["global_keyprefix=1", "global_keyprefix=true", "sep=7"])
def test_text_options_stay_text(redis_url, option):
    """-O global_keyprefix=1 is the prefix "1", as in an app's
    broker_transport_options; read as JSON it was the number 1 (or True),
    and kombu's key layout failed on it (int + str): internal errors."""
    result = run_check("check_celery_workers", "-b", redis_url, "--source", "events",
                       "--window", "0.5", "-O", option)
    result.assert_critical("no worker answered")
    assert "internal error" not in result.stdout


@pytest.mark.parametrize("url,why", [
    ("redis://localhost:99999/0", "port out of range"),
    ("redis://:sekrit@localhost/x", "invalid Redis database number 'x'"),
    ("redis://localhost/0?virtual_host=3", "kombu rejects virtual_host= in the query"),
])
def test_bad_url_is_one_usage_line(url, why):
    result = queue("-b", url)
    result.assert_unknown(why)
    assert "internal error" not in result.stdout and "Traceback" not in result.stdout
    assert "sekrit" not in result.stdout + result.stderr


# Host names with a typo no client can look up: socket.getaddrinfo() reads
# them through the idna codec, which raised, and every check answered
# "internal error: UnicodeError: encoding with 'idna' codec failed".
@pytest.mark.parametrize("name, args, why", [
    ("check_celery_queue", ["-b", "redis://:sekrit@cache..example.com:6379/0", "-q", "celery"],
     "bad URL redis://:***@cache..example.com:6379/0: the host name has an empty label "
     "(two dots in a row, or a leading dot)"),
    ("check_celery_queue", ["-b", "amqp://guest:sekrit@rabbit.example.com.:5672//", "-q", "celery",
                            "--management-url", "http://rabbit..example.com:15672/"],
     "bad management URL http://rabbit..example.com:15672/: the host name has an empty label"),
    ("check_celery_workers", ["-b", "amqp://guest:sekrit@.rabbit.example.com//", "--expect", "w1@h"],
     "bad URL amqp://guest:***@.rabbit.example.com//: the host name has an empty label"),
    ("check_celery_workers", ["-b", "sentinel://s1:26379;sentinel://s2..lan:26379",
                              "-O", "master_name=mymaster", "--expect", "w1@h"],
     "sentinel://s2..lan:26379: the host name has an empty label"),
    ("check_celery_heartbeat", ["--store", "redis://%s.example.com/0" % ("r" * 64), "-q", "celery"],
     "the host name has a label longer than 63 characters"),
    ("check_celery_tasks", ["--store", "redis://bücher..example/0"],
     "bad URL redis://bücher..example/0: the host name is not a valid internationalised name"),
])
def test_a_host_name_no_client_can_look_up_is_a_usage_error(name, args, why):
    result = run_check(name, *args)
    result.assert_unknown(why)
    assert "internal error" not in result.stdout and "sekrit" not in result.stdout + result.stderr


def test_host_names_refused_are_those_getaddrinfo_cannot_read():
    """urls.host_name_fault refuses exactly the names the idna codec does,
    which socket.getaddrinfo() applies to a str host (the ASCII ones are
    passed to it as bytes, sparing the codec's import)."""
    labels = ["", "a", "redis", "r" * 63, "r" * 64, "xn--bcher-kva", "bücher", "b" * 60 + "ü",
              "ü" * 64, "::1", "10", "_srv", "-x-"]
    names = [".".join(parts) for parts in itertools.product(labels, repeat=2)]
    names += labels + ["a.b.", "a..", ".", "..", "a." * 3, "a" * 64 + "."]
    for name in names:
        try:
            name.encode("idna")
        except UnicodeError:
            codec_refuses = True
        else:
            codec_refuses = False
        assert (urls.host_name_fault(name) is not None) == codec_refuses, name


@pytest.mark.parametrize("name, args, message", [
    ("check_celery_queue", ["-b", "", "-q", "celery"], "the broker URL from --broker is empty"),
    ("check_celery_workers", ["-b", ""], "the broker URL from --broker is empty"),
    ("check_celery_heartbeat", ["-b", "", "-q", "celery"], "the broker URL from --broker is empty"),
    ("check_celery_heartbeat", ["--store", "", "-q", "celery"], "the store URL from --store is empty"),
])
def test_an_option_given_empty_is_a_usage_error_not_absent(name, args, message):
    """``-b "$BROKER_URL"`` with the variable unset (an NRPE or cron line):
    the check must not fall through to $CELERY_BROKER_URL or the default
    redis://localhost:6379/0 and judge another broker than the one the
    command line names. The environment names a closed port, so the old
    reading answered 'cannot reach' about a URL nobody gave on the line."""
    env_url = "redis://127.0.0.1:%d/0" % closed_port()
    result = run_check(name, *args, extra_env={"CELERY_BROKER_URL": env_url,
                                               "CELERY_CHECKS_STORE_URL": env_url})
    result.assert_unknown(message)
    assert str(env_url.rsplit(":", 1)[1]) not in result.stdout


def test_trigger_given_an_empty_broker_or_store_is_a_usage_error():
    env_url = "redis://127.0.0.1:%d/0" % closed_port()
    for args, message in ((["-b", ""], "the broker URL from --broker is empty"),
                          (["--store", ""], "the store URL from --store is empty")):
        result = run_check("trigger_celery_heartbeat", *args, "-q", "celery",
                           extra_env={"CELERY_BROKER_URL": env_url, "CELERY_CHECKS_STORE_URL": env_url})
        assert result.rc == 2 and result.stdout == "", result.describe("exit code")
        assert result.stderr.startswith("usage: trigger_celery_heartbeat")
        assert result.stderr.rstrip().endswith(message), result.stderr


def test_broker_file_saved_with_a_byte_order_mark_and_crlf(redis_url, redis_client, tmp_path):
    """A --broker-file written on Windows (Notepad's UTF-8 BOM, CRLF): the
    URL is the same; the BOM read as part of the scheme gave 'unsupported
    scheme \ufeffredis://', where the user sees only redis://."""
    declare_on_redis(redis_client, "mail")
    path = tmp_path / "broker"
    path.write_bytes(b"\xef\xbb\xbf" + redis_url.encode() + b"\r\n")
    result = queue("--broker-file", str(path), "-q", "mail")
    result.assert_ok("queue mail has 0 waiting messages")
    assert result.perfdata["mail"].value == 0


@pytest.fixture
def default_vhost_queue():
    """A uniquely named queue on RabbitMQ's vhost "/", deleted again."""
    import pika

    name = "cc-urls-%s" % uuid.uuid4().hex[:10]
    params = pika.ConnectionParameters(AMQP_HOST, AMQP_PORT, "/", pika.PlainCredentials("guest", "guest"))
    connection = pika.BlockingConnection(params)
    channel = connection.channel()
    channel.queue_declare(name, auto_delete=False)
    for _ in range(2):
        channel.basic_publish("", name, b"x")
    yield name
    channel.queue_delete(name)
    connection.close()


@pytest.mark.parametrize("path", ["//", "/%2F", "", "/"])
@pytest.mark.parametrize("userinfo", ["guest:guest@", "guest@", ""])
def test_default_vhost_forms_reach_vhost_slash(default_vhost_queue, path, userinfo):
    url = "amqp://%s%s:%d%s" % (userinfo, AMQP_HOST, AMQP_PORT, path)
    # Nobody consumes it: --orphan-state ok, the URL's reading is the point.
    result = queue("-b", url, "-q", default_vhost_queue, "-w", "5", "--orphan-state", "ok")
    result.assert_ok("queue %s has 2 waiting messages" % default_vhost_queue)
    assert result.perfdata[default_vhost_queue].value == 2


@pytest.mark.parametrize("scheme", ["amqp", "pyamqp"])
def test_named_vhost_with_user_and_without_password(rabbitmq, scheme):
    name = rabbitmq.queue_name()
    channel = rabbitmq.channel()
    channel.queue_declare(name)
    channel.basic_publish("", name, b"x")
    for userinfo in ("guest:guest@", "guest@", ""):
        url = "%s://%s%s:%d/%s" % (scheme, userinfo, AMQP_HOST, AMQP_PORT, rabbitmq.vhost)
        result = queue("-b", url, "-q", name, "--orphan-state", "ok")
        result.assert_ok("queue %s has 1 waiting message" % name)
        assert result.perfdata[name].value == 1


def test_a_user_without_password_is_refused_not_crashed():
    url = "amqp://nagios-%s@%s:%d/prod" % (uuid.uuid4().hex[:6], AMQP_HOST, AMQP_PORT)
    result = queue("-b", url, "-q", "celery")
    result.assert_critical("refused authentication (wrong user or password)")
    assert "TypeError" not in result.stdout


@pytest.mark.parametrize("path", ["//", "/%2F"])
def test_workers_check_reaches_vhost_slash(path):
    """No worker runs on "/": the answer is that none replied, not that
    the vhost refused us (what a misread vhost gives, next)."""
    url = "amqp://guest:guest@%s:%d%s" % (AMQP_HOST, AMQP_PORT, path)
    name = "cc-urls-%s@nowhere" % uuid.uuid4().hex[:8]
    result = run_check("check_celery_workers", "-b", url, "--expect", name, "-t", "8")
    result.assert_critical()
    assert "refused" not in result.stdout and name in result.stdout
    missing = "amqp://guest:guest@%s:%d/cc-no-such-%s" % (AMQP_HOST, AMQP_PORT, uuid.uuid4().hex[:6])
    result = run_check("check_celery_workers", "-b", missing, "--expect", name, "-t", "8")
    result.assert_critical("vhost")


def test_redis_path_db_password_only_and_acl_user(own_redis, celery_apps):
    server = own_redis("requirepass pw-only", "user alice on >alice-pw ~* &* +@all").start()
    base = "127.0.0.1:%d" % server.port
    publish(celery_apps("redis://:pw-only@%s/4" % base), "celery", 3)
    for url in ("redis://:pw-only@%s/4" % base, "redis://alice:alice-pw@%s/4" % base,
                "redis://default:pw-only@%s//4" % base):
        result = queue("-b", url)
        result.assert_ok("queue celery has 3 waiting messages")
        assert result.perfdata["celery"].value == 3
    # DB 0 is another database: the path is read, not ignored
    queue("-b", "redis://:pw-only@%s/0" % base).assert_critical(
        "queue celery not declared under key prefix '' in DB 0; found in DB 4")
    result = queue("-b", "redis://alice@%s/4" % base)  # an ACL user without password
    result.assert_critical("refused")


# ------------------------- Celery's documented forms, through every executable

def _default_vhost():
    """A channel on RabbitMQ's vhost "/" (pika, named explicitly: no URL
    reading of ours or pika's is involved)."""
    import pika

    params = pika.ConnectionParameters(AMQP_HOST, AMQP_PORT, "/", pika.PlainCredentials("guest", "guest"))
    return pika.BlockingConnection(params)


@pytest.fixture
def durable_default_vhost_queue():
    """A uniquely named durable queue on "/", declared as a worker would
    before any heartbeat is sent; deleted again."""
    connection = _default_vhost()
    name = "cc-urls-trigger-%s" % uuid.uuid4().hex[:10]
    channel = connection.channel()
    channel.queue_declare(name, durable=True)
    try:
        yield name, channel
    finally:
        channel.queue_delete(name)
        connection.close()


@pytest.mark.parametrize("form", [
    "amqp://guest:guest@{host}:{port}//",   # Celery's documented default
    "pyamqp://guest@{host}:{port}//",       # a user, no password: guest's
])
def test_trigger_publishes_to_vhost_slash(durable_default_vhost_queue, redis_url, redis_client, form):
    name, channel = durable_default_vhost_queue
    url = form.format(host=AMQP_HOST, port=AMQP_PORT)
    result = run_check("trigger_celery_heartbeat", "-b", url, "--store", redis_url, "-q", name)
    assert result.rc == 0 and result.stderr == "", result.describe("trigger failed")
    assert result.stdout == "published 1 heartbeat (expire in 300s) to %s\n" % name
    # exactly one message arrived in the queue on "/": the heartbeat
    from tests.kit.waiting import wait_for

    count = lambda: channel.queue_declare(name, durable=True, passive=True).method.message_count
    wait_for(lambda: count() >= 1, 10, "the heartbeat on vhost /")
    assert count() == 1
    method, properties, _body = channel.basic_get(name, auto_ack=True)
    assert properties.headers["task"] == "celery_checks.heartbeat"
    # and the store recorded that publish, for check_celery_heartbeat
    assert redis_client.keys("*%s*" % name)


@pytest.fixture
def events_exchange_on_default_vhost():
    """The events source declares Celery's celeryev exchange as a worker
    would; on "/" it is removed again if it was not there before (and only
    while nothing is bound to it)."""
    connection = _default_vhost()
    channel = connection.channel()
    try:
        channel.exchange_declare("celeryev", passive=True)
        existed = True
    except Exception:  # 404 closes the channel
        existed = False
        channel = connection.channel()
    yield
    if not existed:
        try:
            channel.exchange_delete("celeryev", if_unused=True)
        except Exception:
            pass  # a worker bound to it meanwhile: it is theirs now
    connection.close()


def test_workers_events_source_reaches_vhost_slash_as_user_without_password(
        events_exchange_on_default_vhost):
    """No worker runs on "/" (the suite starts none there): the events
    source reaches the vhost, listens and says that nobody is there; a
    misread vhost would be refused (the second run shows how that reads)."""
    name = "cc-urls-%s@nowhere" % uuid.uuid4().hex[:8]
    url = "pyamqp://guest@%s:%d//" % (AMQP_HOST, AMQP_PORT)
    result = run_check("check_celery_workers", "-b", url, "--source", "events", "--expect", name,
                       "--window", "1", "-t", "8", "-vv")
    result.assert_critical()
    assert name in result.stdout and "refused" not in result.stdout and "vhost" not in result.stdout
    assert "source events on broker %s" % url in result.long_output
    assert result.perfdata["online"].value == 0 and result.perfdata["missing"].value == 1
    missing = "pyamqp://guest@%s:%d/cc-no-such-%s" % (AMQP_HOST, AMQP_PORT, uuid.uuid4().hex[:6])
    result = run_check("check_celery_workers", "-b", missing, "--source", "events", "--expect", name,
                       "--window", "1", "-t", "8")
    result.assert_critical("vhost")


# ------------------------------- -O keys kombu knows that a check does not use

UNUSED = "transport options not used by this check: "


def test_amqp_queue_check_names_every_option_pika_does_not_read(rabbitmq):
    name = rabbitmq.queue_name()
    rabbitmq.channel().queue_declare(name)
    # visibility_timeout: Celery's documentation sets it for Redis, and an app
    # on RabbitMQ that keeps it runs (py-amqp takes any keyword): accepted
    args = ["-b", rabbitmq.url, "-q", name, "-O", "heartbeat=30", "-O", "confirm_publish=true",
            "-O", "visibility_timeout=43200"]
    result = queue(*args + ["-vv"])
    result.assert_ok("queue %s has 0 waiting messages" % name)
    assert UNUSED + "confirm_publish, heartbeat, visibility_timeout" in result.long_output
    assert result.perfdata[name].value == 0
    # only at -vv: the status line and -v are the same as without -O
    plain = queue("-b", rabbitmq.url, "-q", name, "-v")
    assert queue(*args + ["-v"]).stdout == plain.stdout
    assert not any(line.startswith(UNUSED) for line in plain.long_output)


def test_redis_checks_name_the_options_they_do_not_read(redis_url, redis_client):
    options = ["-O", "visibility_timeout=43200", "-O", "global_keyprefix=pfx:",
               "-O", "body_encoding=base64"]
    redis_client.lpush("pfx:celery", b"{}")
    result = queue("-b", redis_url, *options, "-vv")
    result.assert_ok("queue celery has 1 waiting")  # the prefix was read
    assert UNUSED + "body_encoding, visibility_timeout" in result.long_output
    # everything it reads: no such line
    result = queue("-b", redis_url, "-O", "global_keyprefix=pfx:", "-O", "sep=:", "-vv")
    assert not any(line.startswith(UNUSED) for line in result.long_output), result.describe("")

    result = run_check("check_celery_heartbeat", "--store", redis_url, "-q", "celery", *options, "-vv")
    result.assert_critical("celery: no heartbeat ever recorded")
    assert UNUSED + "body_encoding, visibility_timeout" in result.long_output

    nobody = "cc-urls-%s@nowhere" % uuid.uuid4().hex[:8]
    workers = ("check_celery_workers", "-b", redis_url, "--expect", nobody, "-t", "8", "-vv")
    result = run_check(*workers, "--source", "ping", "--reply-timeout", "0.5", *options)
    result.assert_critical("1 of 1 expected worker missing")
    assert UNUSED + "body_encoding, visibility_timeout" in result.long_output  # redis-py alone
    result = run_check(*workers, "--source", "events", "--window", "0.5", *options)
    result.assert_critical("1 of 1 expected worker missing")
    assert UNUSED + "visibility_timeout" in result.long_output  # kombu encodes the broadcast


def test_keys_of_the_other_transport_are_accepted_and_named(rabbitmq, redis_url, redis_client):
    """kombu takes them silently (the Redis channel ignores what it does not
    read; py-amqp's Connection takes any keyword): a usage error would refuse
    the options an app runs with."""
    nobody = "cc-urls-%s@nowhere" % uuid.uuid4().hex[:8]
    result = run_check("check_celery_workers", "-b", rabbitmq.url, "--source", "events", "--expect",
                       nobody, "--window", "0.5", "-t", "8", "-vv", "-O", "visibility_timeout=60",
                       "-O", "global_keyprefix=pfx:")
    result.assert_critical("1 of 1 expected worker missing")
    assert UNUSED + "global_keyprefix, visibility_timeout" in result.long_output
    declare_on_redis(redis_client, "celery")
    result = queue("-b", redis_url, "-O", "heartbeat=30", "-O", "master_name=mymaster", "-vv")
    result.assert_ok("queue celery has 0 waiting")
    assert UNUSED + "heartbeat, master_name" in result.long_output  # not a sentinel:// URL
    # a key no transport of kombu knows is still a usage error
    queue("-b", redis_url, "-O", "visibility_timeot=60").assert_unknown(
        "unknown transport option -O visibility_timeot for the Redis transport "
        "(did you mean visibility_timeout?)")


@pytest.mark.parametrize("scheme,options", [
    ("redis", ["-O", "socket_timeout=30", "-O", "socket_connect_timeout=30"]),
    ("amqp", ["-O", "connect_timeout=30", "-O", "read_timeout=30"]),
])
def test_an_apps_long_socket_timeouts_do_not_outlast_the_check(scheme, options, redis_url):
    """An app's broker_transport_options often carry socket timeouts meant
    for a long-running worker: passed with -O they still leave a silent
    broker CRITICAL (the outage), not UNKNOWN (our -t)."""
    from tests.kit.faults import Listener

    silent = Listener("silent")
    try:
        url = "%s://127.0.0.1:%d/0" % (scheme, silent.port) if scheme == "redis" else \
            "amqp://guest:guest@127.0.0.1:%d//" % silent.port
        result = run_check("check_celery_workers", "-b", url, "--source", "events", "-t", "3", *options)
        result.assert_critical(url.replace("guest:guest", "guest:***"))
        # -t 6: the trigger gives each network step 0.4 of -t, after importing
        # celery, which on a busy machine alone can take most of 3 s.
        result = run_check("trigger_celery_heartbeat", "-b", url, "--store", redis_url, "-t", "6",
                           *options)
        assert result.rc == 1, result.describe("")
        assert result.stderr.startswith("trigger_celery_heartbeat: cannot publish to broker %s: "
                                        % url.replace("guest:guest", "guest:***")), result.describe("")
    finally:
        silent.close()
