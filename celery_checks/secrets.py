"""Keep passwords out of everything a check prints.

URLs are shown through :func:`redact_url`; as a second line of defence every
password seen while resolving URLs is registered here and scrubbed from all
output by :func:`redact`, whatever path it took to get there (an exception
message from a client library, a traceback at -vvv, a log line).
"""

MASK = "***"
_secrets = set()


def register(secret):
    if secret and len(secret) >= 2:
        _secrets.add(secret)
        quoted = secret.replace("%", "%25").replace("@", "%40").replace(":", "%3A")
        _secrets.add(quoted)


def redact(text):
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_url(url):
    """The URL with its password (and a password-like query value) masked.

    Registers the password so it is scrubbed from all later output too.
    """
    # Imported here: the pulse file check never parses a URL (~3 ms saved).
    from urllib.parse import unquote, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return MASK  # unparsable: show nothing rather than leak
    netloc = parts.netloc
    if password is not None:
        register(password)
        register(unquote(password))
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = "%s:%s@%s" % (user, MASK, hostinfo)
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            key, sep, value = pair.partition("=")
            if key.lower() in ("password", "sentinel_password", "passwd") and value:
                register(unquote(value))
                value = MASK
            pairs.append(key + sep + value)
        query = "&".join(pairs)
    shown = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    if not netloc and "://" in url:  # redis+socket:///path: keep the slashes
        shown = shown.replace(":", "://", 1)
    return shown
