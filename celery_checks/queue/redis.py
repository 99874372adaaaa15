"""The queues as kombu keeps them in Redis: one pipeline for every queue's
lists, the binding sets that declare them and the unacked hash; only an
empty queue nobody declared costs more (where its bindings are instead)."""

import json
import time

from celery_checks.connect.layout import (
    CELERY_DEFAULT_EXCHANGE, KOMBU_BINDING_PREFIX, PUBLISH_TIME_HEADER, RedisLayout, bindings,
    checked, discover_redis_queues, each_db, glob_escape)
from celery_checks.connect.pidbox import json_or_none
from celery_checks.plugin.perfdata import quoted, shown
from celery_checks.queue.facts import Depth, Findings, publish_stamp


# The share of the network timeout the search for a misplaced queue may
# take (and SCAN_BUDGET calls per DB): a huge keyspace cannot turn "not
# declared" into a timeout; the search stops and the hint is left out.
SEARCH_SHARE = 0.5


# "Did you mean" for this many missing queues at most: against 1,000
# declared names each costs ~20 ms, and 1,000 mistyped -q would outlast -t.
SUGGESTED = 5


def _deadline(timeout):
    return time.monotonic() + timeout * SEARCH_SHARE


def redis_depths(target, queues, layout, timeout, all_queues=False, per_queue=False,
                 oldest=False):
    """Findings, in one pipeline: each queue's lists, the bindings of the
    exchanges named after them (Celery's automatic queues) and of Celery's
    default exchange (task_queues naming no exchange) in one SUNION, the
    unacked hash; with ``oldest`` the tail of each list (LINDEX -1: kombu
    pushes on the left and pops on the right, so the tail is the message
    next in line, read without moving it) and the server's TIME to age it
    by. Only a queue bound in none of them costs more (its own bindings
    for a wrong separator; if empty, _not_declared)."""
    from celery_checks.connect.redis import ReplyError, redis_client, redis_errors

    client = redis_client(target.url, target.options, timeout)
    try:
        with redis_errors(target.url, target.role):
            db = client.db
            absence = None
            if all_queues:
                queues = discover_redis_queues(client, layout)
                if not queues:
                    places = _bound_elsewhere(client, layout, db, None, _deadline(timeout))
                    absence = Absence(None, layout, db, places)
            # LLEN of every list (and LINDEX -1 with --oldest), queue by
            # queue; then the bindings of each queue's exchange, in one
            # SUNION with those of Celery's default exchange, "celery"
            # unless task_default_exchange says otherwise (where it binds
            # the queues of task_queues that name no exchange): a queue
            # bound in any of them is declared.
            keys = layout.list_keys(queues)
            if oldest:
                commands = [command for key in keys
                            for command in (("LLEN", key), ("LINDEX", key, -1))]
            else:
                commands = [("LLEN", key) for key in keys]
            binding = layout.binding_key("")
            commands.append(("SUNION",) + tuple(binding + queue for queue in queues)
                            + (layout.binding_key(CELERY_DEFAULT_EXCHANGE),))
            commands.append(("HLEN", layout.unacked_key))
            if per_queue:
                commands.append(("HVALS", layout.unacked_key))
            if oldest:
                commands.append(("TIME",))
            per_list = 2 if oldest else 1  # replies per list: LLEN (and LINDEX)
            steps, lists = layout.steps, len(layout.steps) * per_list
            listed = len(queues) * lists  # the replies of the lists come first
            replies = client.pipeline(commands, raise_errors=False)
            if isinstance(replies[listed], ReplyError):  # the SUNION: which key?
                checked(replies[:listed], commands)  # the lists' errors first, as before
                _name_binding_of_another_type(client, layout, queues)
            replies = checked(replies, commands)
            now = _seconds(replies[-1]) if oldest else None
            bound = set(layout.bound_queues(replies[listed]))
            unacked = replies[listed + 1]
            if per_queue:
                routed = _unacked_by_routing_key(replies[listed + 2])
            # 1,000 queues are 4,000 lists: replies read in place, JSON only
            # for --oldest's tails.
            depths = []
            for index, queue in enumerate(queues):
                at = index * lists
                counts = replies[at:at + lists:per_list]
                waiting = sum(counts)
                depth = Depth(queue, waiting, zip(steps, counts),
                              declared=all_queues or queue in bound)
                if oldest:
                    tails = replies[at + 1:at + lists:2]
                    depth.stamped([publish_stamp(json_or_none(tail), PUBLISH_TIME_HEADER)
                                   for count, tail in zip(counts, tails) if count], now)
                if per_queue:
                    depth.unacked = routed.get(queue, 0)
                depths.append(depth)
            unbound = [d for d in depths if not d.declared]
            if unbound:
                _check_separators(client, layout, unbound)
            for depth in unbound:
                depth.declared = bool(depth.waiting)  # messages declare it too
            undeclared = [d for d in depths if not d.declared]
            if undeclared:
                _not_declared(client, layout, db, undeclared, _deadline(timeout))
    finally:
        client.close()
    return Findings(db, depths, unacked, absence, clock="Redis TIME" if oldest else None)


def _name_binding_of_another_type(client, layout, queues):
    """checked()'s CheckError naming the binding key that is not a set
    (somebody else's data under it), which the SUNION could not say."""
    binding = layout.binding_key("")
    commands = [("SMEMBERS", binding + queue) for queue in queues]
    commands.append(("SMEMBERS", layout.binding_key(CELERY_DEFAULT_EXCHANGE)))
    checked(client.pipeline(commands, raise_errors=False), commands)


