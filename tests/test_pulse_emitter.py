"""The pulse emitter (celery_checks.worker.pulse) in real worker and beat processes,
judged by check_celery_pulsefile run as a process.

Workers write every 0.5 s here, so "fresh" is judged with -w 2 -c 4 and a
stopped loop shows within a few seconds.
"""

import json
import logging
import os
import socket
import time

import pytest
from celery import Celery

from celery_checks.worker import pulse as emitter
from tests.kit import prerequisites
from tests.kit.plugin import run_check
from tests.kit.redis_servers import RedisServer
from tests.kit.waiting import wait_for

INTERVAL = "0.5"


def check(*args):
    return run_check("check_celery_pulsefile", *[str(a) for a in args])


def pulse_env(path, interval=INTERVAL, key="CELERY_CHECKS_PULSE_FILE"):
    return {key: str(path), "CELERY_CHECKS_PULSE_INTERVAL": interval}


def age(path):
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return float("inf")


def content(path):
    return json.loads(path.read_text())  # never half a file: it is replaced atomically


def written_after(path, moment):
    """The file's content once it was written after ``moment`` (epoch)."""
    def fresh():
        try:
            data = content(path)
        except FileNotFoundError:
            return None
        return data if data["time"] > moment else None
    return fresh


def short_name(worker):
    return worker.name.split("@")[0]


def client(broker_url):
    return Celery("pulse-test-client", broker=broker_url, set_as_current=False)


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of our own on a free loopback port, to take away."""
    prerequisites.require("redis-server")
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


# ------------------------------------------------------------ real processes

@pytest.mark.slow
def test_two_workers_one_file_each_stale_on_sigstop_stopped_on_shutdown(celery_worker, redis_url, tmp_path):
    directory = tmp_path / "run" / "celery"  # does not exist yet: the emitter creates it
    env = pulse_env(directory / "%n.pulse")
    prefork = celery_worker.start(redis_url, pool="prefork", env=env)
    threads = celery_worker.start(redis_url, pool="threads", concurrency=2, env=env)
    files = {prefork: directory / (short_name(prefork) + ".pulse"),
             threads: directory / (short_name(threads) + ".pulse")}
    for worker, path in files.items():
        data = wait_for(written_after(path, 0), 10, path)
        assert data["node"] == worker.name and data["pid"] == worker.pid
        assert data["state"] == "running" and data["celery"][0].isdigit()
    assert sorted(os.listdir(directory)) == sorted(p.name for p in files.values())  # no temp file

    pattern = str(directory / "*.pulse")
    result = check("-f", pattern, "--min-files", "2", "-w", "2", "-c", "4", "-v")
    result.assert_ok("2 pulse files fresh")
    assert sorted(result.perfdata) == sorted(p.name for p in files.values())
    assert any("node %s" % prefork.name in line and "state running" in line
               for line in result.long_output), result.long_output

    # SIGSTOP stops the main process's loop: its file goes stale, the other stays fresh.
    with prefork.paused():
        wait_for(lambda: age(files[prefork]) > 2.2, 8, "a stale pulse")
        # -c far off: a busy machine may take seconds to run the check
        result = check("-f", pattern, "-w", "2", "-c", "60")
        result.assert_warning("%s is" % files[prefork], "> 2s")
        assert result.perfdata[files[threads].name].value < 2
        check("-f", files[prefork], "-w", "1", "-c", "2").assert_critical("> 2s")
    resumed = time.time()
    wait_for(written_after(files[prefork], resumed), 5, "the pulse after SIGCONT")
    check("-f", files[prefork], "-w", "2", "-c", "4").assert_ok()

    # Clean shutdown marks the file stopped: CRITICAL at once, however fresh.
    prefork.stop()
    assert prefork.process.returncode == 0
    assert content(files[prefork])["state"] == "stopped"
    check("-f", files[prefork], "-w", "2", "-c", "4").assert_critical(
        "%s says %s stopped" % (files[prefork], prefork.name))
    assert sorted(os.listdir(directory)) == sorted(p.name for p in files.values())


@pytest.mark.slow
def test_gevent_worker_pulses_goes_stale_on_sigstop_and_says_stopped(celery_worker, redis_url, tmp_path):
    """gevent runs no hub: the pulse comes from the polling loop's cycle."""
    path = tmp_path / "gevent.pulse"
    worker = celery_worker.start(redis_url, pool="gevent", concurrency=4, env=pulse_env(path))
    data = wait_for(written_after(path, 0), 10, path)
    assert data["node"] == worker.name and data["state"] == "running"
    check("-f", path, "-w", "3", "-c", "6").assert_ok()
    with worker.paused():
        wait_for(lambda: age(path) > 3.2, 10, "a stale pulse")
        check("-f", path, "-w", "3", "-c", "60").assert_warning("> 3s")
    wait_for(written_after(path, time.time()), 6, "the pulse after SIGCONT")
    worker.stop()
    assert content(path)["state"] == "stopped"
    check("-f", path).assert_critical("stopped")


