"""Every check runs as the ``nagios`` user, the way NRPE and Icinga run it.

The project is installed the two Debian ways the README documents, in
temporary directories the nagios user can read but not write: with
``pip install --no-deps`` into a venv on /usr/bin/python3 that sees the
python3-* packages, and as copied files (celery_checks/ on the site path,
the wrappers from checks/ in a plugin directory). Either way hiredis, the
one library Debian 12 ships too old (1.0.1 has no command packer), is
``pip install --no-deps hiredis==<declared minimum>`` beside the project.
Each check then runs as nagios (``setpriv``), with no HOME, from ``/`` and
with a minimal environment, against real Redis, RabbitMQ, workers and
files, under ``strace``: the answer must be the right one, and the process
must not have tried to create, change or delete any file (but
check_celery_tasks's own state file, named by --state-file in a directory
nagios owns).

The one write a Python process attempts on its own is CPython's bytecode
cache: the install is made with ``--no-compile`` on purpose, so nagios's
Python tries to create ``__pycache__`` next to the modules, is refused, and
carries on (CPython ignores that failure by design). The tests prove it
harmless rather than hiding it with PYTHONDONTWRITEBYTECODE, which NRPE does
not set: those refused attempts are the only ones allowed, and stderr must
stay empty.

Parametrised over the checks declared in pyproject.toml: a new check needs a
scenario in SCENARIOS below, or its test fails saying so.
"""

import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

from tests.kit import prerequisites, project, venvs
from tests.kit.project import ROOT, minimal_args
from tests.kit.plugin import Result
from tests.kit.waiting import wait_for

# Its executables run from an install of its own, the same in every run
# of the suite (scripts/test --debian leaves it out).
pytestmark = pytest.mark.own_install

CHECKS = project.checks()

NAGIOS = "nagios"
# What NRPE/Icinga give a plugin: no HOME, a plain PATH, cwd "/".
PLUGIN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

# Path-taking syscalls that only read; open* is judged by its flags; every
# other syscall strace's %file class reports (mkdir, unlink, rename, chmod,
# utimensat, creat, ...) counts as a write attempt.
READING_SYSCALLS = {
    "execve", "execveat", "stat", "lstat", "newfstatat", "fstatat64", "statx",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getxattr",
    "lgetxattr", "listxattr", "llistxattr", "statfs", "chdir", "getcwd",
}
OPEN_SYSCALLS = {"open", "openat", "openat2"}
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
HARMLESS_TARGETS = {"/dev/null"}
STRACE_LINE = re.compile(r"^(?:\[pid\s+)?\d*\]?\s*(\w+)\((.*)\)\s+=\s+(.*)$")


@pytest.fixture(scope="session")
def nagios_install():
    """A venv on /usr/bin/python3 seeing Debian's python3-* packages, with
    this project installed (not editable, no bytecode), readable by nagios."""
    prerequisites.require("root", "nagios-user", "setpriv", "strace", "debian-python")
    with venvs.debian_venv("celery-checks-nagios-") as venv:
        yield venv


