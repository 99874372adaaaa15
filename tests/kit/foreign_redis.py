"""Proof that the suite never touches a Redis it did not start.

Before the first test, a key is planted in every database of the Redis that
a careless suite would use (CELERY_CHECKS_TEST_FOREIGN_REDIS, default
127.0.0.1:6379, "off" to skip), and its counters are read over one
connection kept open. After the last test the same connection checks that
every planted key is intact, no database changed size, nothing was flushed
and the server received no other connection during the run. Anything else
fails the run (tests/conftest.py wires this in), naming what changed. The
planted keys are removed at the end and expire within a day regardless.
"""

import os
import uuid

ADDRESS = os.environ.get("CELERY_CHECKS_TEST_FOREIGN_REDIS", "127.0.0.1:6379")
COMMANDS = ("flushdb", "flushall", "del", "unlink", "set", "lpush", "rpush", "sadd", "hset",
            "publish", "eval", "evalsha", "rpop", "brpop")


class Guard:
    def __init__(self, address=ADDRESS):
        host, _, port = address.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.client = None
        self.key = "celery-checks-test-guard:%d:%s" % (os.getpid(), uuid.uuid4().hex[:8])
        self.planted = {}

    def plant(self):
        """Plant the keys; False when no Redis listens there (nothing to guard)."""
        import redis

        client = redis.Redis(host=self.host, port=self.port, socket_timeout=5,
                             single_connection_client=True)
        try:
            client.ping()
        except (redis.RedisError, OSError):
            return False
        self.client = client
        databases = int(client.config_get("databases").get("databases", 16))
        for db in range(databases):
            client.select(db)
            value = uuid.uuid4().hex
            client.set(self.key, value, ex=86400)
            self.planted[db] = value
        self.sizes = self._sizes()
        self.before = self._counters()
        return True

    def _sizes(self):
        sizes = {}
        for db in self.planted:
            self.client.select(db)
            sizes[db] = self.client.dbsize()
        return sizes

    def _counters(self):
        stats = self.client.info("stats")
        commands = self.client.info("commandstats")
        counts = {name: commands.get("cmdstat_" + name, {}).get("calls", 0) for name in COMMANDS}
        counts["connections"] = stats["total_connections_received"]
        return counts

    def verify(self):
        """[what changed] (empty: untouched); the planted keys are removed."""
        if self.client is None:
            return []
        after = self._counters()  # before our own reads below add to them
        problems = []
        for db, value in self.planted.items():
            self.client.select(db)
            if self.client.get(self.key) != value.encode():
                problems.append("DB %d: the planted key was changed or removed" % db)
        for db, size in self._sizes().items():
            if size != self.sizes[db]:
                problems.append("DB %d: %d keys before the run, %d after" % (db, self.sizes[db], size))
        for name, count in after.items():
            if count != self.before[name]:
                what = "new connections" if name == "connections" else "%s commands" % name.upper()
                problems.append("%d %s during the run" % (count - self.before[name], what))
        for db in self.planted:
            self.client.select(db)
            self.client.delete(self.key)
        self.client.close()
        return ["Redis %s:%d, which the suite did not start: %s" % (self.host, self.port, p)
                for p in problems]
