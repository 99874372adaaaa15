"""Library sets: the interpreters whose libraries the checks run on, all
measured in one run.

    --set newest=.venv/bin/python --set debian=.venv-debian/bin/python

Each set gets a throwaway install of its own (bench/install.py), a launcher
of its own (bench/measure.py) and, with --before REV, its own copy of that
revision's code. Every scenario that runs the set's interpreter (the checks,
the trigger, ``python -c pass`` and the floors) is measured once per set,
the copies next to each other in every round, so load from elsewhere hits
the sets alike. The rest is shared and runs once, with the first set: the
services and the real workers (started once), the tools an operator would
use (``redis-cli``, ``rabbitmqctl``, ``celery status`` and ``celery inspect
ping`` from the first set's install) and the worker throughput.
"""

import argparse
import copy
import os
import re

from bench.install import Before, Install
from bench.measure import Launcher

NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")


class LibrarySet:
    """One interpreter's libraries: its install, launcher and --before copy."""

    def __init__(self, name, python, workdir, revision=None):
        self.name = name
        self.python = python  # as given: what the report shows
        directory = workdir / ("set-" + name)
        directory.mkdir()
        self.install = Install(directory, os.path.abspath(python))
        self.launcher = Launcher(self.install.python, directory)
        try:
            self.before = Before(directory, self.install, revision) if revision else None
        except BaseException:  # git failed, or interrupted: end the launcher
            self.close()
            raise

    @property
    def versions(self):
        return self.install.versions

    def resolve(self, scenario):
        """The scenario's argv with its executable made a path (None: not built)."""
        if scenario.on_before:
            return self.before.argv(scenario.argv)
        return self.install.resolve(scenario.argv)

    def measure(self, argv, env=None, limit=60.0):
        return self.launcher.measure(argv, env, limit)

    def close(self):
        self.launcher.close()


def parse(text):
    """``NAME=PYTHON`` as --set takes it: (name, python)."""
    name, sep, python = text.partition("=")
    if not sep or not NAME.match(name) or not python:
        raise argparse.ArgumentTypeError(
            "%r: expected NAME=PYTHON, e.g. debian=.venv-debian/bin/python" % text)
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise argparse.ArgumentTypeError("%s: no such interpreter" % python)
    return name, python


def wanted(args, default_python):
    """[(name, python)] the options ask for: each --set, or one set (the
    --python given, or the interpreter running the benchmark)."""
    if not args.sets:
        return [(args.label or "default", args.python or default_python)]
    names = [name for name, _ in args.sets]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise argparse.ArgumentTypeError("--set %s given twice" % ", ".join(twice))
    return args.sets


def depends_on_set(scenario):
    """Whether the scenario runs the set's interpreter: the checks (also on
    --before's code), ``python -c pass`` and the floors."""
    return scenario.kind == "check" or scenario.argv[0] == "python"


def per_set(scenarios, sets):
    """Each scenario that depends on the library set once per set, the copies
    side by side; every other scenario once, run with the first set."""
    result = []
    for scenario in scenarios:
        shared = not depends_on_set(scenario)
        for lib in sets[:1] if shared else sets:
            each = copy.copy(scenario)
            each.samples = []
            each.lib, each.shared = lib, shared
            if len(sets) > 1 and not shared:
                each.ident = "%s [%s]" % (scenario.key, lib.name)
            result.append(each)
    return result


def view(results, lib):
    """The scenarios of one set's report: its own and the shared ones."""
    return [s for s in results if s.lib is lib or s.shared]
