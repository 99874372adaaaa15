#!/usr/bin/env python3
"""Benchmark every check against its budget and the tools operators use.

    # both library sets in one run, written into docs/performance.md
    .venv/bin/python bench/run.py --set newest=.venv/bin/python \
        --set debian=.venv-debian/bin/python
    .venv/bin/python bench/run.py -n 5 --no-write --only pulsefile  # this venv only
    .venv/bin/python bench/run.py --python .venv-debian/bin/python --label debian

What it does, in one process:

- installs a *regular* (non-editable) copy of celery_checks and its console
  scripts into a throwaway venv that borrows the dependencies of the venv
  running this script (or of each ``--set NAME=PYTHON``, a venv each: a
  *library set*, bench/sets.py): an editable install's import hook costs
  every process ~15 ms that no real installation pays;
- sets up its scenarios with the test kit's services (tests/kit/): a
  redis-server of its own, a RabbitMQ vhost of its own, real ``celery
  worker`` processes on tests/app.py
  (solo pool, started in parallel, stopped by process group at the end, also
  on error or Ctrl-C), shared by every library set;
- runs each command as a whole process: a warm-up, then N rounds in which
  every scenario of the phase runs once, once per library set when it runs
  the set's interpreter (interleaved, so a burst of load from elsewhere hits
  all of them alike); wall time, CPU time (user+sys) and peak RSS
  (ru_maxrss) come from os.wait4() on the child;
- measures through a tiny launcher process (bench/measure.py: a child
  forked from this big process would inherit its RSS high-water mark);
- reports medians, min-max and ratios against baselines measured in the same
  phase (``python -c pass``, ``python -c "import nagiosplugin"``, each
  check's floor = the imports it cannot avoid, the tool an operator would
  use), checks the budgets of issues 8 and 16 (issue 16's side by side for
  every set), and writes the tables into docs/performance.md between the
  ``bench:begin``/``bench:end`` markers (``--label`` names another block);
- with ``--before REV``, also runs the main Redis scenarios on that git
  revision's celery_checks (same venv, same libraries, for each set) in the
  same rounds, so a change's before and after meet the same load.

A scenario whose executable is not declared in pyproject.toml yet is
reported as "not built". Ratios are what to compare across runs: the
machines are shared and noisy.

This file holds the options, the services and the loop; bench/__init__.py
lists the other parts.
"""

import argparse
import contextlib
import datetime
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench.* and the test kit's services: tests/kit/

from bench import answering  # noqa: E402
from bench import sets as library_sets  # noqa: E402
from bench.measure import imported_packages, log  # noqa: E402
from bench.phases import PHASES  # noqa: E402
from bench.report import render, write_doc  # noqa: E402
from bench.scenarios import selected, slow_rounds  # noqa: E402
from bench import throughput as worker_throughput  # noqa: E402
from tests.kit import rabbitmq as rabbitmq_kit  # noqa: E402
from tests.kit.redis_servers import Databases, RedisServer  # noqa: E402
from tests.kit.workers import WorkerFactory  # noqa: E402


class Workers:
    """Real celery workers (solo pool) on tests/app.py, from the test kit."""

    def __init__(self, workdir):
        self.factory = WorkerFactory(workdir)

    def start(self, broker_url, names, queues=("celery",), timeout=90):
        """Start them all at once, then wait until each is ready."""
        started = [self.factory.start(broker_url, name=name, queues=queues, wait=False)
                   for name in names]
        for worker in started:
            self.factory.wait_ready(worker, timeout, "ready.")
        return [worker.pid for worker in started]

    def stop_all(self):
        self.factory.stop_all()


class Context:
    """What the phases set up with, all of it undone by :meth:`cleanup`.
    The services are set up with the first library set's install."""

    def __init__(self, workdir, sets, only=None):
        self.workdir = workdir
        self.sets = sets
        self.install = sets[0].install
        self.launcher = sets[0].launcher
        self.only = only
        # {size: (broker URL, node names, pids)}: the worker groups the
        # phases started, for bench/answering.py
        self.worker_groups = {}
        # --before's short revision (each set has its copy of it), or None
        self.before = sets[0].before.revision if sets[0].before else None
        # A redis-server of the benchmark's own, like the tests': it never
        # touches a Redis it did not start.
        self.redis = RedisServer(workdir)
        try:
            self.redis.start()
        except BaseException:  # not up in time, or interrupted: stop what runs
            self.redis.stop()
            raise
        log("redis-server of our own on port %d" % self.redis.port)
        self.databases = Databases(self.redis)
        self.held = contextlib.ExitStack()
        self.vhost = None
        self.workers = Workers(workdir)

    def measure(self, argv, env=None, limit=60.0):
        return self.launcher.measure(argv, env, limit)

    def take_db(self):
        """A database of our server, flushed, held until cleanup."""
        return self.held.enter_context(self.databases.take())

    def take_vhost(self):
        """A RabbitMQ vhost of our own, deleted at cleanup (also when its
        creation failed half-way)."""
        self.vhost = rabbitmq_kit.Vhost("celery-checks-bench")
        return self.vhost.create()

    def wants(self, *keys):
        """Whether --only selects any of these scenarios (setups are skipped otherwise)."""
        return not self.only or any(re.search(self.only, key) for key in keys)

    def cleanup(self):
        errors = []
        for step in (self.workers.stop_all, self.held.close, self.redis.stop,
                     lambda: self.vhost and self.vhost.delete()):
            try:
                step()
            except Exception as exc:  # keep cleaning up
                errors.append(exc)
        if errors:
            log("cleanup errors: %s" % errors)


