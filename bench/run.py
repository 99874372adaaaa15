#!/usr/bin/env python3
"""Benchmark every check against its budget and the tools operators use.

    .venv/bin/python bench/run.py            # full run, writes docs/performance.md
    .venv/bin/python bench/run.py -n 5 --no-write --only pulsefile
    .venv/bin/python bench/run.py --python /usr/bin/python3 --label debian

What it does, in one process:

- installs a *regular* (non-editable) copy of celery_checks and its console
  scripts into a throwaway venv that borrows the dependencies of the venv
  running this script: an editable install's import hook costs every process
  ~15 ms that no real installation pays;
- sets up its scenarios with the test kit's services (tests/kit/): a
  redis-server of its own, a RabbitMQ vhost of its own, real ``celery
  worker`` processes on tests/app.py
  (solo pool, started in parallel, stopped by process group at the end, also
  on error or Ctrl-C);
- runs each command as a whole process: a warm-up, then N rounds in which
  every scenario of the phase runs once (interleaved, so a burst of load from
  elsewhere hits all of them alike); wall time, CPU time (user+sys) and peak
  RSS (ru_maxrss) come from os.wait4() on the child;
- measures through a tiny launcher process (see LAUNCHER: a child forked
  from this big process would inherit its RSS high-water mark);
- reports medians, min-max and ratios against baselines measured in the same
  phase (``python -c pass``, ``python -c "import nagiosplugin"``, each
  check's floor = the imports it cannot avoid, the tool an operator would
  use), checks the budgets of issue 8, and writes the tables into
  docs/performance.md between the ``bench:begin``/``bench:end`` markers
  (``--label`` names another block, e.g. for ``--python /usr/bin/python3``).

A scenario whose executable is not declared in pyproject.toml yet is
reported as "not built". Ratios are what to compare across runs: the
machines are shared and noisy.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test kit's services: tests/kit/

from tests.kit import rabbitmq as rabbitmq_kit  # noqa: E402
from tests.kit.redis_servers import Databases, RedisServer  # noqa: E402
from tests.kit.workers import WorkerFactory  # noqa: E402
HOST = socket.gethostname()
HEARTBEAT_INTERVAL = 2.0  # celery worker's default --heartbeat-interval
HEAVY = ("celery", "kombu", "billiard", "redis", "pika", "amqp")


def markers(label=None):
    """The comments that delimit a run's block in docs/performance.md."""
    suffix = " " + label if label else ""
    return "<!-- bench:begin%s -->" % suffix, "<!-- bench:end%s -->" % suffix


def log(message):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), message))
    sys.stderr.flush()


# ------------------------------------------------------------------- install

def declared_scripts():
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^(\S+)\s*=\s*"([^"]+)"', section, re.M))


WRAPPER = """#!%s
# -*- coding: utf-8 -*-
import re
import sys
from %s import %s
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(%s())
"""


# The site directories on the target's sys.path: a venv's own, plus the
# system's with --system-site-packages (Debian keeps its in dist-packages).
PROBE_PYTHON = """
import json, sys
paths = [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))]
print(json.dumps({"base": getattr(sys, "_base_executable", None) or sys.executable,
                  "paths": list(dict.fromkeys(paths))}))
"""

VERSIONS = """
import importlib.metadata, platform
names = ("nagiosplugin", "celery", "kombu", "redis", "pika")
def version(name):
    try:
        return importlib.metadata.version(name)
    except Exception:
        return "?"
print("Python %s; " % platform.python_version() + ", ".join("%s %s" % (n, version(n)) for n in names))
"""


