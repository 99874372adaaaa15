"""contrib/ proven by the software it is for: Icinga 2, Nagios 4, NRPE.

- ``icinga2 daemon -C`` loads contrib/icinga laid out the documented way
  (CheckCommands in the global zone, apply rules and hosts in the master
  zone) and must accept it; the example objects must come out as intended.
- A real Icinga 2, started here from a temporary directory, runs every
  example apply rule (queues, pulse files, heartbeat, inventory) against
  real Redis and real files; we read back what Icinga recorded
  (PerfdataWriter lines, then icinga2.state on exit): state, output, the
  command line and the perfdata Icinga parsed. So the command lines Icinga
  builds from the vars are ones the plugins accept, and the broker URL
  arrives through the environment.
- ``nagios4 -v`` validates contrib/nagios and contrib/nrpe/services.cfg,
  and a real Nagios 4 runs contrib/nagios's services for a host of ours
  (status.dat: state, output, perfdata).
- A real ``nrpe`` on a loopback port runs contrib/nrpe's commands for
  ``check_nrpe``: exit code and output arrive intact.
- Drift: every CheckCommand argument is an option in the plugin's --help,
  every option in --help has an argument, for every check in pyproject.

The daemons drop to the ``nagios`` user (NRPE refuses to run as root), so
the plugins they run come from a venv on /usr/bin/python3 with Debian's
python3-* packages (--system-site-packages), installed from this checkout
into a directory nagios can read, with hiredis at the declared minimum from
PyPI (Debian 12's predates its command packer): the way the README tells an
operator to install on Debian.
Needs root, like CI.
"""

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kit import prerequisites, project, venvs
from tests.kit.faults import closed_port
from tests.kit.producers import declare_on_redis
from tests.kit.project import ROOT
from tests.kit.waiting import port_open, wait_for
from tests.kit.plugin import parse_perfdata

# Its executables run from an install of its own, the same in every run
# of the suite (scripts/test --debian leaves it out).
pytestmark = pytest.mark.own_install

CHECKS = project.checks()
CONTRIB = ROOT / "contrib"
NAGIOS = "nagios"
ICINGA2 = "/usr/sbin/icinga2"
NAGIOS4 = "/usr/sbin/nagios4"
NRPE = "/usr/sbin/nrpe"
CHECK_NRPE = "/usr/lib/nagios/plugins/check_nrpe"


def _nagios_ids():
    entry = pwd.getpwnam(NAGIOS)
    return entry.pw_uid, entry.pw_gid


@pytest.fixture(scope="session")
def plugin_dir():
    """bin/ of a venv on /usr/bin/python3 (Debian's python3-* packages) with
    this project installed, readable and executable by nagios."""
    prerequisites.require("root", "nagios-user", "debian-python")
    with venvs.debian_venv("celery-checks-contrib-") as venv:
        yield venv / "bin"


