"""What every check's Resource shares: acquire, then metrics, items looked up exactly.

A check's Resource subclass implements :meth:`Resource.acquire` (the only
part that does I/O: the broker, the store, the files, stdin) and
:meth:`Resource.metrics` (facts -> Metrics, through :meth:`metric`). Tests
hand literal facts to the constructor instead (``facts=``), so a check's
evaluate and present parts run in-process with no service at all.
"""

import nagiosplugin

from celery_checks.plugin.perfdata import Labels, unique_label


class Resource(nagiosplugin.Resource):
    #: perfdata.SIGNIFICANT for a check whose labels must also be unique in
    #: their first 19 characters (perfdata.unique_label)
    significant = None

    def __init__(self, facts=None):
        self.facts = facts
        self._given = facts is not None
        self._items = {}
        self._labels = Labels()

    def acquire(self):
        """The facts this check judges; raise Unreachable / CheckError."""
        raise NotImplementedError

    def metrics(self, facts):
        """Yield the Metrics for ``facts`` (made with :meth:`metric`), or
        :meth:`series` of many alike."""
        raise NotImplementedError

    def probe(self):
        if not self._given:
            self.facts = self.acquire()
        return list(self.metrics(self.facts))

    def metric(self, name, value, context, item=None, uom=None, min=None, max=None):
        """A Metric whose label is unique in this run (``name``, else
        ``name_2``...: two names may sanitise alike), remembered as being
        about ``item``."""
        name = unique_label(name, self._labels, self.significant)
        self._items[name] = item
        # nagiosplugin.Metric's fields, without its keyword handling (a
        # check of 1,000 queues makes 1,000 or more); the Check sets the last two
        return tuple.__new__(nagiosplugin.Metric, (name, value, uom, min, max, context, None, None))

    def entry(self, name, value, item=None, unique=False):
        """One item of a :meth:`series`: (label, value, item), its label
        unique in this run and registered now, as :meth:`metric` does.
        ``unique``: ``name`` is a label already and unique by construction
        (a unique queue label and a suffix of its own, say), so only
        registered: 1,000 queues' ages and latencies are 2,000 labels."""
        if unique:
            self._labels.add(name)
        else:
            name = unique_label(name, self._labels, self.significant)
        self._items[name] = item
        return name, value, item

    def series(self, context, entries, uom=None, min=None, max=None):
        """Many items judged alike (each queue's count): the Check makes of
        each entry (:meth:`entry`) the Metric and Result :meth:`metric`
        would give, in one loop of the context's (contexts.Threshold)."""
        return Series(context, entries, uom, min, max)

    def item(self, metric):
        """The item ``metric`` is about: an exact look-up, never a prefix."""
        return self._items.get(metric.name)


class Series:
    """What :meth:`Resource.series` yields: entries (label, value, item) of
    one context, their unit and bounds. A check of 1,000 queues has 1,000
    (the heartbeat check 2,000): one at a time through nagiosplugin's
    Metric -> Result -> Performance they cost twice as much (evaluation.py)."""

    __slots__ = ("context", "entries", "uom", "min", "max")

    def __init__(self, context, entries, uom=None, min=None, max=None):
        self.context, self.entries = context, entries
        self.uom, self.min, self.max = uom, min, max
