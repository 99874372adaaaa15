"""The checks' own Redis client (celery_checks/connect/redis.py), beside
what the checks' process-level tests already prove through it (every URL
form in tests/test_queue.py and tests/test_urls.py, every fault in
tests/test_faults.py): the command bytes are hiredis's, byte for byte
redis-py's, and each call of its small surface does what its docstring says
on a real Redis.
"""

import hiredis
import pytest

from celery_checks.connect import redis as ours

# The argument types the checks, the store and the worker side send: text
# (non-ASCII, kombu's binding separator "\x06\x16"), bytes (SCAN's cursor),
# ints (negative: LINDEX -1), empty text (an unknown publish time, a task
# without an id). Floats never: the store formats its times ("%.6f").
ARGUMENTS = [
    ("PING",),
    ("LLEN", "celery"),
    ("SADD", "_kombu.binding.celery", "celery\x06\x16\x06\x16celery"),
    ("SET", b"bin\r\n\x00\xff", b""),
    ("HSET", "k", "f", 0, "g", -12, "h", ""),
    ("LINDEX", "celery\x06\x169", -1),
    ("EVALSHA", "ab" * 20, 2, "é-clé", "キュー", "x" * 70000),
    ("SCAN", b"0", "MATCH", "*_kombu.binding.*", "COUNT", 1000),
]


def redis_py_packed(args):
    """redis-py's own packer (Connection.pack_command), the reference."""
    from redis.connection import Connection

    return b"".join(Connection().pack_command(*args))


@pytest.mark.quick
@pytest.mark.parametrize("args", ARGUMENTS, ids=lambda a: a[0])
def test_hiredis_packs_commands_as_redis_py_does(args):
    assert hiredis.pack_command(args) == redis_py_packed(args)


@pytest.mark.quick
def test_a_pipeline_sends_what_the_libraries_pack(monkeypatch):
    """The client's one packing path: every command of a pipeline packed by
    hiredis, in order, in one send."""
    client = ours.RedisClient(1.0, address=("127.0.0.1", 9))  # never connected
    sent = []
    monkeypatch.setattr(client, "_send", sent.append)
    monkeypatch.setattr(client, "_read", lambda count: [b"OK"] * count)
    assert client.pipeline(ARGUMENTS) == [b"OK"] * len(ARGUMENTS)
    assert sent == [b"".join(redis_py_packed(args) for args in ARGUMENTS)]


def test_the_client_surface_on_a_real_redis(redis_server, redis_db, redis_client):
    client = ours.redis_client(redis_server.url(redis_db), timeout=2)
    try:
        assert client.db == redis_db
        assert client.call("SET", "s", "v") == b"OK" and client.call("GET", "s") == b"v"
        # errors in place, or the first one raised
        replies = client.pipeline([("LLEN", "s"), ("LPUSH", "l", "a", "b"), ("LLEN", "l")],
                                  raise_errors=False)
        assert isinstance(replies[0], ours.ReplyError) and replies[0].code == "WRONGTYPE"
        assert replies[1:] == [2, 2]
        with pytest.raises(ours.ReplyError, match="^WRONGTYPE"):
            client.pipeline([("LLEN", "l"), ("LLEN", "s")])
        assert client.call("LLEN", "l") == 2  # the connection is still in step
        assert client.transaction([("SADD", "t", "m"), ("SCARD", "t")]) == [1, 1]
        # a script the server does not hold yet: EVAL once, EVALSHA after
        redis_client.script_flush()
        source = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
        assert client.script(source, ["n"], [5]) == 5
        assert redis_client.script_exists(client._shas[source]) == [True]
        assert client.script(source, ["n"], [2]) == 7
        # SCAN walks every page
        redis_client.mset({"many:%04d" % i: i for i in range(2500)})
        assert len(client.scan("many:*", count=100)) == 2500
        assert len(set(client.scan("many:*", count=10, deadline=0, calls=3))) < 2500
        # another DB of the same server, on its own connection
        other = client.other_db(0)
        try:
            assert other.db == 0 and other.call("EXISTS", "s") == 0
        finally:
            other.close()
        assert client.call("EXISTS", "s") == 1
        # the server hangs up: Closed, and the next call connects anew
        redis_client.execute_command("CLIENT", "KILL", "ID", client.call("CLIENT", "ID"))
        with pytest.raises(ours.Closed):
            client.call("PING")
        assert client.call("GET", "s") == b"v"
    finally:
        client.close()
