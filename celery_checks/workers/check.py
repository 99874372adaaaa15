"""check_celery_workers: are the expected workers there, and only those?

options:  workers/options.py
acquire:  the source (workers/sources.py: ping, events, stdin) gives the
          nodes it heard of; the inventory (workers/inventory.py, --expect)
          judges which are missing and which unexpected
evaluate: -w/-c judge the number online (a Threshold); missing and
          unexpected nodes are problems of their --*-state; so are
          differing Celery versions (events)
present:  WorkersSummary names what is wrong in ~80 characters; -v lists
          every node

Never imports celery nor the user's app.
"""

import nagiosplugin

from celery_checks.connect.options import unused_options_line
from celery_checks.plugin import runner
from celery_checks.plugin.contexts import Threshold
from celery_checks.plugin.perfdata import number, plural, violation
from celery_checks.plugin.policy import nagios_state
from celery_checks.plugin.resource import Resource
from celery_checks.workers import sources
from celery_checks.workers.inventory import Inventory, shorten
from celery_checks.workers.replies import Observed

STATUS_WIDTH = 80
NO_ANSWER = "no worker answered"

# ------------------------------------------------------------------- acquire

class Seen:
    """What a run learnt: the replies, the names online, the verdict."""

    def __init__(self, replies, inventory):
        replies.sort(key=lambda r: r.name)
        self.replies = replies  # an Observed list: may carry Celery's own note
        self.online = [r.name for r in replies if r.ok]
        self.verdict = inventory.judge(self.online)


class Workers(Resource):
    def __init__(self, source, broker, deadline, wait, inventory, facts=None, begun=None):
        super().__init__(facts)
        self.source, self.broker, self.inventory = source, broker, inventory
        self.asking = sources.Asking(broker, deadline, wait, inventory, begun)

    def acquire(self):
        replies = sources.nodes(self.source, self.asking)
        replies = replies if isinstance(replies, Observed) else Observed(replies)
        if not replies and self.source != "stdin" and self.broker.transport == "redis":
            replies.note = sources.misplaced(self.asking)
        return Seen(replies, self.inventory)

    def metrics(self, seen):
        verdict = seen.verdict
        self._labels.update({"online", "expected", "missing", "unexpected", "versions"})
        yield nagiosplugin.Metric("online", len(seen.online), min=0, context="online")
        yield nagiosplugin.Metric("expected", verdict.expected, min=0, context="count")
        yield nagiosplugin.Metric("missing", verdict.missing, min=0, context="missing")
        # Without an inventory nothing is unexpected: every node is just online.
        unexpected = verdict.unexpected if self.inventory else 0
        yield nagiosplugin.Metric("unexpected", unexpected, min=0, context="unexpected")
        if self.source == "events":
            versions = sorted({r.facts["sw_ver"] for r in seen.replies
                               if r.ok and r.facts.get("sw_ver")})
            yield nagiosplugin.Metric("versions", versions, context="versions")
        # Only facts every answering node gives on every run: a heartbeat
        # sent in answer to our `heartbeat` broadcast carries no task
        # counters, so active/processed (known only for some nodes on some
        # runs) stay in the -v output, never in perfdata.
        for reply in seen.replies:
            for key, uom in (("rtt", "s"), ("hb_age", "s")):
                if key in reply.facts:
                    yield self.metric("%s_%s" % (key, reply.name), reply.facts[key], "fact",
                                      reply, uom=uom, min=0)


# ------------------------------------------------------------------ evaluate

class Online(Threshold):
    """-w/-c on the number online; without inventory nor thresholds, zero
    online is the outage this check exists for."""

    def __init__(self, warning, critical, bare):
        super().__init__("online", warning, critical)
        self.bare = bare

    def evaluate(self, metric, resource):
        if self.bare and metric.value == 0:
            return self.result_cls(nagiosplugin.Critical, NO_ANSWER, metric)
        return super().evaluate(metric, resource)

    def words(self, item, count, broken):
        return None if broken is None else "%d online (%s)" % (count, violation(broken))