def _check_separators(client, layout, depths):
    """CheckError when a queue bound nowhere with our separator has its own
    binding written with another (a wrong -O sep: every priority sub-list
    would be missed). A round trip more, only for such queues: their
    exchange's bindings, as the SUNION gave them only all together."""
    binding = layout.binding_key("")
    commands = [("SMEMBERS", binding + depth.name) for depth in depths]
    for depth, members in zip(depths, checked(client.pipeline(commands, raise_errors=False),
                                              commands)):
        layout.check_separator(depth.name, members)


def _seconds(reply):
    """Redis TIME's (seconds, microseconds) as seconds since the epoch."""
    return int(reply[0]) + int(reply[1]) / 1e6


class Absence:
    """Why a queue (or, for --all-queues, any queue) reads as missing on
    Redis, and where its bindings are instead."""

    def __init__(self, queue, layout, db, places=(), similar=None):
        self.queue = queue  # None: --all-queues found none
        self.prefix = layout.prefix
        self.db = db
        self.places = sorted(places, key=lambda p: (p[0] != db, p[0], p[1]))  # [(db, prefix)]
        self.similar = similar

    def text(self):
        what = "queue %s not declared" % shown(self.queue) if self.queue is not None \
            else "no queues declared"
        text = "%s under key prefix %s in DB %d" % (what, quoted(self.prefix), self.db)
        if self.places:
            db, prefix = self.places[0]
            where = []
            if db != self.db:
                where.append("in DB %d" % db)
            if prefix != self.prefix:
                where.append("under prefix %s" % quoted(prefix))
            text += "; found " + " ".join(where)
            if db == self.db:
                text += " (-O global_keyprefix=%s)" % shown(prefix) if prefix \
                    else " (without -O global_keyprefix)"
            if len(self.places) > 1:
                # places, not problems: "(+N more)" is the summary's count of problems
                more = len(self.places) - 1
                text += " and in %d more place%s (-v)" % (more, "" if more == 1 else "s")
        elif self.similar:
            text += "; did you mean %s?" % shown(self.similar)
        elif self.queue is not None and "," in self.queue:
            text += " (-q takes one name: repeat -q for each queue)"
        return text

    def places_text(self):
        return ["bindings found in DB %d under key prefix %s" % (db, quoted(prefix))
                for db, prefix in self.places]


def _not_declared(client, layout, db, depths, deadline):
    """The failure path for queues with no message and no binding in the
    exchange named after them: a binding through another exchange still
    declares them (one SCAN of this prefix's binding sets); the rest get an
    Absence saying where their bindings are, if anywhere."""
    declared = bindings(client, layout.binding_pattern())
    here = {q for _key, members in declared for q in layout.bound_queues(members)}
    missing = []
    for depth in depths:
        if depth.name in here:
            depth.declared = True
        else:
            missing.append(depth)
    if not missing:
        return
    places = _bound_elsewhere(client, layout, db, {d.name for d in missing}, deadline)
    visible = sorted({queue for key, members in declared
                      for queue in layout.queues_of_binding(key, members)})
    import difflib

    for number, depth in enumerate(missing):
        found = places.get(depth.name, [])
        close = difflib.get_close_matches(depth.name, visible, n=1, cutoff=0.75) \
            if number < SUGGESTED else None
        depth.absence = Absence(depth.name, layout, db, found, close[0] if close else None)


def _bound_elsewhere(client, layout, db, queues, deadline):
    """Where else in this Redis queues are bound: {queue: [(db, prefix)]}
    for the names in ``queues``, or [(db, prefix)] with any (non-internal)
    binding when ``queues`` is None. Other key prefixes of this DB (one
    SCAN), then every other DB INFO keyspace lists. Best effort: a server
    that refuses INFO or SELECT (ACLs) only leaves the hint out."""
    from celery_checks.connect.redis import ReplyError

    found = {}
    places = set()

    def collect(number, key_members):
        for key, members in key_members:
            at = key.find(KOMBU_BINDING_PREFIX)
            prefix = key[:at]
            if at < 0 or (number == db and prefix == layout.prefix):
                continue
            other = RedisLayout(dict(sep=layout.sep, global_keyprefix=prefix,
                                     priority_steps=layout.steps))
            names = other.queues_of_binding(key, members)
            if queues is None:
                if names:
                    places.add((number, prefix))
                continue
            for name in names:
                if name in queues:
                    found.setdefault(name, set()).add((number, prefix))

    pattern = "*" + glob_escape(KOMBU_BINDING_PREFIX) + "*"
    for number, where in each_db(client, db, deadline):
        try:
            collect(number, bindings(where, pattern, deadline))
        except ReplyError:
            continue
    if queues is None:
        return sorted(places)
    return {name: sorted(where) for name, where in found.items()}


def _unacked_by_routing_key(values):
    """kombu stores each unacked message as JSON [message, exchange,
    routing_key]; Celery's routing key is the queue's name."""
    counts = {}
    for value in values:
        try:
            routing_key = json.loads(value)[2]
        except (ValueError, TypeError, IndexError, KeyError):
            continue
        counts[routing_key] = counts.get(routing_key, 0) + 1
    return counts
