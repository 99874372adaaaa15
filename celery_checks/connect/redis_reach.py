"""How the Redis client (:mod:`celery_checks.connect.redis`) reaches a
server besides plain TCP and unix sockets: the TLS context for kombu's
``ssl_*`` options, and the master the sentinels of a sentinel:// URL name
(asked with the same client)."""

from celery_checks.plugin.policy import CheckError


_CERT_REQS = {"none": "CERT_NONE", "optional": "CERT_OPTIONAL", "required": "CERT_REQUIRED"}
_SSL_KEYS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_ca_data", "ssl_certfile",
             "ssl_keyfile", "ssl_password", "ssl_check_hostname", "ssl_ciphers")


def tls_context(options):
    """An SSLContext from kombu's ssl dict, with redis-py's meaning of each
    key: certificates verified unless ssl_cert_reqs says otherwise, the host
    name too unless ssl_check_hostname=false or verification is off."""
    import ssl

    unknown = sorted(set(options) - set(_SSL_KEYS))
    if unknown:
        raise CheckError("%s is not supported for rediss:// (known: %s)" % (
            unknown[0], ", ".join(_SSL_KEYS)))
    reqs = str(options.get("ssl_cert_reqs") or "required")
    mode = getattr(ssl, reqs if reqs.isupper() else _CERT_REQS.get(reqs.lower(), "CERT_REQUIRED"))
    context = ssl.create_default_context()
    context.check_hostname = bool(options.get("ssl_check_hostname", True)) and mode != ssl.CERT_NONE
    context.verify_mode = mode
    if options.get("ssl_certfile") or options.get("ssl_keyfile"):
        context.load_cert_chain(options.get("ssl_certfile"), options.get("ssl_keyfile"),
                                options.get("ssl_password"))
    if any(options.get(k) for k in ("ssl_ca_certs", "ssl_ca_path", "ssl_ca_data")):
        context.load_verify_locations(options.get("ssl_ca_certs"), options.get("ssl_ca_path"),
                                      options.get("ssl_ca_data"))
    if options.get("ssl_ciphers"):
        context.set_ciphers(options["ssl_ciphers"])
    return context


def master(sentinels, timeout):
    """kombu's sentinel://[:pw@]host:port[;sentinel://host2:port2]/db form:
    the sentinels of every sentinel:// of the list are asked in turn for the
    master (``SENTINEL MASTER``, judged as redis-py's Sentinel judges it: a
    master, not down, seen by min_other_sentinels others); user, password
    and DB of the first URL are the master's, as kombu's SentinelChannel
    takes them; ``sentinel_kwargs`` may give the sentinels' own."""
    from celery_checks.connect.redis import (
        MasterNotFound, RedisClient, RedisError, _redis_username)

    addresses, options = sentinels
    name = options["master_name"]
    wanted = int(options.get("min_other_sentinels") or 0)
    extra = dict(options.get("sentinel_kwargs") or {})
    for address in addresses:
        sentinel = RedisClient(timeout, tuple(address), password=extra.get("password"),
                               username=_redis_username(extra.get("username"), extra.get("password")))
        try:
            reply = sentinel.call("SENTINEL", "MASTER", name)
        except (RedisError, OSError):
            continue
        finally:
            sentinel.close()
        state = {_text(k): _text(v) for k, v in zip(reply[::2], reply[1::2])}
        flags = state.get("flags", "").split(",")
        if "master" not in flags or "s_down" in flags or "o_down" in flags \
                or int(state.get("num-other-sentinels") or 0) < wanted:
            continue
        return state["ip"], int(state["port"])
    raise MasterNotFound("No master found for %r" % name)


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
