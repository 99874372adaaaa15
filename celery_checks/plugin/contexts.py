"""How a check judges a metric: one threshold evaluation, one fixed-state rule.

- :class:`Threshold`: -w/-c style ranges, critical first, then warning;
  perfdata that always parses. A check words its results by overriding
  :meth:`Threshold.words` (or passing ``words=``; not ``describe``, which
  nagiosplugin's Context already has), given the item the
  metric is about (looked up exactly, :meth:`Resource.item`), the value and
  the range it broke (None when in range).
- :class:`Condition`: a metric that is a problem of one configured state
  whenever it is true (a missing queue, an unexpected node, a stopped
  emitter); worded the same way.
"""

import nagiosplugin

from celery_checks.plugin.perfdata import label, number


class Threshold(nagiosplugin.ScalarContext):
    def __init__(self, name, warning=None, critical=None, words=None, perfdata=True):
        # fmt_metric None: results carry only the check's words, not a
        # generic "age is 5s" in front of them.
        super().__init__(name, warning, critical, fmt_metric=None)
        if words is not None:
            self.words = words
        self.with_perfdata = perfdata

    def evaluate(self, metric, resource):
        item = resource.item(metric)
        for state, limit in ((nagiosplugin.Critical, self.critical),
                             (nagiosplugin.Warn, self.warning)):
            if not limit.match(metric.value):
                return self.result_cls(state, self.words(item, metric.value, limit), metric)
        return self.result_cls(nagiosplugin.Ok, self.words(item, metric.value, None), metric)

    def words(self, item, value, broken):
        """The result's words; ``broken`` is the Range the value is outside
        of, None when it is in range (then None: nothing to say)."""
        return None

    def performance(self, metric, resource):
        if not self.with_perfdata:
            return None
        return nagiosplugin.Performance(
            label(metric.name), number(metric.value), metric.uom or "",
            self.warning, self.critical,
            "" if metric.min is None else number(metric.min),
            "" if metric.max is None else number(metric.max))


class Condition(nagiosplugin.Context):
    """True (or a non-zero count) is a problem of ``state``; no perfdata
    unless ``perfdata`` (then the value as a plain number)."""

    def __init__(self, name, state=nagiosplugin.Critical, words=None, perfdata=False):
        super().__init__(name)
        self.state = state
        if words is not None:
            self.words = words
        self.with_perfdata = perfdata

    def evaluate(self, metric, resource):
        if not metric.value:
            return self.result_cls(nagiosplugin.Ok, None, metric)
        # Also when the configured state is OK: the words still say what is so.
        return self.result_cls(self.state, self.words(resource.item(metric), metric.value), metric)

    def words(self, item, value):
        return None

    def performance(self, metric, resource):
        if not self.with_perfdata:
            return None
        return nagiosplugin.Performance(label(metric.name), number(metric.value), metric.uom or "",
                                        min="" if metric.min is None else number(metric.min))