class Install:
    """A throwaway venv holding a plain copy of celery_checks, with console
    scripts written the way pip writes them, and the packages (celery,
    redis, pika, nagiosplugin) of ``python`` (the dev venv by default, or
    e.g. Debian's /usr/bin/python3) reachable through a .pth file."""

    def __init__(self, workdir, python=None):
        self.venv = workdir / "venv"
        probe = json.loads(subprocess.check_output([python or sys.executable, "-c", PROBE_PYTHON]))
        subprocess.run([probe["base"], "-m", "venv", "--without-pip", str(self.venv)], check=True)
        self.bin = self.venv / "bin"
        self.python = str(self.bin / "python")
        site_dir = Path(subprocess.check_output(
            [self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True).strip())
        # A plain path line: the dev venv's own .pth files (the editable
        # finder among them) are not executed from there.
        deps = [path for path in probe["paths"] if os.path.isdir(path)]
        (site_dir / "bench-deps.pth").write_text("\n".join(deps) + "\n")
        self.site_dir = site_dir
        self.versions = subprocess.check_output([self.python, "-c", VERSIONS], text=True).strip()
        self.scripts = {}
        self.refresh()
        self._wrapper("celery", "celery.__main__:main")

    def refresh(self):
        """Copy the package and (re)write the scripts as declared right now."""
        target = self.site_dir / "celery_checks"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(ROOT / "celery_checks", target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        subprocess.run([self.python, "-m", "compileall", "-q", str(target)], check=False)
        for name, spec in declared_scripts().items():
            module = spec.split(":")[0]
            if (ROOT / (module.replace(".", "/") + ".py")).exists():
                self._wrapper(name, spec)

    def _wrapper(self, name, spec):
        module, func = spec.split(":")
        path = self.bin / name
        path.write_text(WRAPPER % (self.python, module, func, func))
        path.chmod(0o755)
        self.scripts[name] = str(path)

    def has(self, name):
        return name in self.scripts


# ------------------------------------------------------------------- measure

class Sample:
    __slots__ = ("wall", "cpu", "rss", "rc", "output")

    def __init__(self, wall, cpu, rss, rc, output):
        self.wall, self.cpu, self.rss, self.rc, self.output = wall, cpu, rss, rc, output


# The launcher forks and execs every measured command. It must be a small
# process: on exec Linux folds the old address space's high-water mark into
# the child's ru_maxrss, so a child forked from this script (celery, redis
# and pika loaded, ~45 MiB) would report at least that much. python -S -I
# with nothing imported is ~8.5 MiB, about `python -c pass` itself.
LAUNCHER = r"""
import os, sys, time
for line in sys.stdin:
    argv, env, out = eval(line)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            if env is None:
                os.execv(argv[0], argv)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(fd)
    sys.stdout.write("%d\n" % pid)
    sys.stdout.flush()
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    sys.stdout.write(repr((wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss,
                           os.waitstatus_to_exitcode(status))) + "\n")
    sys.stdout.flush()
"""


class Launcher:
    def __init__(self, python, workdir):
        self.out = str(workdir / "last-output")
        self.proc = subprocess.Popen([python, "-S", "-I", "-c", LAUNCHER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def measure(self, argv, env=None, limit=60.0):
        """Run argv once; wall, CPU (user+sys) and peak RSS of exactly that child."""
        self.proc.stdin.write(repr((list(argv), env, self.out)) + "\n")
        self.proc.stdin.flush()
        pid = int(self.proc.stdout.readline())
        killer = threading.Timer(limit, _kill_group, (pid,))
        killer.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            killer.cancel()
        wall, cpu, rss_kib, rc = eval(line)  # our own launcher's repr() of numbers
        with open(self.out, "rb") as handle:
            output = handle.read().decode("utf-8", "replace")
        return Sample(wall, cpu, rss_kib / 1024.0, rc, output)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


_launcher = None


def measure(argv, env=None, limit=60.0):
    return _launcher.measure(argv, env, limit)


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def imported_packages(argv, env=None):
    """Top-level packages a check imports, from ``python -X importtime``."""
    interpreter = Path(argv[0]).read_text().split("\n", 1)[0][2:].strip()
    proc = subprocess.run([interpreter, "-X", "importtime"] + argv, capture_output=True,
                          text=True, env=env, timeout=60)
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)", proc.stderr, re.M)
    return {name.split(".")[0] for name in names}


class Scenario:
    """One command, measured as a whole process."""

    def __init__(self, key, title, argv, expect=(0,), kind="check", tool=None,
                 slow=False, env=None, floor="nagiosplugin"):
        self.key = key
        self.title = title
        self.argv = argv  # argv[0] is an executable name from the Install, or a path
        self.expect = expect
        self.kind = kind  # "check" or "baseline"
        self.tool = tool  # key of the baseline an operator would use instead
        self.slow = slow  # takes about a second or more: fewer rounds
        self.env = env
        self.floor = floor  # FLOORS key: the imports this check cannot avoid
        self.floor_base = None
        self.samples = []
        self.status = "pending"
        self.first_line = ""
        self.imports = None
        self.phase = None
        self.bases = (None, None)  # python -c pass, import nagiosplugin of its phase

    def resolve(self, install):
        exe = self.argv[0]
        if "/" in exe:
            return list(self.argv)
        if exe in ("python",):
            return [install.python] + list(self.argv[1:])
        if install.has(exe):
            return [install.scripts[exe]] + list(self.argv[1:])
        if exe in declared_scripts() or exe.startswith(("check_", "trigger_")):
            return None  # ours, not built yet: never another copy from $PATH
        found = shutil.which(exe)
        return [found] + list(self.argv[1:]) if found else None

    def stat(self, field, func=statistics.median):
        values = [getattr(s, field) for s in self.samples]
        return func(values) if values else None


# ------------------------------------------------------------------- services

class Workers:
    """Real celery workers (solo pool) on tests/app.py, from the test kit."""

    def __init__(self, workdir):
        self.factory = WorkerFactory(workdir)

    def start(self, broker_url, names, queues=("celery",), timeout=90):
        started = [self.factory.start(broker_url, name=name, queues=queues, wait=False)
                   for name in names]
        for worker in started:
            self.factory.wait_ready(worker, timeout, "ready.")
        return names

    def stop_all(self):
        self.factory.stop_all()


def publish(broker_url, queues, per_queue, priorities=False):
    """Publish the way Celery does (send_task), without workers consuming."""
    from celery import Celery

    app = Celery("bench", broker=broker_url)
    for queue in queues:
        for i in range(per_queue):
            options = {"priority": i % 10} if priorities else {}
            app.send_task("tests.add", args=(i, i), queue=queue, **options)
    app.close()


# -------------------------------------------------------------------- phases

# What a check cannot avoid importing (its libraries' own import cost): the
# distance between a check and its floor is the check's own doing.
FLOORS = {
    "nagiosplugin": "import nagiosplugin",
    "redis": "import nagiosplugin, argparse, redis",
    "pika": "import nagiosplugin, argparse, pika",
    "kombu": "import nagiosplugin, argparse, kombu, kombu.transport.redis",
    "celery": "import argparse, celery, kombu.transport.redis",
}


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


def phase_services(ctx):
    """Pulse files, queues on Redis and on RabbitMQ; no worker running."""
    pulse_dir = ctx.workdir / "pulse"
    (pulse_dir / "many").mkdir(parents=True)
    content = '{"node": "celery@%s", "pid": 1, "state": "running", "interval": 30}' % HOST
    (pulse_dir / "worker.pulse").write_text(content)
    for i in range(50):
        (pulse_dir / "many" / ("w%02d.pulse" % i)).write_text(content)

    scenarios = base_scenarios("services", ["redis", "pika"]) + [
        Scenario("pulsefile-1", "pulsefile, 1 file",
                 ["check_celery_pulsefile", "-f", str(pulse_dir / "worker.pulse")]),
        Scenario("pulsefile-50", "pulsefile, 50 files (glob)",
                 ["check_celery_pulsefile", "-f", str(pulse_dir / "many" / "*.pulse"),
                  "--min-files", "50"]),
    ]

    def queue_args(url, queues):
        args = ["check_celery_queue", "-b", url, "-w", "1000", "-c", "5000"]
        for queue in queues:
            args += ["-q", queue]
        return args

    if ctx.wants("queue-redis-1", "queue-redis-100"):
        db = ctx.take_db()
        redis_url = ctx.redis.url(db)
        redis_queues = ["bench-q%03d" % i for i in range(100)]
        publish(redis_url, redis_queues, 10, priorities=True)
        scenarios += [
            Scenario("redis-cli", "`redis-cli llen` (1 list)",
                     ["redis-cli", "-h", ctx.redis.host, "-p", str(ctx.redis.port), "-n", str(db),
                      "llen", redis_queues[0]], kind="baseline"),
            Scenario("queue-redis-1", "queue, Redis, 1 queue (10 msgs, priorities 0-9)",
                     queue_args(redis_url, redis_queues[:1]), tool="redis-cli", floor="redis"),
            Scenario("queue-redis-100", "queue, Redis, 100 queues",
                     queue_args(redis_url, redis_queues), tool="redis-cli", floor="redis"),
        ]
    if ctx.wants("queue-amqp-1", "queue-amqp-20"):
        ctx.vhost = rabbitmq_kit.Vhost("celery-checks-bench").create()
        amqp_queues = ["bench-q%02d" % i for i in range(20)]
        publish(ctx.vhost.url, amqp_queues, 10)
        scenarios += [
            Scenario("rabbitmqctl", "`rabbitmqctl list_queues`",
                     ["rabbitmqctl", "-q", "list_queues", "-p", ctx.vhost.name, "name", "messages"],
                     kind="baseline", slow=True),
            Scenario("queue-amqp-1", "queue, RabbitMQ, 1 queue",
                     queue_args(ctx.vhost.url, amqp_queues[:1]), tool="rabbitmqctl", floor="pika"),
            Scenario("queue-amqp-20", "queue, RabbitMQ, 20 queues",
                     queue_args(ctx.vhost.url, amqp_queues), tool="rabbitmqctl", floor="pika"),
        ]
    yield scenarios


def worker_scenarios(tag, url, names, missing):
    expect = []
    for name in names:
        expect += ["--expect", name]
    gone = expect + ["--expect", missing]
    return [
        Scenario("celery-status-%s" % tag, "`celery status` (%s workers)" % tag,
                 ["celery", "-b", url, "status"], kind="baseline", slow=True),
        Scenario("inspect-ping-%s" % tag, "`celery inspect ping` (%s workers)" % tag,
                 ["celery", "-b", url, "inspect", "ping"], kind="baseline", slow=True),
        Scenario("workers-ping-%s" % tag, "workers, ping, %s of %s present" % (tag, tag),
                 ["check_celery_workers", "-b", url, "--source", "ping"] + expect,
                 tool="celery-status-%s" % tag, floor="redis"),
        Scenario("workers-ping-%s-missing" % tag, "workers, ping, 1 of %d missing" % (len(names) + 1),
                 ["check_celery_workers", "-b", url, "--source", "ping"] + gone,
                 expect=(2,), tool="celery-status-%s" % tag, slow=True, floor="redis"),
        Scenario("workers-events-%s" % tag, "workers, events, %s of %s present" % (tag, tag),
                 ["check_celery_workers", "-b", url, "--source", "events"] + expect,
                 tool="celery-status-%s" % tag, floor="kombu"),
        Scenario("workers-events-%s-missing" % tag, "workers, events, 1 of %d missing" % (len(names) + 1),
                 ["check_celery_workers", "-b", url, "--source", "events"] + gone,
                 expect=(2,), tool="celery-status-%s" % tag, slow=True, floor="kombu"),
    ]


def phase_workers(ctx):
    """2 workers (and a heartbeat worker on its own DB), then 10 workers."""
    scenarios = []
    built = ctx.install.has("check_celery_heartbeat") or ctx.install.has("trigger_celery_heartbeat")
    if built and ctx.wants("heartbeat-1", "heartbeat-100", "trigger-10"):
        hb_url = ctx.redis.url(ctx.take_db())
        hb_queues = ["bench-hb%03d" % i for i in range(100)]
        ctx.workers.start(hb_url, ["bench-hb@%s" % HOST], queues=hb_queues)
        scenarios += heartbeat_scenarios(ctx, hb_url, hb_queues)
    if not ctx.wants(*["workers-%s-%s%s" % (source, n, suffix) for source in ("ping", "events")
                       for n in (2, 10) for suffix in ("", "-missing")]):
        if scenarios:
            yield base_scenarios("2w", ["redis", "celery"]) + scenarios
        return

    url = ctx.redis.url(ctx.take_db())
    names = ["bench-w%02d@%s" % (i, HOST) for i in range(1, 11)]
    missing = "bench-gone@%s" % HOST
    ctx.workers.start(url, names[:2])
    floors = ["redis", "kombu"] + (["celery"] if scenarios else [])
    yield base_scenarios("2w", floors) + scenarios + worker_scenarios("2", url, names[:2], missing)
    ctx.workers.start(url, names[2:])
    yield base_scenarios("10w", ["redis", "kombu"]) + worker_scenarios("10", url, names, missing)


def heartbeat_scenarios(ctx, store_url, queues):
    """Trigger heartbeats through all queues, wait until the worker ran them."""
    trigger = ["trigger_celery_heartbeat", "-b", store_url]
    for queue in queues:
        trigger += ["-q", queue]
    check = ["check_celery_heartbeat", "--store", store_url]
    result = []
    if ctx.install.has("trigger_celery_heartbeat"):
        sample = measure(Scenario("", "", trigger).resolve(ctx.install))
        if sample.rc != 0:
            log("trigger failed: %s" % sample.output.strip()[:300])
        trigger10 = ["trigger_celery_heartbeat", "-b", store_url]
        for queue in queues[:10]:
            trigger10 += ["-q", queue]
        result.append(Scenario("trigger-10", "trigger, 10 queues", trigger10, floor="celery"))
    if ctx.install.has("check_celery_heartbeat"):
        one = Scenario("heartbeat-1", "heartbeat, 1 queue", check + ["-q", queues[0]], floor="redis")
        many = Scenario("heartbeat-100", "heartbeat, 100 queues",
                        check + [arg for q in queues for arg in ("-q", q)], floor="redis")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if measure(many.resolve(ctx.install)).rc == 0:
                break
            time.sleep(0.5)
        result += [one, many]
    return result


PHASES = [("services", "No worker running", phase_services),
          ("workers", "Real workers (solo pool)", phase_workers)]


# --------------------------------------------------------------------- runner

class Context:
    def __init__(self, workdir, install, only=None):
        self.workdir = workdir
        self.install = install
        self.only = only
        # A redis-server of the benchmark's own, like the tests': it never
        # touches a Redis it did not start.
        self.redis = RedisServer(workdir).start()
        log("redis-server of our own on port %d" % self.redis.port)
        self.databases = Databases(self.redis)
        self.held = contextlib.ExitStack()
        self.vhost = None
        self.workers = Workers(workdir)

    def take_db(self):
        """A database of our server, flushed, held until cleanup."""
        return self.held.enter_context(self.databases.take())

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


def slow_rounds(runs):
    return min(runs, max(5, runs // 3))


def run_phase(ctx, title, scenarios, runs, warmup, only):
    selected = [s for s in scenarios if not only or re.search(only, s.key) or s.kind == "baseline"]
    if only and not any(s.kind == "check" for s in selected):
        return []
    bases = tuple(next((s for s in selected if s.key.startswith(prefix)), None)
                  for prefix in ("python-", "floor-nagiosplugin-"))
    active = []
    for scenario in selected:
        scenario.phase = title
        scenario.bases = bases
        scenario.floor_base = next((s for s in selected if s.key.startswith(
            "floor-%s-" % scenario.floor)), None) if scenario.kind == "check" else None
        argv = scenario.resolve(ctx.install)
        if argv is None:
            scenario.status = "not built"
            continue
        scenario.resolved = argv
        for _ in range(warmup):
            sample = measure(argv, scenario.env)
        scenario.first_line = sample.output.split("\n", 1)[0].strip()
        if sample.rc not in scenario.expect:
            scenario.status = "unexpected exit %d: %s" % (sample.rc, scenario.first_line[:120])
            log("%s: %s" % (scenario.key, scenario.status))
            continue
        scenario.status = "ok"
        if scenario.kind == "check":
            try:
                scenario.imports = imported_packages(argv, scenario.env)
            except Exception as exc:
                log("%s: importtime failed: %s" % (scenario.key, exc))
        active.append(scenario)
    slow_runs = slow_rounds(runs)
    for round_no in range(runs):
        for scenario in active:
            if scenario.slow and round_no >= slow_runs:
                continue
            sample = measure(scenario.resolved, scenario.env)
            if sample.rc not in scenario.expect:
                log("%s: round %d exit %d: %s" % (scenario.key, round_no, sample.rc,
                                                   sample.output.split("\n", 1)[0][:120]))
            scenario.samples.append(sample)
        log("%s: round %d/%d done" % (title, round_no + 1, runs))
    return selected


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=21,
                        help="measured rounds (scenarios of a second or more: a third, "
                        "at least 5)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs first")
    parser.add_argument("--only", metavar="REGEX", help="only scenarios whose key matches")
    parser.add_argument("--output", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--label", metavar="NAME",
                        help="write the block marked 'bench:begin NAME' instead of the "
                        "unnamed one, so runs side by side (e.g. debian) keep each other")
    parser.add_argument("--python", metavar="PATH",
                        help="run the checks with this interpreter's libraries, e.g. "
                        "/usr/bin/python3 for Debian's packages (default: this venv's)")
    args = parser.parse_args(argv)

    def terminate(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, terminate)
    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="celery-checks-bench-"))
    results = []
    ctx = None
    versions = "?"
    try:
        install = Install(workdir, args.python)
        versions = install.versions
        global _launcher
        _launcher = Launcher(install.python, workdir)
        ctx = Context(workdir, install, args.only)
        for key, title, phase in PHASES:
            log("phase: %s" % title)
            generator = phase(ctx)
            for number, scenarios in enumerate(generator):
                label = title if number == 0 else "%s, continued" % title
                results += run_phase(ctx, label, scenarios, args.runs, args.warmup, args.only)
    finally:
        if ctx is not None:
            ctx.cleanup()
        if _launcher is not None:
            _launcher.close()
        shutil.rmtree(workdir, ignore_errors=True)
    load_after = os.getloadavg()
    report = render(results, args, started, load_before, load_after, versions)
    print(report)
    if not args.no_write:
        write_doc(Path(args.output), report, args.label)
        log("wrote %s" % args.output)


# --------------------------------------------------------------------- report

def fmt_s(value):
    return "–" if value is None else "%.3f" % value


def machine_description(started, load_before, load_after, args, versions):
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                memory = "%.1f GiB" % (int(line.split()[1]) / 1024.0 / 1024.0)
    except OSError:
        pass
    redis_version = rabbit_version = "?"
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=30)
        redis_version = re.search(r"v=(\S+)", out.stdout).group(1)
    except Exception:
        pass
    try:
        out = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True, timeout=30)
        rabbit_version = out.stdout.strip() or "?"
    except Exception:
        pass
    try:
        revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "celery_checks"], capture_output=True, text=True).stdout.strip()
        revision += " (celery_checks/ with uncommitted changes)" if dirty else ""
    except OSError:
        revision = "?"
    return [
        "- date: %s; code: %s" % (started.strftime("%Y-%m-%d %H:%M %Z"), revision),
        "- machine: %d CPUs (nproc), %s, %s RAM, %s %s" % (
            os.cpu_count() or 0, model, memory, platform.system(), platform.release()),
        "- load average (1 min) at start / end: %.2f / %.2f" % (load_before[0], load_after[0]),
        "- checks run on %s: %s" % (args.python or sys.executable, versions),
        "- services: Redis %s, RabbitMQ %s; workers: celery solo pool on tests/app.py" % (
            redis_version, rabbit_version),
        "- runs: %d measured rounds after %d warm-up runs (slow scenarios: %d rounds)" % (
            args.runs, args.warmup, slow_rounds(args.runs)),
    ]


