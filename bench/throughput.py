"""What the task records (check_celery_tasks) cost inside a worker: trivial
tasks per second with and without them.

Each round fills a queue of our Redis with N ``tests.add`` messages (no
worker consuming), then starts a real ``celery worker`` on tests/tasks_app.py
(solo pool: the recording's work shares the one thread that runs the tasks,
the least favourable case; ``-l WARNING``: no log line per task to hide its
cost behind), and times the queue's drain from the first message taken to
the last: rate = messages / seconds; and the worker process's CPU time
(user + system, /proc) over the same stretch, per task: on a shared
machine the steadier figure, since load from elsewhere stretches the wall
time, not the CPU time. The variants alternate round by round
("without": ``checks_tasks_record = False``, nothing connected; "with": the
default), so load from elsewhere hits both alike.

On a loaded shared machine both figures swing by more than the few per cent
they are to show. So the recording's own cost is also measured where load
cannot reach it: the CPU time (process_time, best of several loops) of
Celery's own tracer running a trivial task in one process, with and without
the records' signal handlers (TRACE below). For a worker that is busy with
CPU, tasks per second go as 1 / CPU per task, so the share of tasks per
second the recording costs is added / (worker CPU per task + added): the
budget is judged on that estimate, the drain's own ratios shown beside it.
"""

import statistics
import time

from bench.measure import log

N = 10000
TRACE_LOOPS = 20000
# argv[1]: "1" records, "0" does not. Prints the best seconds per task.
TRACE = r"""
import sys, time
from celery import Celery, signals
from celery.app.trace import build_tracer
import celery_checks

app = Celery("bench-trace", broker="redis://127.0.0.1:1/0", set_as_current=False)
app.conf.checks_tasks_record = sys.argv[1] == "1"
app.conf.checks_tasks_flush_interval = 3600  # the handlers' cost, not the store's
celery_checks.install(app)

@app.task(name="bench.add")
def add(x, y):
    return x + y

app.finalize()
signals.worker_init.send(sender=type("Worker", (), {"app": app})())
tracer = build_tracer(add.name, add, eager=False, propagate=False, app=app)
request = {"id": "x", "delivery_info": {}}
best = None
for _ in range(5):
    start = time.process_time()
    for number in range(%d):
        tracer("t%%d" %% number, (1, 2), {}, request)
    spent = (time.process_time() - start) / %d
    best = spent if best is None else min(best, spent)
print(best)
""" % (TRACE_LOOPS, TRACE_LOOPS)
TICK = float(__import__("os").sysconf("SC_CLK_TCK"))
VARIANTS = (("without", "0"), ("with", "1"))
KEY = "throughput"


class Throughput:
    def __init__(self):
        self.rates = {name: [] for name, _ in VARIANTS}
        self.cpu = {name: [] for name, _ in VARIANTS}  # seconds per task
        self.trace = {name: [] for name, _ in VARIANTS}  # tracer CPU s per task
        self.status = "pending"

    def ratios(self):
        return [w / o for w, o in zip(self.rates["with"], self.rates["without"])]

    def cost(self):
        """Median share of tasks per second lost to the recording (0.03: 3 %)."""
        return 1 - statistics.median(self.ratios())

    def added(self):
        """CPU seconds per task the recording adds (tracer, best runs)."""
        return min(self.trace["with"]) - min(self.trace["without"])

    def estimate(self):
        """Share of a busy worker's tasks per second the recording costs."""
        base = statistics.median(self.cpu["without"])
        return self.added() / (base + self.added())

    def cpu_cost(self):
        """Median share of CPU per task added by the recording (0.03: 3 %)."""
        return statistics.median(w / o for w, o in zip(self.cpu["with"], self.cpu["without"])) - 1

    def rows(self):
        return [(name, statistics.median(rates), min(rates), max(rates), len(rates),
                 statistics.median(self.cpu[name]) * 1e6)
                for name, rates in self.rates.items() if rates]


