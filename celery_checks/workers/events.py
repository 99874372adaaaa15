"""--source events: worker-heartbeat events on the celeryev exchange, after
asking every worker for one at once (workers send them every 2 s even
without -E); ends when the inventory is complete or the window is over."""

import socket
import time
import uuid

from celery_checks.connect.kombu import EVENT_EXCHANGE, Broker
from celery_checks.connect.pidbox import grace
from celery_checks.workers.replies import Reply

HEARTBEAT_EXPIRE = 2.0  # alive while received < freq * this ago (celery's rule)


def nodes(asking):
    """Nodes whose worker-heartbeat we receive within --window."""
    from kombu import Consumer, Exchange

    started = time.monotonic()
    seen = {}  # name -> (received, event)
    offline = {}
    # The window counts from our heartbeat request (set once it is sent),
    # not from the start: connecting on a busy host must not eat it.
    state = {"deadline": float("inf"), "asked": started}

    def on_event(body, message):
        if not isinstance(body, dict) or not isinstance(body.get("hostname"), str):
            return
        kind, name = body.get("type"), body["hostname"]
        now = time.monotonic()
        if kind in ("worker-heartbeat", "worker-online"):
            previous = seen.get(name, (0, {}))[1]
            # The reply to our heartbeat command carries no task counts:
            # keep the ones a regular heartbeat gave.
            merged = dict(previous, **body)
            seen[name] = (now, merged)
            offline.pop(name, None)
        elif kind == "worker-offline":
            offline[name] = now
        if asking.inventory and asking.inventory.complete(alive()):
            # the ping's grace: 3 x the mean time between the answers (with
            # 50 workers the last one's time alone made it the 0.2 s cap)
            state["deadline"] = min(state["deadline"],
                                    now + grace(now - state["asked"], len(seen)))

    def alive():
        now = time.monotonic()
        return [name for name, (received, event) in seen.items()
                if name not in offline and now - received <= _freq(event) * HEARTBEAT_EXPIRE]

    with Broker(asking.broker, asking.io_timeout()) as broker:
        # Celery sends events on a topic exchange, a fanout one on Redis.
        kind = "fanout" if broker.kind == "redis" else "topic"
        exchange = Exchange(EVENT_EXCHANGE, type=kind, durable=True, delivery_mode="transient")
        name = "celeryev.celery-checks.%s" % uuid.uuid4().hex
        queue = broker.private_queue(name, exchange, "worker.#")
        try:
            with Consumer(broker.channel, [queue], callbacks=[on_event],
                          accept=["json"], no_ack=True,
                          on_decode_error=lambda message, exc: None):
                if broker.kind == "redis":
                    # kombu subscribes to a Redis fanout lazily, on the first
                    # poll: listen before asking, or the heartbeats the
                    # workers send at once go by unheard and we wait for a
                    # regular one, up to 2 s later (measured by bench/run.py).
                    try:
                        broker.connection.drain_events(timeout=0.02)
                    except socket.timeout:
                        pass
                broker.broadcast("heartbeat", ttl=asking.wait)
                state["asked"] = time.monotonic()
                state["deadline"] = min(state["deadline"], state["asked"] + asking.wait,
                                        asking.budget_end())
                broker.drain(lambda: state["deadline"])
        except broker.errors as exc:
            broker.fail(exc)
        finally:
            broker.delete(queue)
    now = time.monotonic()
    names = set(alive())
    replies = []
    for name, (received, event) in seen.items():
        facts = {"hb_age": now - received, "freq": _freq(event)}
        for key in ("active", "processed", "pid"):
            if isinstance(event.get(key), int):
                facts[key] = event[key]
        if event.get("sw_ver"):
            facts["sw_ver"] = str(event["sw_ver"])
        status = "OK" if name in names else ("went offline" if name in offline else "heartbeat expired")
        replies.append(Reply(name, ok=name in names, status=status, **facts))
    return replies


def _freq(event):
    try:
        value = float(event.get("freq") or 2.0)
    except (TypeError, ValueError):
        value = 2.0
    return max(value, 0.5)