@pytest.fixture
def shared_dir():
    """A directory nagios may read (not write), for the files checks read."""
    path = venvs.readable_tmpdir("celery-checks-nagios-files-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _tree(path):
    """Every path below ``path`` with its size and mtime: a cheap snapshot."""
    found = {}
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(folder, name)
            try:
                info = os.lstat(full)
            except FileNotFoundError:
                continue
            found[full] = (info.st_size, info.st_mtime_ns)
    return found


class NagiosRun:
    """Result of one run as nagios plus the write attempts strace saw."""

    def __init__(self, command, proc, elapsed, attempts):
        self.command, self.proc, self.elapsed = command, proc, elapsed
        self.attempts = attempts  # [(syscall, paths, outcome)]

    @property
    def result(self):
        """The output parsed as a monitoring core would (not for --help)."""
        return Result(self.command, self.proc.returncode, self.proc.stdout,
                      self.proc.stderr, self.elapsed)

    def describe(self, why):
        return "%s\n$ %s\nrc=%s\n--- stdout\n%s--- stderr\n%s" % (
            why, " ".join(self.command), self.proc.returncode, self.proc.stdout, self.proc.stderr)

    def forbidden_writes(self, allowed=()):
        """Write attempts but CPython's refused bytecode cache and the
        files in ``allowed`` (a check's own state file)."""
        bad = []
        for syscall, paths, outcome in self.attempts:
            if all(p in HARMLESS_TARGETS or p in allowed for p in paths):
                continue
            refused = outcome.startswith("-1 E") or outcome == "?"
            if refused and paths and all("/__pycache__" in p for p in paths):
                continue  # CPython's bytecode cache: refused and ignored
            bad.append("%s(%s) = %s" % (syscall, ", ".join(paths), outcome))
        return bad

    def assert_no_writes(self, allowed=()):
        bad = self.forbidden_writes(allowed)
        assert not bad, self.describe("write attempts as nagios:\n  " + "\n  ".join(bad))
        assert not self.proc.stderr, self.describe("stderr as nagios")


def _write_attempts(trace_text):
    attempts = []
    for line in trace_text.splitlines():
        match = STRACE_LINE.match(line.strip())
        if not match:
            if "<unfinished ...>" in line:  # threads: the outcome comes later
                call = re.search(r"(\w+)\((.*)", line)
                if call:
                    line = "%s(%s) = ?" % (call.group(1), call.group(2).split("<unfinished")[0])
                    match = STRACE_LINE.match(line)
            if not match:
                continue
        syscall, args, outcome = match.groups()
        if syscall in READING_SYSCALLS:
            continue
        if syscall in OPEN_SYSCALLS and not any(flag in args for flag in WRITE_FLAGS):
            continue
        paths = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
        attempts.append((syscall, paths, outcome.strip()))
    return attempts


def run_as_nagios(executable, *args, tmp_path, extra_env=None, timeout=60):
    """Run an executable (a path) as nagios under strace."""
    trace = tmp_path / ("strace-%s.log" % uuid.uuid4().hex[:8])
    command = [
        "strace", "-f", "-qq", "-o", str(trace), "-e", "trace=%file",
        "setpriv", "--reuid=%s" % NAGIOS, "--regid=%s" % NAGIOS, "--clear-groups",
        "--", str(executable),
    ] + [str(a) for a in args]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, cwd="/", timeout=timeout,
                          env=dict(PLUGIN_ENV, **(extra_env or {})))
    return NagiosRun(command, proc, time.monotonic() - started,
                     _write_attempts(trace.read_text(errors="replace")))


# ----------------------------------------------------------------- scenarios
# Per declared check: set up the real thing, return a list of
# (args, expected state, fragments of the status line, {perfdata label:
# expected value or None for any}).

def scenario_pulsefile(request, files):
    path = files / "worker.pulse"
    path.write_text('{"node": "w1@host", "pid": 1, "state": "running"}')
    path.chmod(0o644)
    return [(["-f", path, "-v"], "OK", [str(path)], {"age": None})]


def scenario_queue(request, files):
    redis_client = request.getfixturevalue("redis_client")
    redis_url = request.getfixturevalue("redis_url")
    rabbitmq = request.getfixturevalue("rabbitmq")
    redis_queue = "cc-nagios-%s" % uuid.uuid4().hex[:6]
    redis_client.rpush(redis_queue, "m1", "m2", "m3")
    amqp_queue = rabbitmq.queue_name("nagios")
    channel = rabbitmq.channel()
    channel.confirm_delivery()
    channel.queue_declare(amqp_queue)
    for body in (b"m1", b"m2"):
        channel.basic_publish("", amqp_queue, body)
    return [
        (["-b", redis_url, "-q", redis_queue, "-w", "10"], "OK", [], {redis_queue: 3}),
        (["-b", rabbitmq.url, "-q", amqp_queue, "-w", "10", "--orphan-state", "ok"], "OK", [],
         {amqp_queue: 2}),
    ]


