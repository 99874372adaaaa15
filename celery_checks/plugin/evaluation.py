"""How a check's metrics become results and perfdata: nagiosplugin's Check,
run with a leaner loop.

nagiosplugin's own run (``Check.__call__``, the same in 1.3.2 and 1.4)
copies every metric field by field (``Metric.replace``) and reaches its
context through two more calls per metric: ~3 µs a metric, which a check
of 1,000 queues pays 1,000 times (twice for the heartbeat check's age and
latency; docs/performance.md). :class:`Check` keeps its public contract:
after a call, ``results`` holds one Result per metric (a metric knows its
context and resource) and ``perfdata`` the sorted perfdata strings, exactly
as nagiosplugin's would; a CheckError while probing is one UNKNOWN result.
"""

import nagiosplugin
from nagiosplugin.state import ServiceState


class Check(nagiosplugin.Check):
    def __call__(self):
        perfdata, results = [], []
        known = self.contexts.by_name
        for resource in self.resources:
            metric = None
            try:
                for metric in resource.probe():
                    context = known.get(metric.context) or self.contexts[metric.context]
                    # name, value, uom, min, max, context + its object and resource
                    metric = tuple.__new__(type(metric), metric[:6] + (context, resource))
                    result = context.evaluate(metric, resource)
                    if type(result) is not nagiosplugin.Result:
                        result = _result(result, metric)
                    results.append(result)
                    performance = context.performance(metric, resource)
                    if performance:
                        perfdata.append(str(performance))
            except nagiosplugin.CheckError as exc:
                results.append(nagiosplugin.Result(nagiosplugin.Unknown, str(exc), metric))
        self.results.add(*results)
        self.perfdata = sorted(perfdata)


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