def prepare(scenario, warmup):
    """Resolve the command and run it ``warmup`` times unmeasured (the last
    run tells whether it works); False when it cannot be measured."""
    argv = scenario.lib.resolve(scenario)
    if argv is None:
        scenario.status = "not built"
        return False
    scenario.resolved = argv
    for _ in range(warmup):
        sample = scenario.lib.measure(argv, scenario.env)
    scenario.first_line = sample.output.split("\n", 1)[0].strip()
    if sample.rc not in scenario.expect:
        scenario.status = "unexpected exit %d: %s" % (sample.rc, scenario.first_line[:120])
        log("%s: %s" % (scenario.ident, scenario.status))
        return False
    scenario.status = "ok"
    if scenario.kind == "check":
        try:
            scenario.imports = imported_packages(argv, scenario.env)
        except Exception as exc:
            log("%s: importtime failed: %s" % (scenario.ident, exc))
    return True


def run_phase(ctx, title, scenarios, runs, warmup, only):
    """Warm up each scenario (once per library set where it depends on the
    set), then ``runs`` rounds of all of them in turn."""
    chosen = library_sets.per_set(selected(scenarios, only), ctx.sets)
    if len(ctx.sets) > 1 and chosen:
        shared = sum(s.shared for s in chosen)
        log("%s: %d scenarios for each of %d library sets, %d shared" % (
            title, (len(chosen) - shared) // len(ctx.sets), len(ctx.sets), shared))
    active = []
    for scenario in chosen:
        scenario.phase = title
        if scenario.kind == "check":  # its floor, measured with its own libraries
            scenario.floor_base = next((s for s in chosen if s.lib is scenario.lib and
                                        s.key.startswith("floor-%s-" % scenario.floor)), None)
        if prepare(scenario, warmup):
            active.append(scenario)
    slow_runs = slow_rounds(runs)
    for round_no in range(runs):
        for scenario in active:
            if scenario.slow and round_no >= slow_runs:
                continue
            sample = scenario.lib.measure(scenario.resolved, scenario.env)
            if sample.rc not in scenario.expect:
                log("%s: round %d exit %d: %s" % (scenario.ident, round_no, sample.rc,
                                                   sample.output.split("\n", 1)[0][:120]))
            scenario.samples.append(sample)
        log("%s: round %d/%d done" % (title, round_no + 1, runs))
    return chosen


def options(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=21,
                        help="measured rounds (scenarios of a second or more: a third, "
                        "at least 5)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="unmeasured runs first (at least 1: the last tells whether "
                        "the scenario works)")
    parser.add_argument("--only", metavar="REGEX", help="only scenarios whose key matches "
                        "('throughput': the worker's tasks per second with and without "
                        "the task records)")
    parser.add_argument("--throughput-rounds", type=int, default=5,
                        help="rounds of each throughput variant (default: 5)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--label", metavar="NAME",
                        help="write the block marked 'bench:begin NAME' instead of the "
                        "unnamed one, so separate runs keep each other's blocks")
    parser.add_argument("--before", metavar="REV",
                        help="also measure the main Redis scenarios on this git "
                        "revision's celery_checks, in the same rounds (e.g. main)")
    interpreters = parser.add_mutually_exclusive_group()
    interpreters.add_argument("--python", metavar="PATH",
                              help="run the checks with this interpreter's libraries, e.g. "
                              ".venv-debian/bin/python for Debian's packages (default: "
                              "this venv's)")
    interpreters.add_argument("--set", metavar="NAME=PYTHON", dest="sets", action="append",
                              type=library_sets.parse,
                              help="a library set: run the checks with this interpreter's "
                              "libraries; repeatable, the sets measured side by side in the "
                              "same rounds, e.g. --set newest=.venv/bin/python "
                              "--set debian=.venv-debian/bin/python")
    args = parser.parse_args(argv)
    args.warmup = max(1, args.warmup)
    try:
        args.sets = library_sets.wanted(args, sys.executable)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    return args


def main(argv=None):
    args = options(argv)

    def terminate(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, terminate)
    # Python leaves SIGINT ignored when it starts ignored (a job started
    # with & from a script, as CI's side-by-side runs are): Ctrl-C must
    # still end the bench and its measured command.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="celery-checks-bench-"))
    log("working in %s" % workdir)
    results = []
    throughput = answers = None
    ctx = None
    sets = []
    try:
        for name, python in args.sets:
            sets.append(library_sets.LibrarySet(name, python, workdir, args.before))
            log("library set %s: %s: %s" % (name, python, sets[-1].versions))
        ctx = Context(workdir, sets, args.only)
        for key, title, phase in PHASES:
            log("phase: %s" % title)
            for number, scenarios in enumerate(phase(ctx)):
                label = title if number == 0 else "%s, continued" % title
                results += run_phase(ctx, label, scenarios, args.runs, args.warmup, args.only)
        if ctx.worker_groups and ctx.wants(answering.KEY, *answering.WITH):
            log("phase: the workers' own CPU answering a ping")
            answers = answering.measure(ctx, ctx.worker_groups)
        if ctx.wants(worker_throughput.KEY):
            log("phase: worker throughput with and without the task records")
            throughput = worker_throughput.measure(ctx, args.throughput_rounds)
    finally:
        if ctx is not None:
            ctx.cleanup()
        for lib in sets:
            lib.close()
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    report = render(results, args, sets, started, load_before, load_after, throughput,
                    answers)
    print(report)
    if not args.no_write:
        write_doc(Path(args.output), report, args.label)
        log("wrote %s" % args.output)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        sys.exit(130)
