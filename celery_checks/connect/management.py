"""RabbitMQ's management API (the rabbitmq_management plugin's HTTP API)
with the standard library's http.client alone: one bounded GET, its JSON,
and every failure in the status policy (CRITICAL naming the redacted URL).

The URL (``http[s]://[user[:password]@]host[:port][/prefix]``) comes by the
same precedence rule as the broker's (connect/targets.py ``resolve_url``); a
user or password it leaves out is the broker URL's (:func:`credentials`).
"""

import json
import os
from urllib.parse import quote, unquote, urlsplit

from celery_checks.connect.failures import alarm, reason, silent
from celery_checks.connect.targets import URL_SOURCES, resolve_url
from celery_checks.connect.urls import bracketed_host_fault, host_name_fault
from celery_checks.plugin.policy import CheckError, Unreachable
from celery_checks.plugin.secrets import redact_url

WHAT = "management API"
DEFAULT_PORT = 15672


class ManagementURL:
    """Where the API is and as whom we ask it."""

    def __init__(self, url, broker=None):
        self.url = url
        self.shown = redact_url(url)
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise CheckError("bad management URL %s: %s" % (self.shown, bracketed_host_fault(exc)))
        if parts.scheme not in ("http", "https"):
            raise CheckError("bad management URL %s: expected http:// or https://" % self.shown)
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else DEFAULT_PORT)
        except ValueError:
            raise CheckError("bad management URL %s: port not a number or out of range"
                             % self.shown)
        if not parts.hostname:
            raise CheckError("bad management URL %s: no host" % self.shown)
        fault = host_name_fault(parts.hostname)
        if fault:
            raise CheckError("bad management URL %s: %s" % (self.shown, fault))
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.prefix = parts.path.rstrip("/")
        self.user, self.password = credentials(
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password is not None else None, broker)


def management_url(given, given_file, broker, environ=os.environ):
    """RabbitMQ's management API for an AMQP broker Target, by the one
    precedence rule (None when none of the three names one): a
    connect.management.ManagementURL, its missing user or password the
    broker URL's. CheckError (a usage error) if unusable."""
    variable = URL_SOURCES["management"][2]
    if not (given or given_file or environ.get(variable)):
        return None
    url, origin = resolve_url("management", given, given_file, environ)
    if broker.transport != "amqp":
        if origin == "$" + variable:
            return None  # set for the RabbitMQ checks of this host: not ours
        raise CheckError("%s is RabbitMQ's management API: the broker %s is not RabbitMQ"
                         % (origin, broker.shown))
    return ManagementURL(url, broker.parsed)


def credentials(user, password, broker):
    """The management URL's user and password; what it leaves out is the
    broker URL's (a BrokerURL): no user means the broker's user and
    password, a user without a password the broker's password only when
    it is the broker's user."""
    if broker is None:
        return user or "guest", password or ""
    if not user:
        return broker.userid, broker.password if password is None else password
    if password is None:
        password = broker.password if user == broker.userid else ""
    return user, password


def get_json(api, path, timeout, query=""):
    """The JSON of one GET of ``path`` (under the URL's prefix), within
    ``timeout``; Unreachable naming the redacted URL on any failure."""
    import base64
    import http.client

    kind = http.client.HTTPSConnection if api.tls else http.client.HTTPConnection
    connection = kind(api.host, api.port, timeout=timeout)
    token = base64.b64encode(("%s:%s" % (api.user, api.password)).encode("utf-8")).decode()
    target = api.prefix + path + ("?" + query if query else "")
    try:
        try:
            connection.request("GET", target, headers={
                "Authorization": "Basic " + token, "Accept": "application/json",
                "User-Agent": "celery-checks"})
            response = connection.getresponse()
            body = response.read()
        except alarm():
            raise silent(WHAT, api.shown)
        except (http.client.HTTPException, ValueError) as exc:  # not HTTP: another service
            raise Unreachable("%s %s did not answer as RabbitMQ's management API (%s)" % (
                WHAT, api.shown, reason(exc) if str(exc) else type(exc).__name__))
        except OSError as exc:
            if "timed out" in str(exc) or type(exc).__name__ == "timeout":
                raise Unreachable("%s %s did not answer in time" % (WHAT, api.shown))
            raise Unreachable("cannot reach %s %s: %s" % (WHAT, api.shown, reason(exc)))
    finally:
        connection.close()
    status = response.status
    said = _reason(body)
    if status in (401, 403):
        if "management user" in said:
            raise Unreachable("%s %s refused user %s: it needs the monitoring tag "
                              "(rabbitmqctl set_user_tags)" % (WHAT, api.shown, api.user))
        if "virtual host" in said:
            raise Unreachable("%s %s refused user %s access to the vhost (%s)" % (
                WHAT, api.shown, api.user, said))
        raise Unreachable("%s %s refused authentication (wrong user or password)" % (
            WHAT, api.shown))
    if status == 404:
        raise Unreachable("%s %s answered 404 Not Found for %s: no such vhost, or not "
                          "RabbitMQ's management API" % (WHAT, api.shown, _short(path)))
    if status != 200:
        raise Unreachable("%s %s answered %d %s for %s" % (
            WHAT, api.shown, status, response.reason, _short(path)))
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:
        raise Unreachable("%s %s did not answer with JSON: not RabbitMQ's management API?"
                          % (WHAT, api.shown))


def _reason(body):
    """The management API's own words for an error ({"reason": ...}), or ''."""
    try:
        said = json.loads(body.decode("utf-8")).get("reason")
    except (ValueError, AttributeError):
        return ""
    return " ".join(str(said).split())[:80] if said else ""


def queues_path(vhost):
    return "/api/queues/" + quote(vhost, safe="")


def _short(path, limit=60):
    return path if len(path) <= limit else path[:limit - 3] + "..."
