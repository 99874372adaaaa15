"""--source stdin: the text or JSON of ``celery status`` / ``celery inspect
ping`` piped in (Celery 3 to 5, colour or not); Celery's own "cannot reach
the broker" is the outage, in its words."""

import json
import re

from celery_checks.plugin.policy import CheckError, Unreachable
from celery_checks.workers.replies import Observed, Reply, excerpt

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Celery 5 "->  node: OK", Celery 3/4 "-> node: OK", bare "node@host: OK"
_NODE_LINE = re.compile(r"^\s*->\s+(?P<node>\S+?):\s*(?P<status>\S.*?)\s*$")
_BARE_LINE = re.compile(r"^\s*(?P<node>[^\s:]+@[^\s:]+):\s+(?P<status>\S.*?)\s*$")
_ONLINE = re.compile(r"^\s*(?P<count>\d+)\s+nodes?\s+online\.?\s*$")
_NO_NODES = re.compile(r"No nodes replied[^.\n]*", re.I)
# What `celery status` / `inspect ping` print when they cannot ask the
# workers (tests/data/workers/*-down-*, *-refused-*, *-hang-*): Celery >= 5.3
# one "Error: ... Reason: ..." line, Celery 5.2 a traceback ending in the
# broker client's exception.
_CELERY_ERROR = re.compile(
    r"^Error: (?:(?P<connect>Could not connect to the message broker)"
    r"|Unable to run the `(?P<command>[^`]+)` command)\..*?Reason: (?P<reason>.+?)\s*$",
    re.M | re.S)
_TRACEBACK_END = re.compile(
    r"^(?P<exc>(?:kombu|amqp|redis)\.exceptions\.\w+|ConnectionRefusedError|"
    r"ConnectionResetError|TimeoutError|socket\.timeout): (?P<reason>.+?)\s*$")


def parse_status(text):
    """Replies from ``celery status`` / ``celery inspect ping`` output.

    Text (any Celery from 3 to 5, colour or not) or --json. ``No nodes
    replied`` is a valid answer: no node online. CheckError for anything
    that is not such output.
    """
    clean = _ANSI.sub("", text).replace("\r", "")
    stripped = clean.strip()
    if not stripped:
        raise CheckError("no input on stdin: pipe `celery status` (or --json) into --source stdin")
    if stripped.startswith("{"):
        return Observed(_parse_json(stripped))
    _raise_celery_failure(clean)
    replies, announced, no_nodes = Observed(), None, None
    for line in clean.splitlines():
        match = _NODE_LINE.match(line) or _BARE_LINE.match(line)
        if match:
            status = match.group("status")
            ok = status.upper() == "OK"
            replies.append(Reply(match.group("node"), ok=ok, status=status if not ok else "OK"))
            continue
        online = _ONLINE.match(line)
        if online:
            announced = int(online.group("count"))
        elif _NO_NODES.search(line):
            no_nodes = _NO_NODES.search(line).group(0).strip()
    if no_nodes and not replies:
        replies.note = "celery: " + no_nodes
        return replies
    if not replies:
        raise CheckError("stdin is not `celery status` or `celery inspect ping` output: %s"
                         % excerpt(stripped))
    if announced is not None and announced != len(replies):
        raise CheckError("stdin says %d nodes online but lists %d: truncated input?"
                         % (announced, len(replies)))
    return replies


def _raise_celery_failure(text):
    """Unreachable, in Celery's words, when ``text`` is what `celery status`
    prints when it cannot reach the broker (a fact about the fleet: nobody
    can ask the workers), CRITICAL like our own sources say it."""
    match = _CELERY_ERROR.search(text)
    if match:
        if match.group("connect"):
            head = "celery cannot reach the broker: "
        else:
            head = "celery could not run `%s`: " % match.group("command")
        raise Unreachable(head + _cut(match.group("reason"), head))
    if "Traceback (most recent call last):" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        match = _TRACEBACK_END.match(last)
        head = "celery cannot reach the broker: "
        if match:
            raise Unreachable(head + _cut(match.group("reason"), head))
        # celery itself failed (no app, a bad option): not about the fleet
        head = "celery failed: "
        raise CheckError(head + _cut(last, head))


def _cut(text, head, width=120):
    """``text`` cut so that "NAME STATE - " + head + text fits ``width``:
    the reason is what matters, so longer than the usual 80."""
    limit = max(width - 26 - len(head), 30)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_json(text):
    try:
        data, _ = json.JSONDecoder().raw_decode(text)
    except ValueError as exc:
        raise CheckError("stdin is not valid JSON: %s" % exc)
    if not isinstance(data, dict):
        raise CheckError("stdin JSON is not an object of node replies")
    replies = []
    for name, answer in data.items():
        if not isinstance(name, str) or not name.strip():
            raise CheckError("stdin JSON has an invalid node name %r" % (name,))
        if isinstance(answer, dict) and answer.get("ok") == "pong":
            replies.append(Reply(name))
        elif isinstance(answer, dict) and "error" in answer:
            replies.append(Reply(name, ok=False, status="error: %s" % excerpt(str(answer["error"]))))
        else:
            raise CheckError("stdin JSON reply of %s is not a ping reply: %s"
                             % (name, excerpt(json.dumps(answer))))
    return replies


def nodes(asking):
    """The replies in ``celery status`` / ``inspect ping`` output on stdin."""
    import sys

    if sys.stdin is None or sys.stdin.isatty():
        raise CheckError("--source stdin reads a pipe or file, not a terminal: "
                         "feed it the output of `celery status`")
    try:
        text = sys.stdin.read(1 << 20)
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckError("cannot read stdin: %s" % exc)
    return parse_status(text)
