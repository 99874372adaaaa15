"""Run a check executable as a process and read its answer like a monitoring
core would: exit code, status line, long output, perfdata.

- :func:`run_check` runs one; :func:`run_parallel` many, a few at a time;
  :func:`fork_runs` hundreds, forked from one process that imported the
  check already (tests/kit/forkrun.py);
- :class:`Result` is what a run printed, split the way Nagios splits it;
- :func:`help_text` / :func:`broker_scripts`: what each executable offers.

The perfdata grammar is written here from the Monitoring Plugins development
guidelines, independently of nagiosplugin, so the tests catch what a core
would choke on.
"""

import functools
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.kit import project

BIN = Path(sys.executable).parent
STATES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}

# 'label'=value[UOM];[warn];[crit];[min];[max]
_LABEL = r"(?:'(?:[^'=]|'')+'|[^'=\s|][^'=\s|]*)"
_NUMBER = r"-?(?:\d+(?:\.\d+)?|\.\d+)"
_RANGE = r"(?:@?(?:~|%s)?:?(?:%s)?)" % (_NUMBER, _NUMBER)
_UOM = r"(?:s|ms|us|%|B|KB|MB|GB|TB|c)?"
PERF_ITEM = re.compile(
    r"^(?P<label>%s)=(?P<value>%s|U)(?P<uom>%s)"
    r"(?:;(?P<warn>%s)?(?:;(?P<crit>%s)?(?:;(?P<min>%s)?(?:;(?P<max>%s)?)?)?)?)?$"
    % (_LABEL, _NUMBER, _UOM, _RANGE, _RANGE, _NUMBER, _NUMBER)
)


class Perf:
    def __init__(self, match):
        label = match.group("label")
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        self.label = label
        raw = match.group("value")
        self.value = raw if raw == "U" else (float(raw) if "." in raw else int(raw))
        self.uom = match.group("uom") or ""
        self.warn = match.group("warn") or ""
        self.crit = match.group("crit") or ""
        self.min = match.group("min") or ""
        self.max = match.group("max") or ""
        self.raw_value = raw

    def __repr__(self):
        return "Perf(%s=%s%s;%s;%s;%s;%s)" % (
            self.label, self.value, self.uom, self.warn, self.crit, self.min, self.max)


def split_perfdata(text):
    """Split on spaces outside single quotes."""
    items, current, quoted = [], "", False
    for char in text.strip():
        if char == "'":
            quoted = not quoted
        if char == " " and not quoted:
            if current:
                items.append(current)
            current = ""
        else:
            current += char
    if current:
        items.append(current)
    return items


def parse_perfdata(text):
    """{label: Perf}; AssertionError on anything the grammar rejects."""
    result = {}
    for item in split_perfdata(text):
        match = PERF_ITEM.match(item)
        assert match, "perfdata item does not parse: %r" % item
        perf = Perf(match)
        assert perf.label not in result, "duplicate perfdata label %r" % perf.label
        assert "e" not in perf.raw_value.lower() or perf.raw_value == "U"
        result[perf.label] = perf
    return result


class Result:
    """What a check printed, split the way Nagios splits it."""

    def __init__(self, args, returncode, stdout, stderr, elapsed):
        self.args = args
        self.rc = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        text, perf_parts = [], []
        for index, line in enumerate(stdout.splitlines()):
            body, sep, perf = line.partition("|")
            text.append(body.rstrip() if sep else line)
            if sep:
                perf_parts.append(perf)
        self.first_line = text[0] if text else ""
        self.long_output = [line for line in text[1:] if line]
        self.perfdata = parse_perfdata(" ".join(perf_parts))

    @property
    def state(self):
        return STATES.get(self.rc, "rc=%s" % self.rc)

    @property
    def summary(self):
        """The status line's text after 'NAME STATE - '."""
        return self.first_line.split(" - ", 1)[1] if " - " in self.first_line else ""

    def assert_state(self, expected, *fragments):
        assert self.state == expected, self.describe("expected %s" % expected)
        assert " %s" % expected in self.first_line, self.describe("status word")
        for fragment in fragments:
            assert fragment in self.first_line, self.describe("missing %r" % fragment)
        self.assert_well_formed()
        return self

    def assert_ok(self, *fragments):
        return self.assert_state("OK", *fragments)

    def assert_warning(self, *fragments):
        return self.assert_state("WARNING", *fragments)

    def assert_critical(self, *fragments):
        return self.assert_state("CRITICAL", *fragments)

    def assert_unknown(self, *fragments):
        return self.assert_state("UNKNOWN", *fragments)

    def assert_well_formed(self):
        assert self.rc in (0, 1, 2, 3), self.describe("exit code")
        assert "Traceback" not in self.stdout + self.stderr or "-vvv" in self.args, \
            self.describe("traceback")
        assert self.first_line, self.describe("empty output")
        assert len(self.first_line) <= 200, self.describe("status line too long")

    def describe(self, why):
        return "%s\n$ %s\nrc=%s (%.2fs)\n--- stdout\n%s--- stderr\n%s" % (
            why, " ".join(map(str, self.args)), self.rc, self.elapsed, self.stdout, self.stderr)

    def __repr__(self):
        return "<Result rc=%s %r>" % (self.rc, self.first_line)


