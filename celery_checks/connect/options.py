"""The -O transport options: the keys kombu knows (held against kombu by
tests/test_urls.py), a typo refused with the nearest key, the keys a check
does not use named at -vv, and socket timeouts an app's options may carry
bounded by the check's own."""

from celery_checks.connect.urls import parse_url
from celery_checks.plugin.policy import CheckError

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


#: -O keys kombu uses as text: -O global_keyprefix=1 or sep=7 is the text
#: "1" or "7" (as in an app's broker_transport_options), never a number
#: or a boolean, which broke the key layout (int + str).
TEXT_OPTIONS = ("global_keyprefix", "sep", "unacked_key", "unacked_index_key",
                "unacked_mutex_key", "master_name", "client_name", "deadletter_queue",
                "body_encoding", "queue_order_strategy", "locale")
#: -O keys kombu reads as a number of seconds or a count (null: its default)
NUMBER_OPTIONS = ("visibility_timeout", "unacked_mutex_expire", "unacked_restore_limit",
                  "unacked_restore_interval", "health_check_interval", "socket_timeout",
                  "socket_connect_timeout", "min_other_sentinels",
                  "heartbeat", "connect_timeout", "read_timeout", "write_timeout",
                  "frame_max", "channel_max", "max_retries", "interval_start",
                  "interval_step", "interval_max", "connect_retries_timeout")
#: -O keys kombu hands on as keyword arguments: a JSON object
OBJECT_OPTIONS = ("sentinel_kwargs", "client_properties", "socket_settings",
                  "socket_keepalive_options")


def option_value(key, raw):
    """The value of ``-O KEY=RAW`` as kombu would get it from an app's
    broker_transport_options: the text itself for the keys kombu reads as
    text, else JSON where RAW parses as JSON (numbers, lists, objects,
    true/false), else the text. CheckError (a usage error) for a value
    kombu could not use: it failed later as an internal error."""
    import json

    if key in TEXT_OPTIONS:
        if key == "sep" and not raw:
            raise CheckError("transport option sep cannot be empty (kombu's is '\\x06\\x16')")
        if key == "body_encoding" and raw != "base64":
            raise CheckError("transport option body_encoding: kombu knows base64 only")
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    if key in OBJECT_OPTIONS and not isinstance(value, dict):
        raise CheckError("transport option %s must be a JSON object, e.g. -O '%s={\"%s\": ...}'"
                         % (key, key, "password" if key == "sentinel_kwargs" else "key"))
    if key == "priority_steps":
        from celery_checks.connect.layout import priority_steps

        priority_steps(value)
    if key in NUMBER_OPTIONS and value is not None and (
            not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
        raise CheckError("transport option %s must be a number >= 0, got %s" % (key, raw))
    if key == "max_connections" and not (
            isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise CheckError("transport option max_connections must be a whole number > 0")
    return value


def check_transport_options(parsed, options):
    """CheckError naming an -O key that none of kombu's Redis and AMQP
    transports knows (a typo), and the nearest key it knows.

    A key of the other transport is accepted: kombu takes it silently (the
    Redis channel ignores what it does not read, py-amqp's Connection takes
    any keyword), so an app runs with it and so must its check; -vv names
    the keys a check does not use (:func:`unused_options_line`)."""
    if parsed.transport == "amqp":
        own, name = AMQP_TRANSPORT_OPTIONS, "AMQP"
    elif parsed.scheme == "sentinel":
        own, name = SENTINEL_TRANSPORT_OPTIONS, "Redis Sentinel"
    else:
        own, name = REDIS_TRANSPORT_OPTIONS, "Redis"
    known = own + tuple(key for key in KOMBU_TRANSPORT_OPTIONS if key not in own)
    for key in options:
        if key not in known:
            import difflib  # only for the typo's hint

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