class Surprise(Threshold):
    """missing / unexpected: any is a problem of the configured state. The
    words are (head, names): the summary shortens the names to the line."""

    def __init__(self, name, state):
        super().__init__(name)
        self.state = state

    def evaluate(self, metric, resource):
        if metric.value == 0 or self.state == nagiosplugin.Ok:
            return self.result_cls(nagiosplugin.Ok, None, metric)
        verdict = resource.facts.verdict
        if self.name == "missing":
            names = [s.missing_text() for s in verdict.missing_patterns]
            head = "%d of %s missing: " % (metric.value, plural(verdict.expected, "expected worker"))
        else:
            names = verdict.unmatched + ["%s" % s.surplus_text() for s in verdict.surplus]
            head = "%d unexpected: " % metric.value
        return self.result_cls(self.state, (head, names), metric)


class Versions(nagiosplugin.Context):
    def __init__(self, state):
        super().__init__("versions")
        self.state = state

    def evaluate(self, metric, resource):
        if len(metric.value) > 1 and self.state != nagiosplugin.Ok:
            hint = ("workers run celery " + ", ".join(metric.value), [])
            return self.result_cls(self.state, hint, metric)
        return self.result_cls(nagiosplugin.Ok, None, metric)

    def performance(self, metric, resource):
        return None


# ------------------------------------------------------------------- present

def _hint_text(hint, room):
    if isinstance(hint, tuple):
        head, names = hint
        return head + shorten(names, max(room - len(head), 10)) if names else head.rstrip(": ")
    return str(hint)


class WorkersSummary(nagiosplugin.Summary):
    def __init__(self, verbose=0):
        self.verbosity = verbose

    def ok(self, results):
        resource = results["online"].resource
        seen = resource.facts
        text = plural(len(seen.online), "worker") + " online"
        if resource.inventory:
            text += ", all %d expected present" % seen.verdict.expected
        rtts = [r.facts["rtt"] for r in seen.replies if "rtt" in r.facts]
        if rtts:
            text += " (max rtt %ss)" % number(max(rtts))
        return text

    def problem(self, results):
        problems = sorted((r for r in results if r.state != nagiosplugin.Ok),
                          key=lambda r: r.state, reverse=True)
        # "CELERY_WORKERS CRITICAL - " takes 26 characters of the line.
        room = STATUS_WIDTH - 26
        note = getattr(results["online"].resource.facts.replies, "note", None)
        parts = [note] if note else []
        for result in problems:
            if note and result.hint == NO_ANSWER:
                continue  # Celery said it in its own words
            used = len("; ".join(parts)) + (2 if parts else 0)
            parts.append(_hint_text(result.hint, max(room - used, 20)))
        return "; ".join(parts)

    def verbose(self, results):
        resource = results["online"].resource
        lines = []
        verdict = resource.facts.verdict
        for shortfall in verdict.missing_patterns:
            lines.append("MISSING %s: %d of %d online" % (shortfall.pattern, shortfall.found, shortfall.count))
        for shortfall in verdict.surplus:
            lines.append("UNEXPECTED %s: %d online, %d expected"
                         % (shortfall.pattern, shortfall.found, shortfall.count))
        for reply in resource.facts.replies:
            pattern = verdict.pattern_of(reply.name)
            where = " [%s]" % pattern if pattern else (" [unexpected]" if resource.inventory and reply.ok else "")
            lines.append("%s: %s%s" % (reply.name, reply.describe(), where))
        if self.verbosity >= 2 and resource.source != "stdin":
            lines.append("source %s on broker %s" % (resource.source, resource.broker.shown))
            if resource.facts.replies.ended:
                lines.append("listening ended: %s" % resource.facts.replies.ended)
        if self.verbosity >= 2:
            unused = unused_options_line(resource.broker.options,
                                         sources.options_used(resource.source, resource.broker))
            if unused:
                lines.append(unused)
        return lines


def make_check(args, deadline, facts=None, begun=None):
    """The check for parsed ``args``; ``facts`` (a Seen) instead of asking
    the source, for tests; ``begun``: the ping sent already
    (sources.begin)."""
    inventory = Inventory(args.expect)
    bare = not inventory and not args.warning and not args.critical
    wait = args.reply_timeout if args.source == "ping" else args.window
    return runner.check_of(
        "celery_workers",
        Workers(args.source, args.broker, deadline, wait, inventory, facts, begun),
        Online(args.warning, args.critical, bare),
        Threshold("count"),
        Surprise("missing", nagios_state(args.missing_state)),
        Surprise("unexpected", nagios_state(args.unexpected_state)),
        Versions(nagios_state(args.versions_differ_state)),
        Threshold("fact"),
        WorkersSummary(args.verbose),
    )