def scenario_heartbeat(request, files):
    """The cron side too: trigger_celery_heartbeat runs as nagios (a crontab
    of the monitoring user), a real worker runs the heartbeat."""
    from celery_checks.store import heartbeats as store

    redis_url = request.getfixturevalue("redis_url")
    redis_client = request.getfixturevalue("redis_client")
    worker = request.getfixturevalue("celery_worker")
    queue = "cc-nagios-hb"
    worker.start(redis_url, queues=[queue])
    venv = request.getfixturevalue("nagios_install")
    tmp_path = request.getfixturevalue("tmp_path")
    trigger = run_as_nagios(venv / "bin" / "trigger_celery_heartbeat", "-b", redis_url,
                            "-q", queue, tmp_path=tmp_path)
    assert trigger.proc.returncode == 0, trigger.describe("trigger as nagios")
    assert trigger.proc.stdout.startswith("published 1 heartbeat"), trigger.describe("trigger")
    trigger.assert_no_writes()
    wait_for(lambda: redis_client.hexists(store.key_for(queue), "started"), 20,
             "the worker to start the heartbeat")
    return [(["-b", redis_url, "-q", queue], "OK", [], {queue + "_age": None,
                                                       queue + "_latency": None})]


def scenario_workers(request, files):
    """Both sources on Redis, ping on RabbitMQ (kombu's py-amqp path)."""
    redis_url = request.getfixturevalue("redis_url")
    rabbitmq = request.getfixturevalue("rabbitmq")
    workers = request.getfixturevalue("celery_worker")
    on_redis = workers.start(redis_url)
    on_amqp = workers.start(rabbitmq.url, queues=[rabbitmq.queue_name("nagios-w")])
    return [
        (["-b", redis_url, "--expect", on_redis.name], "OK", [],
         {"online": 1, "missing": 0, "rtt_" + on_redis.name: None}),
        (["-b", redis_url, "--expect", on_redis.name, "--source", "events"], "OK", [],
         {"online": 1, "missing": 0}),
        (["-b", rabbitmq.url, "--expect", on_amqp.name], "OK", [],
         {"online": 1, "missing": 0, "rtt_" + on_amqp.name: None}),
    ]


def scenario_tasks(request, files):
    """A real worker records what it ran; the check, as nagios, writes its
    state file (and nothing else) in a directory nagios owns, and reads it
    back on the second run."""
    from celery_checks.connect.redis import redis_client
    from celery_checks.store import tasks as store
    from tests.kit.producers import publish

    redis_url = request.getfixturevalue("redis_url")
    request.getfixturevalue("celery_worker").start(redis_url, queues=["cc-nagios-tasks"])
    publish(request.getfixturevalue("celery_apps")(redis_url), "cc-nagios-tasks", count=3)

    def succeeded():  # read as the check reads the store
        client = redis_client(redis_url)
        try:
            return store.read(client)[1].get("tests.add", {}).get("succeeded")
        finally:
            client.close()

    wait_for(lambda: succeeded() == 3, 20, "the worker to record 3 tasks")
    state = str(request.getfixturevalue("nagios_owned_dir") / "tasks.json")
    args = ["--store", redis_url, "-T", "tests.add", "--state-file", state]
    return [
        (args, "OK", ["1 task recorded; first run"], {"tests.add_succeeded": 3}, [state]),
        (args, "OK", ["1 task recorded: 0 runs in "], {"tests.add_failed_interval": 0}, [state]),
    ]


@pytest.fixture
def nagios_owned_dir():
    """A directory nagios owns (where a state file of its own goes)."""
    path = venvs.readable_tmpdir("celery-checks-nagios-state-")
    shutil.chown(path, NAGIOS, NAGIOS)
    yield path
    shutil.rmtree(path, ignore_errors=True)


SCENARIOS = {
    "check_celery_heartbeat": scenario_heartbeat,
    "check_celery_tasks": scenario_tasks,
    "check_celery_pulsefile": scenario_pulsefile,
    "check_celery_queue": scenario_queue,
    "check_celery_workers": scenario_workers,
}


