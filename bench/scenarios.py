"""What one measured command is (a Scenario), the baselines beside the
checks and which scenarios --only keeps; bench/phases.py sets up the
services and makes the scenarios.

Baselines measured in the same list as the checks: ``python -c pass``,
``import nagiosplugin``, each check's floor (the imports it cannot avoid)
and the tool an operator would use instead.
"""

import re
import statistics

# What a check cannot avoid importing (its libraries' own import cost): the
# distance between a check and its floor is the check's own doing.
FLOORS = {
    "nagiosplugin": "import nagiosplugin",
    # issue 16's floor for the Redis checks (their own client is ~1 ms of
    # hiredis); redis-py's import beside it is what they paid before
    "socket": "import nagiosplugin, argparse, socket",
    "redis": "import nagiosplugin, argparse, redis",
    "pika": "import nagiosplugin, argparse, pika",
    "kombu": "import nagiosplugin, argparse, kombu, kombu.transport.redis",
    "celery": "import argparse, celery, kombu.transport.redis",
}


class Scenario:
    """One command, measured as a whole process."""

    def __init__(self, key, title, argv, expect=(0,), kind="check", tool=None,
                 slow=False, env=None, floor="nagiosplugin", on_before=False):
        self.key = key
        self.title = title
        self.argv = argv  # argv[0] is an executable name from the Install, or a path
        self.expect = expect
        self.kind = kind  # "check" or "baseline"
        self.tool = tool  # key of the baseline an operator would use instead
        self.slow = slow  # takes about a second or more: fewer rounds
        self.env = env
        self.floor = floor  # FLOORS key: the imports this check cannot avoid
        self.on_before = on_before  # run on --before REV's code
        self.floor_base = None
        self.lib = None  # the LibrarySet (bench/sets.py) that runs it
        self.shared = False  # independent of the library set: runs once, on the first
        self.ident = key  # the key, and the set's name when a run has several
        self.resolved = None  # argv with the executable's path
        self.samples = []
        self.status = "pending"
        self.first_line = ""
        self.imports = None
        self.phase = None

    def stat(self, field, func=statistics.median):
        values = [getattr(s, field) for s in self.samples]
        return func(values) if values else None


def slow_rounds(runs):
    """Rounds a slow scenario takes part in: a third, at least 5."""
    return min(runs, max(5, runs // 3))


def base_scenarios(tag, floors=()):
    scenarios = [
        Scenario("python-%s" % tag, "`python -c pass`", ["python", "-c", "pass"], kind="baseline"),
        Scenario("floor-nagiosplugin-%s" % tag, "`python -c \"import nagiosplugin\"`",
                 ["python", "-c", FLOORS["nagiosplugin"]], kind="baseline"),
    ]
    for name in floors:
        scenarios.append(Scenario("floor-%s-%s" % (name, tag), "floor: `%s`" % FLOORS[name],
                                  ["python", "-c", FLOORS[name]], kind="baseline"))
    return scenarios


def before(ctx, key, title, argv):
    """The same command on the code of --before REV (if given), measured in
    the same rounds: the before/after of a change under the same load."""
    if not ctx.before:
        return []
    return [Scenario(key + "-before", "%s, before (%s)" % (title, ctx.before), argv,
                     floor="redis", expect=(0, 1, 2), on_before=True)]


def selected(scenarios, only):
    """The scenarios --only keeps (baselines always), or none when it keeps no check."""
    chosen = [s for s in scenarios if not only or re.search(only, s.key) or s.kind == "baseline"]
    if only and not any(s.kind == "check" for s in chosen):
        return []
    return chosen
