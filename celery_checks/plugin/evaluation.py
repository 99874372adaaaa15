"""How a check's metrics become results and perfdata: nagiosplugin's Check,
run with a leaner loop.

nagiosplugin's own run (``Check.__call__``, the same in 1.3.2 and 1.4)
copies every metric field by field (``Metric.replace``) and reaches its
context through two more calls per metric: ~3 µs a metric, which a check
of 1,000 queues pays 1,000 times (twice for the heartbeat check's age and
latency; docs/performance.md). :class:`Check` keeps its public contract:
after a call, ``results`` holds a Result per metric (a metric knows its
context and resource) and ``perfdata`` the sorted perfdata strings, as
nagiosplugin's would; a CheckError while probing is one UNKNOWN result.
A :class:`~.resource.Series` (many items judged alike) is judged by its
context in one loop (contexts.Threshold.judge_series): a Result of its own
for each item out of range, one OK Result for all those in range, and the
same perfdata; the answer printed is nagiosplugin's own, as
tests/test_properties.py holds for random series.
"""

import nagiosplugin
from nagiosplugin.state import ServiceState

from celery_checks.plugin.resource import Series


class Check(nagiosplugin.Check):
    def __call__(self):
        perfdata, results = [], []
        known = self.contexts.by_name
        for resource in self.resources:
            metric = None
            try:
                for metric in resource.probe():
                    context = known.get(metric.context) or self.contexts[metric.context]
                    if not isinstance(metric, Series):
                        judge(context, metric, resource, results, perfdata)
                    elif getattr(context, "judges_series", False):
                        context.judge_series(metric, resource, results, perfdata)
                    else:
                        for name, value, _item in metric.entries:
                            judge(context, tuple.__new__(nagiosplugin.Metric, (
                                name, value, metric.uom, metric.min, metric.max,
                                metric.context, None, None)), resource, results, perfdata)
            except nagiosplugin.CheckError as exc:
                about = None if isinstance(metric, Series) else metric
                results.append(nagiosplugin.Result(nagiosplugin.Unknown, str(exc), about))
        self.results.add(*results)
        self.perfdata = sorted(perfdata)


def judge(context, metric, resource, results, perfdata):
    """One metric's Result and perfdata, appended."""
    # name, value, uom, min, max, context + its object and resource
    metric = tuple.__new__(type(metric), metric[:6] + (context, resource))
    result = context.evaluate(metric, resource)
    results.append(result if type(result) is nagiosplugin.Result else _result(result, metric))
    performance = context.performance(metric, resource)
    if performance:
        perfdata.append(str(performance))


def _result(outcome, metric):
    """What nagiosplugin accepts besides a Result: a bare state."""
    if isinstance(outcome, nagiosplugin.Result):
        return outcome
    if isinstance(outcome, ServiceState):
        return nagiosplugin.Result(outcome, metric=metric)
    raise ValueError("evaluate() returned neither Result nor ServiceState object",
                     metric.name, outcome)


def check_of(name, *parts):
    """The :class:`Check` of these parts, named (Debian 12's nagiosplugin
    1.3.2 has no Check(name=))."""
    check = Check(*parts)
    check.name = name
    return check
