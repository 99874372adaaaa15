"""Proof that the suite never touches a Redis it did not start.

Before the first test, a key is planted in every database of the Redis that
a careless suite would use (CELERY_CHECKS_TEST_FOREIGN_REDIS, default
127.0.0.1:6379, "off" to skip), and its counters are read over one
connection kept open. After the last test the same connection checks that
every planted key is intact, no database changed size, nothing was flushed
and the server received no other connection during the run. Anything else
fails the run (tests/conftest.py wires this in), naming what changed. The
planted keys are removed at the end and expire within a day regardless.

Several suite runs may share this machine (a developer's newest and
--debian runs side by side): each run's guard plants and removes keys
too. The guards take turns under a file lock and log what they did
(GUARD_LOG), so each one subtracts exactly the others' SETs, DELs,
connections and keys and still counts everything else.
"""

import fcntl
import os
import tempfile
import uuid

ADDRESS = os.environ.get("CELERY_CHECKS_TEST_FOREIGN_REDIS", "127.0.0.1:6379")
COMMANDS = ("flushdb", "flushall", "del", "unlink", "set", "lpush", "rpush", "sadd", "hset",
            "publish", "eval", "evalsha", "rpop", "brpop")
GUARD_LOG = os.path.join(tempfile.gettempdir(), "celery-checks-test-guards.log")


class _Turn:
    """The guards' turn: an exclusive lock, and the log of every guard's
    plant and verify ("plant KEY DATABASES" / "verify KEY DATABASES")."""

    def __enter__(self):
        self.handle = open(GUARD_LOG, "a+")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        self.handle.seek(0)
        self.lines = [line.split() for line in self.handle.read().splitlines()]
        return self

    def restart(self):
        self.handle.truncate(0)
        self.lines = []

    def record(self, event, key, databases):
        self.handle.write("%s %s %d\n" % (event, key, databases))
        self.handle.flush()
        self.lines.append([event, key, str(databases)])

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


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

        # In our turn from the connection on, so another guard's connection
        # is counted on the right side of our snapshot.
        with _Turn() as turn:
            client = redis.Redis(host=self.host, port=self.port, socket_timeout=5,
                                 single_connection_client=True)
            try:
                client.ping()
            except (redis.RedisError, OSError):
                return False
            self.client = client
            alive = self._others_alive(turn.lines)
            if not alive:  # nobody reads the log now: start it afresh
                turn.restart()
            databases = int(client.config_get("databases").get("databases", 16))
            for db in range(databases):
                client.select(db)
                value = uuid.uuid4().hex
                client.set(self.key, value, ex=86400)
                self.planted[db] = value
            self.sizes = self._sizes(alive)
            self.before = self._counters()
            turn.record("plant", self.key, databases)
            self.logged = len(turn.lines)
        return True

    def _others_alive(self, lines):
        """Other guards whose keys are still planted (a run killed before
        its verify leaves keys that expire; EXISTS tells)."""
        planted = [key for event, key, _ in lines if event == "plant" and key != self.key]
        verified = {key for event, key, _ in lines if event == "verify"}
        self.client.select(0)
        return sum(1 for key in planted if key not in verified and self.client.exists(key))

    def _others_since(self, lines):
        """What the other guards did since our plant: SETs, DELs, connections."""
        done = {"set": 0, "del": 0, "connections": 0}
        for event, key, databases in lines[self.logged:]:
            if key == self.key:
                continue
            if event == "plant":
                done["set"] += int(databases)
                done["connections"] += 1
            else:
                done["del"] += int(databases)
        return done

    def _sizes(self, others_alive):
        sizes = {}
        for db in self.planted:
            self.client.select(db)
            sizes[db] = self.client.dbsize() - others_alive
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
        with _Turn() as turn:
            problems = self._verify(turn.lines)
            for db in self.planted:
                self.client.select(db)
                self.client.delete(self.key)
            turn.record("verify", self.key, len(self.planted))
        self.client.close()
        return ["Redis %s:%d, which the suite did not start: %s" % (self.host, self.port, p)
                for p in problems]

    def _verify(self, lines):
        after = self._counters()  # before our own reads below add to them
        for name, count in self._others_since(lines).items():
            after[name] -= count
        problems = []
        for db, value in self.planted.items():
            self.client.select(db)
            if self.client.get(self.key) != value.encode():
                problems.append("DB %d: the planted key was changed or removed" % db)
        for db, size in self._sizes(self._others_alive(lines)).items():
            if size != self.sizes[db]:
                problems.append("DB %d: %d keys before the run, %d after" % (db, self.sizes[db], size))
        for name, count in after.items():
            if count != self.before[name]:
                what = "new connections" if name == "connections" else "%s commands" % name.upper()
                problems.append("%d %s during the run" % (count - self.before[name], what))
        return problems