@pytest.mark.parametrize("name", CHECKS)
def test_check_answers_correctly_as_nagios_and_writes_nothing(
        name, nagios_install, shared_dir, tmp_path, request):
    scenario = SCENARIOS.get(name)
    assert scenario, "add a scenario for %s to tests/test_nagios_user.py SCENARIOS" % name
    for args, state, fragments, perfdata, *allowed in scenario(request, shared_dir):
        before = _tree(nagios_install.parent), _tree(shared_dir)
        run = run_as_nagios(nagios_install / "bin" / name, *args, tmp_path=tmp_path)
        result = run.result.assert_state(state, *fragments)
        for label, value in perfdata.items():
            assert label in result.perfdata, result.describe("perfdata %r" % label)
            assert value is None or result.perfdata[label].value == value, \
                result.describe("perfdata %r == %r" % (label, value))
        run.assert_no_writes(*allowed)  # a check's own state file, if it keeps one
        assert (_tree(nagios_install.parent), _tree(shared_dir)) == before


@pytest.fixture(scope="session")
def nagios_plugin_dir():
    """The other Debian way: celery_checks/ copied into a site directory
    (here on PYTHONPATH; /usr/local/lib/python3.11/dist-packages on a real
    host), hiredis pip-installed beside it (--target), and the thin wrappers
    from checks/ into a plugin directory, run by /usr/bin/python3 with
    Debian's python3-* packages."""
    prerequisites.require("root", "nagios-user", "setpriv", "strace", "debian-python")
    base = venvs.readable_tmpdir("celery-checks-nagios-copy-")
    try:
        shutil.copytree(ROOT / "celery_checks", base / "site" / "celery_checks",
                        ignore=shutil.ignore_patterns("__pycache__"))
        venvs.install_hiredis(target=base / "site")
        shutil.copytree(ROOT / "checks", base / "plugins")
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("install", ["venv", "copy"])
@pytest.mark.parametrize("name", CHECKS)
def test_minimal_arguments_and_help_as_nagios_write_nothing(
        name, install, request, tmp_path):
    """--help and the contract's minimal arguments, from both kinds of
    install: same exit codes as for root, no write attempts (this covers a
    check before its scenario exists)."""
    if install == "venv":
        executable, env = request.getfixturevalue("nagios_install") / "bin" / name, {}
    else:
        base = request.getfixturevalue("nagios_plugin_dir")
        executable, env = base / "plugins" / name, {"PYTHONPATH": str(base / "site")}
    run = run_as_nagios(executable, "--help", tmp_path=tmp_path, extra_env=env)
    assert run.proc.returncode == 3 and "\nStates:\n" in run.proc.stdout, run.describe("--help")
    run.assert_no_writes()
    # The refused bytecode-cache writes really happened and were harmless.
    assert any("/__pycache__" in " ".join(paths) for _, paths, _ in run.attempts)
    run = run_as_nagios(executable, *minimal_args(name), tmp_path=tmp_path, extra_env=env)
    run.result.assert_well_formed()
    run.assert_no_writes()


def test_unreadable_directory_is_unknown_not_a_false_alarm(nagios_install, shared_dir, tmp_path):
    """Root reads everything; nagios does not. A pulse directory only the
    worker's user may enter is a permission problem (UNKNOWN), not a stale
    or missing pulse (CRITICAL)."""
    private = shared_dir / "private"
    private.mkdir(mode=0o700)
    (private / "worker.pulse").write_text("")
    run = run_as_nagios(nagios_install / "bin" / "check_celery_pulsefile",
                        "-f", private / "*.pulse", tmp_path=tmp_path)
    run.result.assert_unknown("ermission denied")
    run.assert_no_writes()


def test_strace_sees_a_write_attempt(nagios_install, shared_dir, tmp_path):
    """The write detector itself works: nagios's Python creating a file in a
    directory nagios owns is reported."""
    owned = shared_dir / "owned"
    owned.mkdir()
    shutil.chown(owned, NAGIOS, NAGIOS)
    target = owned / "probe"
    trace = tmp_path / "probe.log"
    subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=%file",
         "setpriv", "--reuid=%s" % NAGIOS, "--regid=%s" % NAGIOS, "--clear-groups", "--",
         str(nagios_install / "bin" / "python"), "-c", "open(%r, 'w').close()" % str(target)],
        check=True, env=dict(PLUGIN_ENV), cwd="/", capture_output=True,
    )
    assert target.exists()
    attempts = _write_attempts(trace.read_text())
    assert any(str(target) in paths for _, paths, _ in attempts), attempts
    assert NagiosRun([], None, 0, attempts).forbidden_writes()