def render(results, args, started, load_before, load_after, versions):
    by_key = {s.key: s for s in results}
    begin, end = markers(args.label)
    lines = [begin, "", "### Run", ""]
    lines += machine_description(started, load_before, load_after, args, versions)
    lines += ["", "### Results", "",
              "Medians, min–max in brackets. Ratios are wall-time medians divided by "
              "the baseline's median in the same phase; × floor compares with importing "
              "the libraries the check cannot do without (CPU ratio in brackets). "
              "Relative budgets use the median of per-round ratios.", ""]
    phase = None
    header = ("| scenario | state | wall s | CPU s | peak RSS MiB | × `python -c pass` "
              "| × `import nagiosplugin` | × floor (CPU) | × tool | imports |")
    for s in results:
        if s.phase != phase:
            phase = s.phase
            lines += ["", "#### %s" % phase, "", header, "|" + "---|" * 10]
        py, np = s.bases
        if s.status != "ok":
            lines.append("| %s | %s | | | | | | | | |" % (s.title, s.status))
            continue
        tool = by_key.get(s.tool) if s.tool else None
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s.title,
            state_of(s),
            "%s (%s–%s)" % (fmt_s(s.stat("wall")), fmt_s(s.stat("wall", min)), fmt_s(s.stat("wall", max))),
            fmt_s(s.stat("cpu")),
            "%.1f (max %.1f)" % (s.stat("rss"), s.stat("rss", max)),
            ratio(s, py), ratio(s, np), floor_ratio(s),
            ("%s %s" % (ratio(s, tool), tool.title)) if tool else "",
            "" if s.imports is None else (", ".join(sorted(set(HEAVY) & s.imports)) or "none"),
        ))
    lines += ["", "### Where the time goes", "",
              "CPU medians of each check against its floor (importing the libraries it "
              "cannot do without, measured in the same phase); what is left is the "
              "check's own work. Waiting = wall − CPU (round trips, replies, grace).", "",
              "| check | CPU s | floor | floor CPU s | own CPU ms | waiting s |",
              "|---|---|---|---|---|---|"]
    for s in results:
        base = s.floor_base
        if s.kind != "check" or s.status != "ok" or base is None or not base.samples:
            continue
        lines.append("| %s | %.3f | %s | %.3f | %.0f | %.3f |" % (
            s.title, s.stat("cpu"), s.floor, base.stat("cpu"),
            (s.stat("cpu") - base.stat("cpu")) * 1000, max(0.0, s.stat("wall") - s.stat("cpu"))))
    lines += ["", "### Budgets", "", "| budget | measured | verdict |", "|---|---|---|"]
    for text, measured, verdict in budgets(by_key):
        lines.append("| %s | %s | %s |" % (text, measured, verdict))
    lines += ["", end]
    return "\n".join(lines)