@pytest.mark.slow
@pytest.mark.parametrize("pool,blocked", [("solo", True), ("threads", False)])
def test_busy_worker_solo_blocks_the_pulse_threads_does_not(celery_worker, redis_url, tmp_path, pool, blocked):
    path = tmp_path / "worker.pulse"
    worker = celery_worker.start(redis_url, pool=pool, concurrency=2, env=pulse_env(path))
    wait_for(written_after(path, 0), 10, path)
    app = client(redis_url)
    try:
        app.send_task("tests.sleep", args=[3])
    finally:
        app.close()
    wait_for(lambda: "tests.sleep" in worker.log() and "received" in worker.log(), 10, "the task")
    oldest = 0.0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and "succeeded" not in worker.log():
        oldest = max(oldest, age(path))
        time.sleep(0.1)
    if blocked:
        # solo runs the task on the loop itself: no pulse while it runs.
        assert oldest > 2.0, "pulse kept fresh (%.2fs) while the solo loop ran a task" % oldest
        wait_for(lambda: "succeeded" in worker.log(), 10, "the task to finish")
        wait_for(lambda: age(path) < 1, 5, "the pulse to resume")
    else:
        assert oldest < 2.0, "threads pool: busy threads must not stop the loop (%.2fs)" % oldest


@pytest.mark.slow
def test_not_consuming_or_disconnected_worker_goes_stale_and_recovers(celery_worker, private_redis, tmp_path):
    path = tmp_path / "%h" / "%n.pulse"
    worker = celery_worker.start(private_redis.url(), pool="solo", env=pulse_env(path))
    path = tmp_path / socket.gethostname() / (short_name(worker) + ".pulse")
    wait_for(written_after(path, 0), 10, path)

    # The broker goes away: the worker lives on, reconnecting, but its pulse stops.
    private_redis.stop()
    wait_for(lambda: age(path) > 2.2, 8, "a stale pulse without a broker")
    assert worker.process.poll() is None
    check("-f", path, "-w", "2", "-c", "60").assert_warning("> 2s")
    assert "state running" in " ".join(check("-f", path, "-v").long_output)  # stale, not stopped

    moment = time.time()
    private_redis.start()
    wait_for(written_after(path, moment), 20, "the pulse after reconnecting")
    check("-f", path, "-w", "2", "-c", "4").assert_ok()

    # Connected, but `celery control cancel_consumer` left it consuming nothing.
    # (After the reconnect: Celery 5.2's add_consumer does not survive one.)
    app = client(private_redis.url())
    try:
        assert app.control.cancel_consumer("celery", destination=[worker.name], reply=True, timeout=5)
        wait_for(lambda: age(path) > 2.2, 8, "a stale pulse after cancel_consumer")
        check("-f", path, "-w", "1", "-c", "2").assert_critical("> 2s")
        moment = time.time()
        assert app.control.add_consumer("celery", destination=[worker.name], reply=True, timeout=5)
        wait_for(written_after(path, moment), 5, "the pulse after add_consumer")
    finally:
        app.close()


@pytest.mark.slow
def test_beat_pulse_fresh_while_ticking_stale_when_stopped(celery_worker, redis_url, tmp_path):
    path = tmp_path / "%n-%h.pulse"
    beat = celery_worker.start(redis_url, command="beat",
                               env=pulse_env(path, key="CELERY_CHECKS_BEAT_PULSE_FILE"))
    path = tmp_path / ("beat-%s.pulse" % socket.gethostname())
    first = wait_for(written_after(path, 0), 10, path)
    assert first["node"] == "beat@" + socket.gethostname() and first["pid"] == beat.pid
    assert first["state"] == "running"
    # No periodic task at all: beat would sleep 300 s; the pulse makes it tick.
    wait_for(written_after(path, first["time"] + 0.9), 5, "a later beat pulse")
    check("-f", path, "-w", "2", "-c", "4", "-v").assert_ok()

    with beat.paused():
        wait_for(lambda: age(path) > 2.2, 8, "a stale beat pulse")
        check("-f", path, "-w", "2", "-c", "60").assert_warning("> 2s")

    beat.stop()
    assert content(path)["state"] == "stopped"
    check("-f", path, "-w", "2", "-c", "4").assert_critical("stopped")


