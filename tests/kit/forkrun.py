"""Run a check's main() many times, each run in a process of its own,
without paying the interpreter start and the imports every time.

    python -m tests.kit.forkrun MODULE PARALLEL < argvs.json > results.json

The parent imports ``celery_checks.MODULE`` (and the client libraries it
would import lazily) once, then forks one child per argv, PARALLEL at a
time. Each child runs ``main(argv)`` to its exit like the console script
would: its own sockets, its own nagiosplugin Runtime and -t alarm, its
stdout/stderr captured to files. The parent writes
``[{"argv", "rc", "stdout", "stderr", "elapsed"}]``. An entry of the input
may also be ``{"argv": [...], "env": {...}}``: that child runs with those
variables added to its environment (e.g. $CELERY_BROKER_URL).

For tests that need hundreds of runs (tests/test_no_leaks.py): what the
broker sees from a forked run is what it sees from the executable. The
executable itself is run as a process everywhere else.
"""

import importlib
import json
import os
import sys
import tempfile
import time


def child(main, argv, out_path, err_path, env=None):
    os.environ.update(env or {})
    out = os.open(out_path, os.O_WRONLY)
    err = os.open(err_path, os.O_WRONLY)
    os.dup2(out, 1)
    os.dup2(err, 2)
    code = 1
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # what a console script would print
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main():
    module_name, parallel = sys.argv[1], int(sys.argv[2])
    argvs = json.load(sys.stdin)
    module = importlib.import_module("celery_checks." + module_name)
    for heavy in ("redis", "pika", "kombu", "kombu.transport.redis", "amqp"):
        try:
            importlib.import_module(heavy)  # shared by every child after fork
        except ImportError:
            pass
    directory = tempfile.mkdtemp(prefix="forkrun-")
    running, results = {}, [None] * len(argvs)
    pending = list(enumerate(argvs))
    sys.stdout.flush()
    sys.stderr.flush()
    while pending or running:
        while pending and len(running) < parallel:
            index, entry = pending.pop(0)
            argv, env = (entry["argv"], entry.get("env")) if isinstance(entry, dict) else (entry, None)
            paths = [os.path.join(directory, "%d.%s" % (index, s)) for s in ("out", "err")]
            for path in paths:
                open(path, "w").close()
            pid = os.fork()
            if pid == 0:
                child(module.main, argv, *paths, env=env)
            running[pid] = (index, argv, paths, time.monotonic())
        pid, status = os.wait()
        index, argv, paths, started = running.pop(pid)
        texts = []
        for path in paths:
            with open(path, encoding="utf-8", errors="replace") as handle:
                texts.append(handle.read())
            os.unlink(path)
        results[index] = dict(argv=argv, rc=os.waitstatus_to_exitcode(status), stdout=texts[0],
                              stderr=texts[1], elapsed=time.monotonic() - started)
    os.rmdir(directory)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
