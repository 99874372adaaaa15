"""check_celery_queue's words: the status line when all is well, one line
per queue at -v, the settings used at -vv."""

from celery_checks.connect.options import sentinel_options_used, unused_options_line
from celery_checks.plugin.perfdata import plural, seconds, shown
from celery_checks.plugin.summary import ProblemSummary
from celery_checks.queue.options import REDIS_OPTIONS_USED


class QueueSummary(ProblemSummary):
    def ok(self, results):
        findings = results[0].resource.facts if results else None
        if findings is not None and findings.absence is not None:
            return findings.absence.text()  # --missing-state ok
        depths = [d for d in findings.depths if not d.missing] if findings else []
        absent = len(findings.depths) - len(depths) if findings else 0
        if not depths:
            # --missing-state ok: the first missing queue's words
            missing = next(r for r in results if r.context and r.context.name == "missing") \
                if absent else None
            return str(missing) if missing else "no queues found"
        if len(depths) == 1:
            depth = depths[0]
            text = "queue %s has %s" % (shown(depth.name), plural(depth.waiting, "waiting message"))
            if depth.consumers is not None:
                text += ", " + plural(depth.consumers, "consumer")
            if depth.oldest:
                text += ", oldest %s" % seconds(depth.oldest)
        else:
            total = sum(d.waiting for d in depths)
            top = max(depths, key=lambda d: d.waiting)
            text = "%d queues, %s" % (len(depths), "no messages waiting" if not total else
                                      "%s waiting, most in %s (%d)" % (
                                          plural(total, "message"), shown(top.name), top.waiting))
        if absent:
            text += "; %s missing" % plural(absent, "queue")
        return text

    def item_lines(self, resource):
        if resource is None:
            return []
        findings = resource.facts
        lines = [d.describe() for d in findings.depths]
        absences = [d.absence for d in findings.depths if d.absence] + (
            [findings.absence] if findings.absence else [])
        for absence in absences:
            if len(absence.places) > 1:
                lines.extend(absence.places_text())
        if findings.unacked is not None:
            lines.append("unacked (reserved by workers): %d" % findings.unacked)
        unstamped = [d for d in findings.depths if d.unstamped]
        if unstamped:
            lines.append("age unknown for %s: the oldest message carries no publish time "
                         "(celery_checks.install(app) in the producers stamps it)"
                         % plural(len(unstamped), "queue"))
        if any(d.ahead is not None for d in findings.depths):
            lines.append("clocks disagree: a publish stamp is ahead of %s (producer clock "
                         "off?); its age counts as 0" % findings.clock)
        return lines

    def settings_lines(self, resource):
        if resource is None:
            return []
        args = resource.args
        lines = ["broker: %s" % args.broker.shown]
        if args.management is not None:
            lines.append("management API: %s as user %s" % (args.management.shown,
                                                            args.management.user))
        if args.transport == "redis":
            layout = args.layout
            lines.append("DB %s, priority steps %s, separator %s, key prefix %r, "
                         "unacked hash %s" % (resource.facts.db, layout.steps, shown(layout.sep),
                                              layout.prefix, shown(layout.unacked_key)))
        if args.count_consumers:
            lines.append("consumers: active_queues broadcast, reply timeout %s%s" % (
                seconds(args.reply_timeout),
                "; " + resource.facts.listened if resource.facts.listened else ""))
        if resource.facts.clock:
            lines.append("ages against %s" % resource.facts.clock)
        used = () if args.transport == "amqp" else \
            REDIS_OPTIONS_USED + sentinel_options_used(args.broker.url)
        unused = unused_options_line(args.broker.options, used)
        return lines + ([unused] if unused else [])
