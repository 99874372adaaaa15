"""The shape of the status line and long output that checks share."""

import numbers

import nagiosplugin


class ProblemSummary(nagiosplugin.Summary):
    """On a problem, the status line is the worst result's words, with
    ``(+N more)`` when there are several; the long output (-v) lists every
    problem, worst first, then one line per item (:meth:`item_lines`), and
    at -vv the settings used (:meth:`settings_lines`, URLs redacted)."""

    def __init__(self, verbose=0):
        self.verbosity = verbose

    def problems(self, results):
        """Non-OK results, worst state first, then the larger value first."""
        found = [r for r in results if r.state != nagiosplugin.Ok]
        return sorted(found, key=lambda r: (r.state, _value(r)), reverse=True)

    def problem(self, results):
        problems = self.problems(results)
        text = str(problems[0])
        if len(problems) > 1:
            text += " (+%d more)" % (len(problems) - 1)
        return text

    def verbose(self, results):
        resource = results[0].resource if results else None
        lines = ["%s: %s" % (r.state.text.upper(), r) for r in self.problems(results)]
        lines += self.item_lines(resource)
        if self.verbosity >= 2:
            lines += self.settings_lines(resource)
        return lines

    def item_lines(self, resource):
        """One line per monitored item; none by default."""
        return []

    def settings_lines(self, resource):
        """-vv: what the check used (URLs redacted); none by default."""
        return []


def _value(result):
    value = result.metric.value if result.metric else 0
    return value if isinstance(value, numbers.Real) else 0