def measure(ctx, rounds):
    """Rounds of both variants on a database of our Redis; a Throughput."""
    from bench.phases import fill

    result = Throughput()
    for _ in range(3):
        for name, record in VARIANTS:
            result.trace[name].append(trace_cost(ctx, record))
    log("throughput: tracer %.1f µs/task without, %.1f µs with the records" % (
        min(result.trace["without"]) * 1e6, min(result.trace["with"]) * 1e6))
    db = ctx.take_db()
    url, client = ctx.redis.url(db), ctx.redis.client(db)
    try:
        for number in range(rounds):
            for name, record in VARIANTS:
                queue = "bench-throughput-%d-%s" % (number, name)
                fill(url, [queue], N)
                rate, cpu = drain(ctx, url, client, queue, record)
                result.rates[name].append(rate)
                result.cpu[name].append(cpu)
                log("throughput %s recording, round %d/%d: %.0f tasks/s, %.0f µs CPU/task" % (
                    name, number + 1, rounds, rate, cpu * 1e6))
        result.status = "ok"
    except Exception as exc:  # reported, the rest of the benchmark stands
        result.status = "failed: %s" % exc
        log("throughput: %s" % result.status)
    finally:
        client.close()
    return result


def trace_cost(ctx, record):
    import subprocess

    proc = subprocess.run([ctx.install.python, "-c", TRACE, record], capture_output=True,
                          text=True, timeout=300)
    if proc.returncode:
        raise RuntimeError("trace: %s" % proc.stderr[-500:])
    return float(proc.stdout.split()[-1])


def drain(ctx, url, client, queue, record):
    worker = ctx.workers.factory.start(
        url, queues=[queue], app="tests.tasks_app", wait=False,
        extra_args=["-l", "WARNING"], env={"TEST_TASKS_RECORD": record})
    try:
        deadline = time.monotonic() + 120
        left = client.llen(queue)
        while left >= N and time.monotonic() < deadline:
            if worker.process.poll() is not None:
                raise RuntimeError("worker exited: %s" % worker.log()[-500:])
            time.sleep(0.002)
            left = client.llen(queue)
        started, cpu = time.perf_counter(), cpu_time(worker.pid)
        taken = N - left
        while left and time.monotonic() < deadline:
            time.sleep(0.002)
            left = client.llen(queue)
        if left:
            raise RuntimeError("queue not drained in 120 s")
        # what was taken before `started` is not counted
        return ((N - taken) / (time.perf_counter() - started),
                (cpu_time(worker.pid) - cpu) / (N - taken))
    finally:
        worker.stop()


def cpu_time(pid):
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def report(throughput, level="###"):
    """Markdown lines for the report (``level``: its heading's)."""
    if throughput is None or throughput.status != "ok":
        return []
    lines = ["", "%s Worker throughput" % level, "",
             "Trivial tasks per second of one solo-pool worker draining %d queued "
             "messages (bench/throughput.py), with and without the task records "
             "of check_celery_tasks." % N, "",
             "| variant | median tasks/s | min–max | rounds | worker CPU µs/task |",
             "|---|---|---|---|---|"]
    for name, median, low, high, count, cpu in throughput.rows():
        lines.append("| %s recording | %.0f | %.0f–%.0f | %d | %.0f |" % (
            name, median, low, high, count, cpu))
    lines += ["", "Celery's tracer running the task in one process (CPU, best of %d "
              "loops of %d): %.1f µs per task without, %.1f µs with the records: %.1f µs "
              "added, %.1f %% of the worker's CPU per task, so an estimated %.1f %% fewer "
              "tasks per second for a busy worker. Measured directly by the drain: %.1f %% "
              "fewer tasks per second (median of per-round ratios: %s), %+.1f %% worker "
              "CPU per task." % (
                  5 * len(throughput.trace["with"]), TRACE_LOOPS,
                  min(throughput.trace["without"]) * 1e6, min(throughput.trace["with"]) * 1e6,
                  throughput.added() * 1e6,
                  100 * throughput.added() / statistics.median(throughput.cpu["without"]),
                  100 * throughput.estimate(), 100 * throughput.cost(),
                  ", ".join("%.3f" % r for r in throughput.ratios()), 100 * throughput.cpu_cost())]
    return lines
