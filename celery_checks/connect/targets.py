"""Which broker or store URL a check uses, and what its Resource is given.

- :func:`resolve_url`: the one precedence rule for every kind of URL (its
  option, its -file option, the environment, a fallback), behind
  :func:`resolve_broker_url`, :func:`resolve_store_url` and
  connect/management.py's ``management_url`` (RabbitMQ's management API);
- :class:`Target`: what a check's Resource is given (URL, -O options, role),
  made by :func:`broker_target` / :func:`store_target`.

What a URL means is connect/urls.py's.
"""

import os

from celery_checks.connect.failures import reason
from celery_checks.connect.urls import parse_url
from celery_checks.plugin.policy import CheckError
from celery_checks.plugin.secrets import redact_url

DEFAULT_BROKER_URL = "redis://localhost:6379/0"
# Where each kind of URL comes from, in this order: its option, its
# -file option (first line), an environment variable, then a fallback.
URL_SOURCES = {
    "broker": ("--broker", "--broker-file", "CELERY_BROKER_URL"),
    "store": ("--store", "--store-file", "CELERY_CHECKS_STORE_URL"),
    "management": ("--management-url", "--management-url-file", "CELERY_CHECKS_MANAGEMENT_URL"),
}
STORE_ENV = URL_SOURCES["store"][2]


def resolve_url(kind, given, given_file, environ=os.environ, fallback=None):
    """(url, origin) of ``kind`` ("broker", "store") by the one precedence
    rule; ``fallback`` is (url, origin) when none of the three is set.
    CheckError (a usage error) for an empty or unreadable one."""
    option, file_option, variable = URL_SOURCES[kind]
    # An option given empty (-b "$UNSET_VARIABLE") is a usage error, not
    # absent: falling through would check the environment's or the
    # default's broker, another one than the command line names.
    if given is not None:
        url, origin = given, option
    elif given_file is not None:
        url, origin = read_url_file(given_file, file_option), file_option
    elif environ.get(variable):
        url, origin = environ[variable], "$" + variable
    elif fallback is not None:
        url, origin = fallback
    else:
        raise CheckError("no %s URL: give %s, %s or $%s" % (kind, option, file_option, variable))
    url = url.strip()
    if not url:
        raise CheckError("the %s URL from %s is empty" % (kind, origin))
    return url, origin


def resolve_broker_url(broker=None, broker_file=None, environ=os.environ):
    """The broker URL to use: the first of a ``;``-separated fail-over list
    (kombu's first choice), or for sentinel:// the whole list (the
    sentinels of one master). CheckError if bad."""
    url, _origin = resolve_url("broker", broker, broker_file, environ,
                               (DEFAULT_BROKER_URL, "the default"))
    parsed = parse_url(url)
    if parsed.scheme != "sentinel":
        url = parsed.alternates[0]
        parse_url(url)
    return url


def resolve_store_url(store, store_file, broker_url, environ=os.environ):
    """The Redis heartbeat store's URL; the broker's when it is Redis and
    nothing else names one. CheckError if unusable."""
    fallback = (broker_url, "the broker URL") if parse_url(broker_url).transport == "redis" else None
    try:
        url, origin = resolve_url("store", store, store_file, environ, fallback)
    except CheckError:
        if fallback is None and store is None and store_file is None \
                and not environ.get(STORE_ENV):
            raise CheckError("the broker %s is not Redis: name the Redis heartbeat store "
                             "with --store URL" % redact_url(broker_url))
        raise
    if parse_url(url).transport != "redis":
        raise CheckError("the heartbeat store must be Redis, got %s from %s"
                         % (redact_url(url), origin))
    return url


class Target:
    """What a check connects to, handed to its Resource: the URL (as
    :func:`parse_url` reads it), the -O transport options, and what it is to
    the user ("broker", "heartbeat store"), for messages."""

    def __init__(self, url, options=None, role="broker"):
        self.url = url
        self.parsed = parse_url(url)
        self.options = dict(options or {})
        self.role = role

    @property
    def transport(self):
        return self.parsed.transport

    @property
    def shown(self):
        """The URL as it may be printed: every password masked."""
        return redact_url(self.url)

    def __repr__(self):
        return "Target(%s %s)" % (self.role, self.shown)


def broker_target(given, given_file, options, environ=os.environ):
    """The broker :class:`Target` of a command line: the URL by the
    precedence rule, the -O keys checked against what kombu knows
    (connect/options.py). CheckError (a usage error) if bad."""
    from celery_checks.connect.options import check_transport_options

    url = resolve_broker_url(given, given_file, environ)
    check_transport_options(parse_url(url), options)
    return Target(url, options, "broker")


def store_target(given, given_file, broker, environ=os.environ):
    """The heartbeat store's Target: its own URL, else the broker's when the
    broker is Redis; the same transport options (global_keyprefix)."""
    url = resolve_store_url(given, given_file, broker.url, environ)
    return Target(url, broker.options, "heartbeat store")


def read_url_file(path, option):
    try:
        # utf-8-sig: a byte order mark (a file saved by Notepad) is not part
        # of the URL; kept, it read as an invisible "unsupported scheme".
        with open(path, encoding="utf-8-sig") as handle:
            line = handle.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckError("cannot read %s %s: %s" % (option, path, reason(exc)))
    if not line:
        raise CheckError("%s %s is empty" % (option, path))
    return line
