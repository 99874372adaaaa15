"""Keep passwords out of everything a check prints, by structure.

A password reaches output only inside a URL: the check's own messages show
URLs through :func:`redact_url`, and :func:`redact` masks the password of
every URL found in a text (an exception message from a client library, a
traceback at -vvv, a log line): the userinfo after ``user:`` and the value
of password-like query keys. Nothing else is touched: a password that is an
ordinary word (``celery``, ``OK``, a queue's name) never changes the words
around it, so the output is the same whatever the password is.
"""

import re

MASK = "***"
PASSWORD_KEYS = ("password", "passwd", "pwd", "sentinel_password", "pass")
_KEY_STEMS = ("pass", "pwd")  # every key of PASSWORD_KEYS holds one

# scheme://userinfo@ : the userinfo runs to the last "@" of the URL (a
# password may hold an unencoded "@", ":" or "/"; masking a little too much
# of an odd URL is better than showing a piece of its password).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s;]*)@")
_QUERY_PASSWORD = re.compile(
    r"(?i)([?&;](?:%s)=)([^&#\s'\"]*)" % "|".join(PASSWORD_KEYS))


def _mask_userinfo(match):
    scheme, userinfo = match.group(1), match.group(2)
    user, sep, _password = userinfo.partition(":")
    return "%s%s%s@" % (scheme, user, sep + MASK if sep else "")


def redact(text):
    """``text`` with the password of every URL in it masked."""
    if "://" in text:
        text = _USERINFO.sub(_mask_userinfo, text)
    # A perfdata line of 1,000 queues has "=" and ";" in every item: not
    # scanned key by key unless a key's stem is there at all.
    if "=" in text and any(stem in text.lower() for stem in _KEY_STEMS):
        text = _QUERY_PASSWORD.sub(lambda m: m.group(1) + (MASK if m.group(2) else ""), text)
    return text


def redact_url(url):
    """The URL with its password (and a password-like query value) masked.

    ``redis://:pw@h/0`` shows as ``redis://:***@h/0``, ``amqp://u@h//`` (no
    password) unchanged; for a ``;``-separated list each URL is masked.
    """
    parts = []
    for part in url.split(";"):
        scheme, sep, rest = part.partition("://")
        if sep and "@" in rest:
            userinfo, _, hostinfo = rest.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            part = "%s://%s%s@%s" % (scheme, user, colon + MASK if colon else "", hostinfo)
        parts.append(part)
    return redact(";".join(parts))


def redact_options(options):
    """Transport options as they may be printed: password-like values of
    any nesting level (``sentinel_kwargs={"password": ...}``) masked."""
    if isinstance(options, dict):
        return {key: MASK if str(key).lower() in PASSWORD_KEYS and value
                else redact_options(value) for key, value in options.items()}
    if isinstance(options, (list, tuple)):
        return type(options)(redact_options(value) for value in options)
    if isinstance(options, str):
        return redact(options)
    return options