def state_of(s):
    rcs = {sample.rc for sample in s.samples}
    names = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
    if s.kind == "baseline":
        return "exit " + "/".join(str(rc) for rc in sorted(rcs))
    return "/".join(names.get(rc, str(rc)) for rc in sorted(rcs))


def ratio(s, base):
    if base is None or base.status != "ok" or not base.samples:
        return "–"
    return "%.2f" % (s.stat("wall") / base.stat("wall"))


def floor_ratio(s):
    base = s.floor_base
    if base is None or base.status != "ok" or not base.samples:
        return ""
    return "%.2f (%.2f) %s" % (s.stat("wall") / base.stat("wall"),
                               s.stat("cpu") / base.stat("cpu"), s.floor)


def paired(s, base, field="wall"):
    """Median of per-round ratios: both ran in the same round, under the
    same load from elsewhere, so the ratio is steadier than one of medians."""
    pairs = list(zip(s.samples, base.samples))
    return statistics.median(getattr(a, field) / getattr(b, field) for a, b in pairs)


def budgets(by_key):
    """(budget, measured, verdict) rows; verdict met / MISSED / not built."""
    rows = []

    def get(key):
        s = by_key.get(key)
        return s if s is not None and s.status == "ok" and s.samples else None

    def missing(key):
        s = by_key.get(key)
        if s is None:
            return "not measured (--only)"
        return "not measured" if s.status == "pending" else s.status

    def verdict(ok):
        return "met" if ok else "**MISSED**"

    def limit(key, field, bound, unit, text):
        s = get(key)
        if s is None:
            rows.append((text, "", missing(key)))
            return
        value = s.stat(field)
        if field == "wall":  # CPU shows how much of the wall time load added
            shown = "%.3f s (CPU %.3f s)" % (value, s.stat("cpu"))
        else:
            shown = "%.1f %s" % (value, unit)
        rows.append((text, shown, verdict(value <= bound)))

    def relative(key, base_key, bound, text):
        s, base = get(key), get(base_key)
        if s is None or base is None:
            rows.append((text, "", missing(key if s is None else base_key)))
            return
        value = paired(s, base)
        shown = "%.3f× (medians %.3f s / %.3f s; CPU %.2f×)" % (
            value, s.stat("wall"), base.stat("wall"), paired(s, base, "cpu"))
        if bound < 1:
            shown = "%.1f× faster: %s" % (1 / value, shown)
        rows.append((text, shown, verdict(value <= bound)))

    for key in ("pulsefile-1", "pulsefile-50"):
        limit(key, "wall", 0.06, "s", "%s ≤ 0.06 s" % key)
        limit(key, "rss", 20, "MiB", "%s ≤ 20 MiB" % key)
    s = get("pulsefile-1")
    if s is None or s.imports is None:
        rows.append(("pulsefile imports none of celery/redis/pika", "", missing("pulsefile-1")))
    else:
        heavy = sorted(set(HEAVY) & s.imports)
        rows.append(("pulsefile imports none of celery/redis/pika",
                     ", ".join(heavy) or "none", verdict(not heavy)))
    for key in ("queue-redis-1", "queue-redis-100", "queue-amqp-1", "queue-amqp-20"):
        limit(key, "wall", 0.25, "s", "%s ≤ 0.25 s" % key)
    relative("queue-redis-100", "queue-redis-1", 1.1, "queue Redis: 100 queues ≤ 1.1× 1 queue")
    relative("queue-amqp-20", "queue-amqp-1", 1.2, "queue RabbitMQ: 20 queues ≤ 1.2× 1 queue")
    limit("heartbeat-100", "wall", 0.25, "s", "heartbeat-100 ≤ 0.25 s")
    limit("trigger-10", "wall", 0.5, "s", "trigger-10 ≤ 0.5 s (issue 4)")
    for tag in ("2", "10"):
        relative("workers-ping-%s" % tag, "celery-status-%s" % tag, 0.2,
                 "workers-ping-%s ≥ 5× faster than `celery status` (≤ 0.20×)" % tag)
        limit("workers-events-%s" % tag, "wall", HEARTBEAT_INTERVAL, "s",
              "workers-events-%s ≤ 1 heartbeat interval (%.0f s)" % (tag, HEARTBEAT_INTERVAL))
    checks = [s for s in by_key.values() if s.kind == "check" and get(s.key)]
    if checks:
        worst = max(checks, key=lambda s: s.stat("rss", max))
        rows.append(("any check ≤ 50 MiB peak RSS",
                     "largest: %s %.1f MiB (max of runs)" % (worst.key, worst.stat("rss", max)),
                     verdict(worst.stat("rss", max) <= 50)))
    return rows


def write_doc(path, report, label=None):
    begin, end = markers(label)
    path.parent.mkdir(exist_ok=True)
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        path.write_text(head + report + tail)
    elif text:
        path.write_text(text.rstrip("\n") + "\n\n" + report + "\n")
    else:
        path.write_text(
            "# Performance\n\nMeasured by `.venv/bin/python bench/run.py` "
            "(see bench/run.py for the method).\n\n" + report + "\n")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        sys.exit(130)
