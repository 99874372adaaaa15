"""pika connection parameters for kombu's AMQP URLs, made from
:func:`celery_checks.connect.urls.parse_url` (never pika's own URL rules),
and pika's failures in the status policy."""

import contextlib

from celery_checks.connect.failures import alarm, reason, silent
from celery_checks.connect.urls import parse_url
from celery_checks.plugin.policy import CheckError, Unreachable
from celery_checks.plugin.secrets import redact_url


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
    except alarm():
        raise silent(what, shown)
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
        raise Unreachable("cannot reach %s %s: %s" % (what, shown, reason(exc)))


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
        return reason(seen)
    if type(seen).__name__ in ("StreamLostError", "IncompatibleProtocolError"):
        # pika's words for "the peer hung up before the AMQP handshake"
        return "connection closed by the peer before the AMQP handshake"
    if type(seen).__name__ == "AMQPConnectorStackTimeout":
        return "no AMQP handshake in time (the peer accepted but did not answer)"
    text = reason(seen)
    if text in ("", type(seen).__name__) or text == "()":
        return "connection failed (%s)" % type(seen).__name__
    return text