@pytest.mark.slow
def test_unwritable_path_logged_once_worker_keeps_working(celery_worker, redis_url, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the pulse directory should be")
    path = blocker / "worker.pulse"
    worker = celery_worker.start(redis_url, pool="solo", env=pulse_env(path))
    app = client(redis_url)
    try:
        app.send_task("tests.add", args=[2, 2])
    finally:
        app.close()
    wait_for(lambda: "succeeded" in worker.log(), 10, "the task to succeed")
    time.sleep(1.5)  # several more intervals of failing writes
    assert worker.log().count("cannot write pulse file %s" % path) == 1, worker.log()
    assert "Traceback" not in worker.log()
    check("-f", path).assert_critical("is missing")

    # Once the path can be written the pulse comes back, and says so once.
    blocker.unlink()
    wait_for(written_after(path, 0), 5, "the pulse once the directory can be made")
    assert worker.log().count("pulse file %s written again" % path) == 1
    check("-f", path, "-w", "2", "-c", "4").assert_ok()
    assert worker.process.poll() is None


@pytest.mark.slow
def test_polling_loop_without_event_loop_writes_the_pulse(celery_worker, tmp_path):
    """memory:// has no async support: the worker runs synloop, no hub."""
    path = tmp_path / "worker.pulse"
    worker = celery_worker.start("memory://", pool="solo", env=pulse_env(path))
    first = wait_for(written_after(path, 0), 10, path)
    # synloop waits up to 2 s for messages per cycle, so allow for that.
    wait_for(written_after(path, first["time"] + 0.4), 6, "a second write from the loop")
    worker.stop()
    assert content(path)["state"] == "stopped"


@pytest.mark.slow
def test_unconfigured_worker_writes_nothing(celery_worker, redis_url, tmp_path):
    worker = celery_worker.start(redis_url, pool="solo", extra_args=("-l", "DEBUG"))
    worker.stop()
    assert "Consumer: Starting Tasks" in worker.log()  # steps started are logged...
    assert "Starting celery-checks pulse" not in worker.log()  # ...ours is not one
    assert not list(tmp_path.glob("*.pulse"))


# ------------------------------------------------------- configuration logic

class DjangoSettings:
    """What config_from_object('django.conf:settings', ...) reads: attributes."""
    CELERY_BROKER_URL = "redis://redis.example/0"
    CELERY_CHECKS_PULSE_FILE = "/run/celery/%n-%h.pulse"
    CELERY_CHECKS_PULSE_INTERVAL = "2.5"
    CELERY_CHECKS_BEAT_PULSE_FILE = "/run/celery/%n.pulse"
    CHECKS_PULSE_FILE = "/not/namespaced"  # ignored: no CELERY_ prefix


def test_django_settings_reach_app_conf_through_the_namespace():
    app = Celery("django-like", set_as_current=False)
    emitter.register_pulse(app)  # install() may run before the settings load
    app.config_from_object(DjangoSettings, namespace="CELERY")
    assert app.conf.checks_pulse_file == "/run/celery/%n-%h.pulse"
    worker = emitter.pulse_for(app, emitter.WORKER_KEY, "w1@node.example.org")
    assert worker.path == "/run/celery/w1-node.example.org.pulse"
    assert worker.interval == 2.5
    beat = emitter.pulse_for(app, emitter.BEAT_KEY, "beat@node")
    assert beat.path == "/run/celery/beat.pulse"


def test_nothing_configured_means_no_pulse():
    app = Celery("plain", set_as_current=False)
    assert emitter.pulse_for(app, emitter.WORKER_KEY, "w1@h") is None
    assert emitter.pulse_for(app, emitter.BEAT_KEY, "beat@h") is None


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_bad_interval_falls_back_to_default_and_says_so(value, caplog):
    app = Celery("bad", set_as_current=False)
    app.conf.checks_pulse_file = "/tmp/x.pulse"
    app.conf.checks_pulse_interval = value
    with caplog.at_level(logging.ERROR):
        assert emitter.pulse_for(app, emitter.WORKER_KEY, "w@h").interval == emitter.DEFAULT_INTERVAL
    assert "checks_pulse_interval" in caplog.text


def test_unknown_placeholder_disables_the_pulse_with_an_error(caplog):
    app = Celery("bad", set_as_current=False)
    app.conf.checks_pulse_file = "/tmp/%q.pulse"
    with caplog.at_level(logging.ERROR):
        assert emitter.pulse_for(app, emitter.WORKER_KEY, "w@h") is None
    assert "checks_pulse_file" in caplog.text


def test_write_is_atomic_json_and_failures_are_logged_once(tmp_path, caplog):
    target = tmp_path / "deep" / "er" / "w.pulse"
    pulse = emitter.PulseWriter(str(target), "w@h", 1.0)
    assert pulse.write("running")  # creates the missing directories
    data = content(target)
    assert set(data) == {"node", "pid", "time", "state", "celery"}
    assert (data["node"], data["pid"], data["state"]) == ("w@h", os.getpid(), "running")
    assert os.listdir(target.parent) == ["w.pulse"]

    blocked = emitter.PulseWriter(str(tmp_path / "deep" / "er" / "w.pulse" / "x"), "w@h", 1.0)
    with caplog.at_level(logging.INFO):
        assert not blocked.write() and not blocked.write() and not blocked.write()
    assert caplog.text.count("cannot write pulse file") == 1