@pytest.fixture
def daemon_dir():
    """A directory for a daemon's own files, outside pytest's tmp (mode
    700 under /tmp/pytest-of-root, which nagios cannot enter)."""
    path = venvs.readable_tmpdir("celery-checks-contrib-daemon-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def shared_dir():
    """A directory the nagios user can read, for pulse and broker files."""
    path = venvs.readable_tmpdir("celery-checks-contrib-files-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _stop(process, timeout=10):
    """SIGTERM our own daemon's main process (Icinga's umbrella process
    passes it on and waits for the daemon to save its state), then SIGKILL
    whatever of its process group is left."""
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group is empty: everything stopped
    if process.poll() is None:
        process.wait(5)


# ------------------------------------------------------------------ Icinga 2

ZONES = """\
object Endpoint NodeName { }
object Zone ZoneName { endpoints = [ NodeName ] }
object Zone "global-templates" { global = true }
"""

ICINGA_TOP = """\
const PluginDir = "/usr/lib/nagios/plugins"
const PluginContribDir = "{plugins}"
const NodeName = "master.test"
const ZoneName = "master"
include <itl>
include <plugins>
/* What Icinga's default conf.d/templates.conf provides, here fast. */
template Service "generic-service" {{
  max_check_attempts = 1
  check_interval = {interval}
  retry_interval = {interval}
}}
{extra}
"""


class Icinga:
    """A private Icinga 2 configuration tree: copies of contrib/icinga laid
    out as documented (the checkout may live where nagios cannot read, e.g.
    /root), plus our own top-level file; the nagios user owns it."""

    def __init__(self, base, plugins, interval="1m", extra="", zones=True):
        """``zones``: the documented distributed layout (commands in the
        global zone, the rest in the master zone), for -C with the agent
        example; else one standalone node including the files directly (a
        zone member without an ApiListener schedules no checks)."""
        self.base = base
        for name in ("var", "log", "cache", "spool", "run", "perfdata",
                     "zones.d/global-templates", "zones.d/master"):
            (base / name).mkdir(parents=True, exist_ok=True)
        if zones:
            shutil.copy(CONTRIB / "icinga" / "commands.conf", base / "zones.d/global-templates")
            for name in ("services.conf", "hosts.conf"):
                shutil.copy(CONTRIB / "icinga" / name, base / "zones.d/master")
            extra = ZONES + extra
        else:
            (base / "conf.d").mkdir()
            for name in ("commands.conf", "services.conf"):
                shutil.copy(CONTRIB / "icinga" / name, base / "conf.d")
            extra = 'include_recursive "conf.d"\n' + extra
        (base / "main.conf").write_text(ICINGA_TOP.format(
            plugins=plugins, interval=interval, extra=extra))
        uid, gid = _nagios_ids()
        for folder, dirs, files in os.walk(base):
            for name in [folder] + [os.path.join(folder, n) for n in dirs + files]:
                os.chown(name, uid, gid)

    def add(self, name, text):
        path = self.base / name
        path.write_text(text)
        os.chown(path, *_nagios_ids())

    def command(self, *args):
        base = self.base
        return [ICINGA2] + list(args) + [
            "-c", str(base / "main.conf"), "-DConfigDir=%s" % base,
            "-DZonesDir=%s" % (base / "zones.d"), "-DDataDir=%s" % (base / "var"),
            "-DLogDir=%s" % (base / "log"), "-DCacheDir=%s" % (base / "cache"),
            "-DSpoolDir=%s" % (base / "spool"), "-DInitRunDir=%s" % (base / "run"),
        ]

    def objects(self, *args):
        """``icinga2 object list`` of what the last -C run loaded."""
        proc = subprocess.run(
            [ICINGA2, "object", "list", "-DCacheDir=%s" % (self.base / "cache")] + list(args),
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def state(self):
        """icinga2.state: netstrings 'LEN:JSON,' -> {(type, name): update}."""
        import json

        raw = (self.base / "var" / "icinga2.state").read_bytes()
        objects, position = {}, 0
        while position < len(raw):
            colon = raw.index(b":", position)
            length = int(raw[position:colon])
            item = json.loads(raw[colon + 1:colon + 1 + length])
            objects[(item["type"], item["name"])] = item.get("update") or {}
            position = colon + 1 + length + 1
        return objects


def test_icinga_accepts_contrib_with_the_example_objects(daemon_dir):
    prerequisites.require("root", "icinga2")
    icinga = Icinga(daemon_dir, "/usr/lib/nagios/plugins")
    proc = subprocess.run(icinga.command("daemon", "-C"), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = icinga.objects("--type", "Service")
    services = set(re.findall(r"^Object '([^']+)' of type 'Service'", listed, re.M))
    assert services == {
        "redis.example.com!celery-queue celery", "redis.example.com!celery-queue mail",
        "redis.example.com!celery-heartbeat", "redis.example.com!celery-workers",
        "redis.example.com!celery-tasks", "worker1.example.com!celery-pulse",
    }, listed
    pulse = listed.split("Object 'worker1.example.com!celery-pulse'")[1].split("\nObject ")[0]
    assert re.search(r'command_endpoint = "worker1\.example\.com"', pulse), pulse
    commands = icinga.objects("--type", "CheckCommand", "--name", "celery_*")
    declared = {"celery_" + name[len("check_celery_"):] for name in CHECKS}
    assert set(re.findall(r"^Object '(celery_\w+)'", commands, re.M)) == declared


def test_icinga_rejects_a_broken_contrib_file(daemon_dir):
    """The validation above proves something: a mistake is caught."""
    prerequisites.require("root", "icinga2")
    icinga = Icinga(daemon_dir, "/usr/lib/nagios/plugins")
    icinga.add("zones.d/master/broken.conf",
               'apply Service "x" { check_command = "celery_queu"; assign where true }\n')
    proc = subprocess.run(icinga.command("daemon", "-C"), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and "celery_queu" in proc.stdout, proc.stdout


ICINGA_PERFDATA = """\
object CheckerComponent "checker" {{ }}
object PerfdataWriter "perfdata" {{
  service_perfdata_path = "{base}/perfdata/service-perfdata"
  service_temp_path = "{base}/spool/service-perfdata"
  host_perfdata_path = "{base}/perfdata/host-perfdata"
  host_temp_path = "{base}/spool/host-perfdata"
  rotation_interval = 1s
}}
"""

ICINGA_HOST = """\
object Host "broker.test" {{
  check_command = "dummy"
  enable_active_checks = false
  vars.celery_broker = "{broker}"
  vars.celery_transport_option = [ "global_keyprefix={prefix}" ]
  vars.celery_queues["work"] = {{ celery_queue_warning = 2, celery_queue_critical = "~:10" }}
  vars.celery_queues["idle"] = {{ celery_queue_critical = 5 }}
  vars.celery_pulse_files = [ "{pulse}/worker.pulse", "{pulse}/beat.pulse" ]
  vars.celery_pulsefile_verbose = 2
  vars.celery_heartbeat_queues = [ "hb-none" ]
  vars.celery_inventory = [ "nobody@nowhere.test" ]
  vars.celery_tasks_max_age = [ "reports.nightly=26h" ]
}}
"""


def perf_of(check_result):
    return parse_perfdata(" ".join(check_result["performance_data"]))


def _perfdata_lines(base):
    """{service name: {field: value}} from the PerfdataWriter's files."""
    found = {}
    for path in sorted((base / "perfdata").glob("service-perfdata*")):
        for line in path.read_text(errors="replace").splitlines():
            fields = dict(part.split("::", 1) for part in line.split("\t") if "::" in part)
            if "SERVICEDESC" in fields:
                found[fields["SERVICEDESC"]] = fields
    return found


@pytest.mark.slow
def test_icinga_runs_the_example_services(
        plugin_dir, shared_dir, daemon_dir, redis_url, redis_client):
    prerequisites.require("root", "icinga2")
    prefix = "cc7:"
    redis_client.rpush(prefix + "work", "m1", "m2", "m3")
    declare_on_redis(redis_client, "idle", prefix)  # a worker consumes it; empty
    (shared_dir / "worker.pulse").write_text('{"node": "w1@test", "pid": 1, "state": "running"}')
    (shared_dir / "beat.pulse").write_text("")
    stale = time.time() - 1000
    os.utime(shared_dir / "beat.pulse", (stale, stale))
    for path in shared_dir.iterdir():
        path.chmod(0o644)

    base = daemon_dir
    host = ICINGA_HOST.format(broker=redis_url, prefix=prefix, pulse=shared_dir)
    icinga = Icinga(base, plugin_dir, interval="1s", zones=False,
                    extra=ICINGA_PERFDATA.format(base=base) + host)
    log = base / "daemon.log"
    with open(log, "w") as handle:
        daemon = subprocess.Popen(icinga.command("daemon"), stdout=handle, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wanted = {"celery-queue work", "celery-queue idle", "celery-pulse",
                  "celery-heartbeat", "celery-workers", "celery-tasks"}

        def all_ran():
            seen = _perfdata_lines(base)
            return seen if wanted <= set(seen) else None

        lines = wait_for(all_ran, 30, "Icinga to run the six services", process=daemon, log=log)
    finally:
        _stop(daemon)
    assert daemon.returncode == 0, log.read_text()[-3000:]

    # What the PerfdataWriter was handed: the state and the raw perfdata.
    # WARNING for "work" also proves the broker URL arrived through the
    # environment: without it the plugin would count an empty default DB.
    assert lines["celery-queue work"]["SERVICESTATE"] == "WARNING"
    assert lines["celery-queue idle"]["SERVICESTATE"] == "OK"
    assert lines["celery-pulse"]["SERVICESTATE"] == "CRITICAL"
    work = parse_perfdata(lines["celery-queue work"]["SERVICEPERFDATA"])
    assert (work["work"].value, work["work"].warn, work["work"].crit) == (3, "2", "~:10")
    idle = parse_perfdata(lines["celery-queue idle"]["SERVICEPERFDATA"])
    assert (idle["idle"].value, idle["idle"].crit) == (0, "5")
    pulse = parse_perfdata(lines["celery-pulse"]["SERVICEPERFDATA"])
    assert set(pulse) == {"worker.pulse", "beat.pulse"}
    assert pulse["beat.pulse"].value >= 1000 and pulse["worker.pulse"].value < 60
    assert (pulse["worker.pulse"].warn, pulse["worker.pulse"].crit) == ("60", "180")

    # The other two apply rules build command lines the plugins accept too:
    # they judge (CRITICAL: nothing recorded, nobody answers), no UNKNOWN.
    assert lines["celery-heartbeat"]["SERVICESTATE"] == "CRITICAL"
    assert lines["celery-workers"]["SERVICESTATE"] == "CRITICAL"

    # What Icinga kept on exit: exit status, output, parsed perfdata.
    state = icinga.state()
    results = {name: state[("Service", "broker.test!" + name)]["last_check_result"]
               for name in wanted}
    work = results["celery-queue work"]
    assert work["exit_status"] == 1 and work["state"] == 1, work
    assert work["output"].startswith("CELERY_QUEUE WARNING"), work
    # No broker URL on the command line: it went through the environment.
    assert work["command"] == [str(plugin_dir / "check_celery_queue"),
                               "--critical", "~:10", "--queue", "work",
                               "--transport-option", "global_keyprefix=" + prefix,
                               "--warning", "2"], work["command"]
    # Icinga keeps the perfdata it parsed, re-rendered one item per string.
    perf = perf_of(work)
    assert (perf["work"].value, perf["work"].warn, perf["work"].crit) == (3, "2", "~:10")
    assert perf["unacked"].value == 0
    idle = results["celery-queue idle"]
    assert idle["exit_status"] == 0 and idle["output"].startswith("CELERY_QUEUE OK"), idle
    heartbeat = results["celery-heartbeat"]
    assert heartbeat["exit_status"] == 2, heartbeat
    assert heartbeat["output"].startswith("CELERY_HEARTBEAT CRITICAL - hb-none: "), heartbeat
    workers = results["celery-workers"]
    assert workers["exit_status"] == 2, workers
    assert workers["output"].startswith(
        "CELERY_WORKERS CRITICAL - 1 of 1 expected worker missing: nobody@nowhere.test"), workers
    assert "-v" in workers["command"] and perf_of(workers)["missing"].value == 1
    # The task check wrote its state to the default place, as nagios: it
    # judged (nothing recorded, the nightly never ran), no UNKNOWN.
    tasks = results["celery-tasks"]
    assert tasks["exit_status"] == 2, tasks
    assert tasks["output"].startswith("CELERY_TASKS CRITICAL - "), tasks
    assert "reports.nightly: never succeeded" in tasks["output"], tasks
    pulse = results["celery-pulse"]
    assert pulse["exit_status"] == 2, pulse
    assert "beat.pulse" in pulse["output"], pulse
    # celery_pulsefile_verbose = 2 became -vv: every file in the long output.
    assert "-vv" in pulse["command"] and "-v" not in pulse["command"], pulse["command"]
    assert "worker.pulse: " in pulse["output"] and "node w1@test" in pulse["output"], pulse
    perf = perf_of(pulse)
    assert set(perf) == {"worker.pulse", "beat.pulse"} and perf["beat.pulse"].uom == "s"
    assert perf["beat.pulse"].value >= 1000 and perf["worker.pulse"].value < 60


# ------------------------------------------------------------------ Nagios 4

NAGIOS_MINIMAL = """\
define timeperiod {
    timeperiod_name 24x7
    alias           always
    monday          00:00-24:00
    tuesday         00:00-24:00
    wednesday       00:00-24:00
    thursday        00:00-24:00
    friday          00:00-24:00
    saturday        00:00-24:00
    sunday          00:00-24:00
}
define command {
    command_name    notify-none
    command_line    /bin/true
}
define contact {
    contact_name                    admin
    host_notification_period        24x7
    service_notification_period     24x7
    host_notification_options       n
    service_notification_options    n
    host_notification_commands      notify-none
    service_notification_commands   notify-none
}
define contactgroup {
    contactgroup_name   admins
    members             admin
}
define host {
    name                    generic-host
    max_check_attempts      3
    check_period            24x7
    contact_groups          admins
    notification_period     24x7
    register                0
}
define service {
    name                    generic-service
    max_check_attempts      3
    check_interval          1
    retry_interval          1
    check_period            24x7
    notification_period     24x7
    contact_groups          admins
    register                0
}
"""

NAGIOS_FILES = ["nagios/commands.cfg", "nagios/services.cfg", "nagios/hosts.cfg",
                "nrpe/services.cfg"]

# A host of ours in contrib's celery-brokers hostgroup.
NAGIOS_HOST = """\
define host {{
    use                     generic-host
    host_name               broker.test
    address                 127.0.0.1
    hostgroups              celery-brokers
    active_checks_enabled   0
    _CELERY_BROKER_FILE     {broker_file}
}}
"""


def nagios_config(base, plugins, files, extra_objects="", running=False):
    """nagios.cfg in ``base`` reading ``files`` of contrib/; with ``running``
    the settings for a daemon that checks every second, at once."""
    (base / "minimal.cfg").write_text(NAGIOS_MINIMAL + extra_objects)
    (base / "resource.cfg").write_text("$USER1$=%s\n" % plugins)
    lines = ["cfg_file=%s" % (base / "minimal.cfg")]
    for name in files:
        # Copies: the checkout may live where nagios cannot read (/root).
        copy = base / name.replace("/", "-")
        shutil.copy(CONTRIB / name, copy)
        lines.append("cfg_file=%s" % copy)
    lines += ["%s=%s" % (key, base / value) for key, value in (
        ("log_file", "nagios.log"), ("resource_file", "resource.cfg"),
        ("check_result_path", "results"), ("lock_file", "nagios.lock"),
        ("temp_file", "nagios.tmp"), ("temp_path", ""), ("status_file", "status.dat"),
        ("object_cache_file", "objects.cache"), ("precached_object_file", "objects.precache"),
        ("query_socket", "nagios.qh"))]
    lines += ["nagios_user=%s" % NAGIOS, "nagios_group=%s" % NAGIOS,
              "illegal_macro_output_chars=`~$&|'\"<>"]
    if running:
        lines += ["interval_length=1", "status_update_interval=1",
                  "service_inter_check_delay_method=n", "host_inter_check_delay_method=n",
                  "max_service_check_spread=1", "check_result_reaper_frequency=1",
                  "retain_state_information=0", "check_external_commands=0",
                  "enable_notifications=0"]
    (base / "results").mkdir()
    (base / "nagios.cfg").write_text("\n".join(lines) + "\n")
    uid, gid = _nagios_ids()
    for path in [base] + list(base.iterdir()):
        os.chown(path, uid, gid)
    return base / "nagios.cfg"


def test_nagios_accepts_contrib(daemon_dir):
    prerequisites.require("root", "nagios4")
    config = nagios_config(daemon_dir, "/usr/lib/nagios/plugins", NAGIOS_FILES)
    proc = subprocess.run([NAGIOS4, "-v", str(config)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Total Warnings: 0" in proc.stdout and "Total Errors:   0" in proc.stdout, proc.stdout
    # Every example service was read: 5 on the broker, 1 through NRPE.
    assert "Checked 6 services." in proc.stdout and "Checked 2 hosts." in proc.stdout, proc.stdout


def _nagios_status(path):
    """{service description: {key: value}} from a Nagios status.dat."""
    services = {}
    if not path.exists():
        return services
    for block in re.findall(r"^servicestatus \{\n(.*?)^\t\}", path.read_text(), re.M | re.S):
        fields = dict(line.strip().split("=", 1) for line in block.splitlines() if "=" in line)
        services[fields["service_description"]] = fields
    return services


@pytest.mark.slow
def test_nagios_runs_the_example_services(
        plugin_dir, shared_dir, daemon_dir, redis_url, redis_client):
    """A real Nagios 4 runs contrib/nagios/services.cfg's five services for a
    host of ours: $USER1$, the _CELERY_BROKER_FILE host macro and $ARG1$
    expand into command lines the plugins accept."""
    prerequisites.require("root", "nagios4")
    redis_client.rpush("celery", *["m%d" % i for i in range(150)])
    declare_on_redis(redis_client, "mail")  # a worker consumes it; empty
    broker_file = shared_dir / "celery-broker"
    broker_file.write_text(redis_url + "\n")
    broker_file.chmod(0o644)
    config = nagios_config(daemon_dir, plugin_dir, ["nagios/commands.cfg", "nagios/services.cfg"],
                           NAGIOS_HOST.format(broker_file=broker_file), running=True)
    log = daemon_dir / "daemon.log"
    status = daemon_dir / "status.dat"
    wanted = {"celery queue celery", "celery queue mail", "celery heartbeat", "celery workers",
              "celery tasks"}
    with open(log, "w") as handle:
        daemon = subprocess.Popen([NAGIOS4, str(config)], stdout=handle,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def all_checked():
            # Nagios removes status.dat on exit: read it while it runs.
            seen = _nagios_status(status)
            done = {name for name, fields in seen.items() if fields.get("has_been_checked") == "1"}
            return seen if wanted <= done else None

        services = wait_for(all_checked, 30, "Nagios to run the five services", process=daemon, log=log)
    finally:
        _stop(daemon)

    celery = services["celery queue celery"]
    assert celery["current_state"] == "1", celery
    assert celery["plugin_output"].startswith("CELERY_QUEUE WARNING"), celery
    perf = parse_perfdata(celery["performance_data"])
    assert (perf["celery"].value, perf["celery"].warn, perf["celery"].crit) == (150, "100", "1000")
    mail = services["celery queue mail"]
    perf = parse_perfdata(mail["performance_data"])
    assert mail["current_state"] == "0" and perf["mail"].value == 0
    assert (perf["oldest_mail"].value, perf["oldest_mail"].warn) == (0, "300")
    heartbeat = services["celery heartbeat"]
    assert heartbeat["current_state"] == "2", heartbeat
    assert heartbeat["plugin_output"].startswith("CELERY_HEARTBEAT CRITICAL - "), heartbeat
    workers = services["celery workers"]
    assert workers["current_state"] == "2", workers
    assert workers["plugin_output"].startswith(
        "CELERY_WORKERS CRITICAL - 3 of 3 expected workers missing"), workers
    assert "MISSING celery@worker*.example.com: 0 of 2 online" in workers["long_plugin_output"]
    tasks = services["celery tasks"]
    assert tasks["current_state"] == "2", tasks
    assert tasks["plugin_output"].startswith("CELERY_TASKS CRITICAL - "), tasks


# ---------------------------------------------------------------------- NRPE

NRPE_CFG = """\
server_address=127.0.0.1
server_port={port}
nrpe_user={user}
nrpe_group={user}
allowed_hosts=127.0.0.1
dont_blame_nrpe=0
command_timeout=60
include={snippet}
"""


@pytest.mark.slow
def test_nrpe_runs_the_contrib_commands_for_check_nrpe(
        plugin_dir, shared_dir, daemon_dir, redis_url, redis_client):
    """contrib/nrpe/celery-checks.cfg with the paths of this machine: the
    plugin directory, the broker file and the pulse directory."""
    prerequisites.require("root", "nrpe")
    redis_client.rpush("celery", *["m%d" % i for i in range(150)])
    broker_file = shared_dir / "celery-broker"
    broker_file.write_text(redis_url + "\n")
    for name in ("worker.pulse", "beat.pulse"):
        (shared_dir / name).write_text("")
    for path in shared_dir.iterdir():
        path.chmod(0o644)
    snippet = (CONTRIB / "nrpe" / "celery-checks.cfg").read_text()
    for original, here in (("/usr/lib/nagios/plugins/", "%s/" % plugin_dir),
                           ("/etc/nagios/celery-broker", str(broker_file)),
                           ("/run/celery/", "%s/" % shared_dir)):
        assert original in snippet
        snippet = snippet.replace(original, here)
    (daemon_dir / "celery-checks.cfg").write_text(snippet)
    port = closed_port()
    (daemon_dir / "nrpe.cfg").write_text(NRPE_CFG.format(
        port=port, user=NAGIOS, snippet=daemon_dir / "celery-checks.cfg"))
    log = daemon_dir / "nrpe.log"
    with open(log, "w") as handle:
        daemon = subprocess.Popen([NRPE, "-c", str(daemon_dir / "nrpe.cfg"), "-f"],
                                  stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: port_open(port), 10, "nrpe to listen on port %d" % port, process=daemon, log=log)

        def ask(command):
            # check_nrpe -t 15 as in contrib/nrpe/services.cfg
            return subprocess.run([CHECK_NRPE, "-H", "127.0.0.1", "-p", str(port), "-t", "15",
                                   "-c", command], capture_output=True, text=True, timeout=30)

        pulse = ask("check_celery_pulse")
        assert pulse.returncode == 0, pulse
        assert pulse.stdout.startswith("CELERY_PULSEFILE OK - 2 pulse files fresh"), pulse
        assert {p.label for p in parse_perfdata(pulse.stdout.split("|", 1)[1]).values()} == {
            "worker.pulse", "beat.pulse"}

        queue = ask("check_celery_queue")
        assert queue.returncode == 1, queue
        # Intact: exactly what the command prints when run directly.
        command = re.search(r"^command\[check_celery_queue\]=(.*)$", snippet, re.M).group(1)
        direct = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
        assert (queue.returncode, queue.stdout) == (direct.returncode, direct.stdout)
        perf = parse_perfdata(queue.stdout.split("|", 1)[1])
        assert (perf["celery"].value, perf["celery"].warn, perf["celery"].crit) == (150, "100", "1000")

        # The other three commands run too, and judge (nothing to find here).
        heartbeat = ask("check_celery_heartbeat")
        assert heartbeat.returncode == 2, heartbeat
        assert heartbeat.stdout.startswith("CELERY_HEARTBEAT CRITICAL - celery: "), heartbeat
        tasks = ask("check_celery_tasks")
        assert tasks.returncode == 2, tasks
        assert tasks.stdout.startswith("CELERY_TASKS CRITICAL - "), tasks
        workers = ask("check_celery_workers")
        assert workers.returncode == 2, workers
        assert workers.stdout.startswith("CELERY_WORKERS CRITICAL - 1 of 1 expected worker "
                                         "missing: celery@worker1.example.com"), workers

        stale = time.time() - 1000
        os.utime(shared_dir / "beat.pulse", (stale, stale))
        pulse = ask("check_celery_pulse")
        assert pulse.returncode == 2, pulse
        assert pulse.stdout.startswith("CELERY_PULSEFILE CRITICAL - ") and "beat.pulse" in pulse.stdout
    finally:
        _stop(daemon)


# ------------------------------------------------------- the trigger's schedule

def _scheduled_commands():
    """The trigger's command line from contrib/cron and contrib/systemd."""
    cron = (CONTRIB / "cron" / "celery-checks").read_text()
    line = [l for l in cron.splitlines() if l and not l.startswith("#") and "=" not in l[:20]]
    assert len(line) == 1, cron
    minute, hour, day, month, weekday, user, command = line[0].split(None, 6)
    assert (minute, hour, day, month, weekday, user) == ("*", "*", "*", "*", "*", NAGIOS)
    unit = (CONTRIB / "systemd" / "celery-heartbeat-trigger.service").read_text()
    assert re.search(r"^User=%s$" % NAGIOS, unit, re.M)
    timer = (CONTRIB / "systemd" / "celery-heartbeat-trigger.timer").read_text()
    assert re.search(r"^OnCalendar=minutely$", timer, re.M)
    return {"cron": command, "systemd": re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)}


@pytest.mark.parametrize("schedule", ["cron", "systemd"])
def test_scheduled_trigger_publishes_as_nagios(
        schedule, plugin_dir, shared_dir, redis_url, redis_client):
    """The scheduled command line, run as the user it is scheduled for,
    publishes a heartbeat into each queue; nothing on stderr (what cron
    would mail), its one success line is what cron sends to /dev/null."""
    broker_file = shared_dir / "celery-broker"
    broker_file.write_text(redis_url + "\n")
    broker_file.chmod(0o644)
    for queue in ("celery", "mail"):  # declared by the workers consuming them
        declare_on_redis(redis_client, queue)
    command = _scheduled_commands()[schedule]
    for original, here in (("/usr/local/bin/", "%s/" % plugin_dir),
                           ("/etc/nagios/celery-broker", str(broker_file))):
        assert original in command
        command = command.replace(original, here)
    proc = subprocess.run(
        ["setpriv", "--reuid=%s" % NAGIOS, "--regid=%s" % NAGIOS, "--clear-groups", "--",
         "/bin/sh", "-c", command.replace(" >/dev/null", "")],
        capture_output=True, text=True, timeout=60, cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert proc.returncode == 0 and not proc.stderr, proc
    assert proc.stdout.startswith("published 2 heartbeat"), proc
    queues = re.findall(r"-q (\S+)", command)
    assert queues == ["celery", "mail"]
    assert [redis_client.llen(queue) for queue in queues] == [1, 1]


# --------------------------------------------------------------------- drift

BIN = Path(sys.executable).parent
OPTION_LINE = re.compile(r"^  (?:-\w(?: (\S+))?, )?(--[a-z][\w-]*)(?: (\S+))?(?:\s{2,}(.*))?$")
# Options that reach the plugin another way than an argument.
THROUGH_ENV = {"--broker": "CELERY_BROKER_URL", "--store": "CELERY_CHECKS_STORE_URL",
               "--management-url": "CELERY_CHECKS_MANAGEMENT_URL"}
NOT_MAPPED = {"--help", "--version"}


def help_options(check):
    """{--option: (takes a value, repeatable)} from the plugin's --help."""
    text = subprocess.run([str(BIN / check), "--help"], capture_output=True, text=True,
                          timeout=60).stdout
    options, current = {}, None
    for line in text.split("\nCheck:\n", 1)[0].splitlines():
        match = OPTION_LINE.match(line)
        if match:
            current = match.group(2)
            options[current] = [bool(match.group(1) or match.group(3)), match.group(4) or ""]
        elif current and line.startswith("      "):
            options[current][1] += " " + line.strip()
        else:
            current = None
    return {name: (value, "repeatable" in description)
            for name, (value, description) in options.items()}


def check_commands():
    """{command name: its block of text} from contrib/icinga/commands.conf."""
    text = (CONTRIB / "icinga" / "commands.conf").read_text()
    blocks = re.split(r'^object CheckCommand "', text, flags=re.M)[1:]
    return {block.split('"', 1)[0]: block for block in blocks}


def arguments(block):
    """{key: its { ... } body} of a CheckCommand's arguments."""
    return dict(re.findall(r'^\t\t"([^"]+)" = \{\n(.*?)^\t\t\}', block, re.M | re.S))


def test_help_parser_sees_the_options():
    options = help_options("check_celery_pulsefile")
    assert options["--file"] == (True, True)
    assert options["--min-files"] == (True, False)
    assert options["--verbose"] == (False, False)


@pytest.mark.parametrize("check", CHECKS)
def test_check_command_and_plugin_options_match(check):
    name = "celery_" + check[len("check_celery_"):]
    commands = check_commands()
    assert name in commands, "add a CheckCommand %r for %s to contrib/icinga/commands.conf" % (
        name, check)
    block = commands[name]
    assert 'command = [ PluginContribDir + "/%s" ]' % check in block
    args = arguments(block)
    options = help_options(check)
    assert options, "no options parsed from %s --help" % check

    for key, body in args.items():
        option = "--verbose" if key in ("-v", "-vv", "-vvv") else key
        assert option in options and option not in THROUGH_ENV, \
            "%s argument %s is not an option of %s --help" % (name, key, check)
    for option, (takes_value, repeatable) in options.items():
        var = "$%s_%s$" % (name, option[2:].replace("-", "_"))
        if option in NOT_MAPPED:
            continue
        if option in THROUGH_ENV:
            assert 'env.%s = "%s"' % (THROUGH_ENV[option], var) in block, (name, option)
            continue
        if option == "--verbose":
            for level, key in enumerate(("-v", "-vv", "-vvv"), 1):
                assert 'set_if = {{ macro("%s") == %d }}' % (var, level) in args.get(key, ""), \
                    (name, key)
            continue
        assert option in args, "%s has no argument for %s %s" % (name, check, option)
        body = args[option]
        assert "description = " in body or option == "--verbose", (name, option)
        if takes_value:
            assert 'value = "%s"' % var in body, (name, option, body)
        else:
            assert 'set_if = "%s"' % var in body, (name, option, body)
        assert ("repeat_key = true" in body) == repeatable, (name, option, body)
