"""How a check judges a metric: one threshold evaluation, one fixed-state rule.

- :class:`Threshold`: -w/-c style ranges, critical first, then warning;
  perfdata that always parses (a metric's name is its label as it is:
  :meth:`Resource.metric` made it safe and unique). A check words its
  results by overriding :meth:`Threshold.words` (or passing ``words=``;
  not ``describe``, which nagiosplugin's Context already has), given the
  item the metric is about (looked up exactly, :meth:`Resource.item`), the
  value and the range it broke (None when in range). A series of many
  items is judged in one loop (:meth:`Threshold.judge_series`).
- :class:`Condition`: a metric that is a problem of one configured state
  whenever it is true (a missing queue, an unexpected node, a stopped
  emitter); worded the same way.
"""

import nagiosplugin

from celery_checks.plugin.perfdata import number, perfdata, perfdata_item, range_text


class Threshold(nagiosplugin.ScalarContext):
    def __init__(self, name, warning=None, critical=None, words=None, perfdata=True):
        # fmt_metric None: results carry only the check's words, not a
        # generic "age is 5s" in front of them.
        super().__init__(name, warning, critical, fmt_metric=None)
        if words is not None:
            self.words = words
        self.with_perfdata = perfdata
        self._limits = None

    def evaluate(self, metric, resource):
        value = metric.value
        for state, limit in ((nagiosplugin.Critical, self.critical),
                             (nagiosplugin.Warn, self.warning)):
            # not limit.match(value), inline: 1,000 queues meet it 2,000 times
            if (value < limit.start or value > limit.end) != limit.invert:
                return self.result_cls(state, self.words(resource.item(metric), value, limit),
                                       metric)
        words = self.words(resource.item(metric), value, None) if self.words_in_range else None
        return self.result_cls(nagiosplugin.Ok, words, metric)

    #: whether :meth:`words` may say something of a value in range; when
    #: not (the default), an in-range value's Result has no words and the
    #: in-range entries of a Series share one (:meth:`judge_series`)
    words_in_range = False

    def words(self, item, value, broken):
        """The result's words; ``broken`` is the Range the value is outside
        of, None when it is in range (then None: nothing to say, unless
        :attr:`words_in_range`)."""
        return None

    @property
    def judges_series(self):
        """Whether :meth:`judge_series` gives what evaluate() and
        performance() would: not when a subclass changed either."""
        kind = type(self)
        return kind.evaluate is Threshold.evaluate and kind.performance is Threshold.performance

    def judge_series(self, series, resource, results, perfdata):
        """:meth:`evaluate` and :meth:`performance` of every entry of a
        Series in one loop, appended to ``results`` and ``perfdata``: the
        same text and state. An entry out of range gets its Metric and
        Result; those in range (nearly all, on a healthy fleet) one OK
        Result together (:func:`series_result`), as words are asked for a
        broken range only (:attr:`words_in_range`): of 1,000 queues' 2,000
        Metrics and Results, only the perfdata text is left."""
        Metric, Result = nagiosplugin.Metric, self.result_cls
        warn, crit = self.warning, self.critical
        c_start, c_end, c_invert = crit.start, crit.end, crit.invert
        w_start, w_end, w_invert = warn.start, warn.end, warn.invert
        uom = series.uom or ""
        bounds = ("" if series.min is None else number(series.min),
                  "" if series.max is None else number(series.max))
        tail = ("%s;%s;%s;%s" % ((range_text(warn), range_text(crit)) + bounds)).rstrip(";")
        tail = ";" + tail if tail else ""
        head = (series.uom, series.min, series.max, self.name, self, resource)
        in_range, words_in_range, with_perfdata = 0, self.words_in_range, self.with_perfdata
        for name, value, item in series.entries:
            if (value < c_start or value > c_end) != c_invert:
                state, broken = nagiosplugin.Critical, crit
            elif (value < w_start or value > w_end) != w_invert:
                state, broken = nagiosplugin.Warn, warn
            elif words_in_range:
                state, broken = nagiosplugin.Ok, None
            else:
                state = None  # in range: counted, no Result of its own
                in_range += 1
            if state is not None:
                metric = tuple.__new__(Metric, (name, value) + head)
                results.append(Result(state, self.words(item, value, broken), metric))
            if with_perfdata:
                perfdata.append(perfdata_item(name, number(value), uom, tail))
        if in_range:
            results.append(series_result(self, resource, in_range))

    def performance(self, metric, resource):
        if not self.with_perfdata:
            return None
        if self._limits is None:  # the same two ranges for every metric
            self._limits = (range_text(self.warning), range_text(self.critical))
        return perfdata(metric.name, number(metric.value), metric.uom or "", *self._limits,
                        "" if metric.min is None else number(metric.min),
                        "" if metric.max is None else number(metric.max))


def series_result(context, resource, count):
    """The one OK Result of a Series' ``count`` entries in range: its
    Metric is named after the context behind a "=" (no label holds one, so
    no item's Result is confused with it) and counts them."""
    metric = tuple.__new__(nagiosplugin.Metric, ("=" + context.name, count, None, None, None,
                                                 context.name, context, resource))
    return context.result_cls(nagiosplugin.Ok, None, metric)


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
        return perfdata(metric.name, number(metric.value), metric.uom or "",
                        min="" if metric.min is None else number(metric.min))