def executable(name):
    """The installed console script next to the interpreter running the tests."""
    path = BIN / name
    assert path.exists(), "%s not installed next to %s" % (name, sys.executable)
    return str(path)


def run_check(name, *args, env=None, stdin=None, timeout=60, extra_env=None):
    """Run an executable by name; returns a parsed :class:`Result`."""
    command = [executable(name)] + [str(a) for a in args]
    environment = dict(os.environ if env is None else env)
    environment.pop("CELERY_BROKER_URL", None) if env is None else None
    environment.update(extra_env or {})
    started = time.monotonic()
    proc = subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=environment,
        timeout=timeout,
    )
    return Result(command, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def run_importing(name, *args, env=None):
    """Run an executable by name under ``python -X importtime``: (its
    :class:`Result`, the top-level packages it imported). The interpreter
    lists every import on stderr as it happens, so the listing holds however
    the check ends (it skips the interpreter's teardown: runner.end)."""
    command = [sys.executable, "-X", "importtime", executable(name)] + [str(a) for a in args]
    environment = dict(os.environ if env is None else env)
    environment.pop("CELERY_BROKER_URL", None)
    proc = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60)
    packages, rest = set(), []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:"):
            module = line.rsplit("|", 1)[-1].strip()
            if module != "imported package":  # the header line
                packages.add(module.split(".")[0])
        else:
            rest.append(line)
    result = Result(command, proc.returncode, proc.stdout, "\n".join(rest), 0.0)
    return result, packages


def assert_within_timeout(result, timeout):
    """The run ended within -t, +1 s for the interpreter to start. On a host
    other processes load, starting it may take longer: over that bound, the
    same executable's -V (start-up and exit, nothing else) is timed right
    away and twice its time is the allowance instead. A hang past -t still
    fails; a busy CPU alone does not."""
    if result.elapsed <= timeout + 1:
        return
    command = result.args[0] if os.sep in result.args[0] else executable(result.args[0])
    started = time.monotonic()
    subprocess.run([command, "-V"], capture_output=True, timeout=60)
    startup = time.monotonic() - started
    assert result.elapsed <= timeout + max(1, 2 * startup), result.describe(
        "took longer than -t + 1 s (starting it took %.2fs just now)" % startup)


def render(check, verbose=0):
    """What ``check`` (a nagiosplugin Check, its Resource given literal
    facts) prints, run in-process: a :class:`Result`, exit code included.
    Output is worded, joined and redacted as the executable does it, but
    no Runtime singleton, alarm or exit is involved."""
    import io

    from nagiosplugin.output import Output

    from celery_checks.plugin import secrets

    class Log:
        stream = io.StringIO()

    check()
    output = Output(Log(), verbose)
    output.add(check)
    return Result(["in-process"], check.exitcode, secrets.redact(str(output)), "", 0.0)


def run_parallel(jobs, parallel=6):
    """Run ``jobs`` = [(name, args, kwargs)] a few at a time; Results in order."""
    def one(job):
        name, args, kwargs = job
        return run_check(name, *args, **kwargs)

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, jobs))


def fork_runs(name, argvs, parallel=8, extra_env=None, envs=None):
    """Run executable ``name`` once per argv, ``parallel`` at a time, each
    run a process of its own forked from one that imported the check
    already (tests/kit/forkrun.py): hundreds of runs at a fraction of the
    cost. ``extra_env`` goes to every run, ``envs`` (one dict per argv) to
    each its own. Results like run_check's."""
    module = project.module_of(name)
    assert module.startswith("celery_checks."), module
    env = dict(os.environ)
    env.pop("CELERY_BROKER_URL", None)
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join(
        [str(project.ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run(
        [sys.executable, "-m", "tests.kit.forkrun", module[len("celery_checks."):], str(parallel)],
        cwd=str(project.ROOT), input=json.dumps([
            {"argv": [str(a) for a in argv], "env": dict(run_env or {})}
            for argv, run_env in zip(argvs, envs or [None] * len(argvs))]),
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [Result([name] + r["argv"], r["rc"], r["stdout"], r["stderr"], r["elapsed"])
            for r in json.loads(proc.stdout)]


@functools.lru_cache(maxsize=None)
def help_text(name):
    proc = subprocess.run([executable(name), "--help"], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS="79"))
    return proc.stdout


def broker_scripts():
    """Declared executables whose --help offers a broker or a store URL."""
    return sorted(name for name in project.scripts()
                  if "--broker" in help_text(name) or "--store" in help_text(name))
