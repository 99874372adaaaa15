"""The checkout and what it declares."""

import functools
import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DISTRIBUTION = "celery-checks"


@functools.lru_cache(maxsize=None)
def scripts():
    """{name: 'module:function'} of the installed distribution's console scripts."""
    entry_points = metadata.distribution(DISTRIBUTION).entry_points
    return {ep.name: ep.value for ep in entry_points if ep.group == "console_scripts"}


def declared_minimum(name):
    """The minimum pyproject.toml declares for dependency ``name`` ("2.2.1"
    for "hiredis>=2.2.1"); read as text, as Python 3.9 has no tomllib."""
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(r'^\s*"%s(?:\[[^]]*\])?\s*>=\s*([\w.]+)"' % re.escape(name), text, re.M)
    if found is None:
        raise LookupError("pyproject.toml declares no minimum for %s" % name)
    return found.group(1)


#: the checks that read only the celery-checks store (Redis, ``--store``),
#: never a broker
STORE_CHECKS = ("check_celery_heartbeat", "check_celery_tasks")


def checks():
    """The declared executables that are checks (check_*), sorted."""
    return sorted(name for name in scripts() if name.startswith("check_"))


def module_of(name):
    """'celery_checks.queue' for 'check_celery_queue'."""
    return scripts()[name].split(":", 1)[0]


# Arguments that make each check's parser happy without any service (the
# broker ones point at a refused port), so the option under test is the only
# thing that can fail.
MINIMAL_ARGS = {
    "check_celery_pulsefile": ["-f", "/nonexistent/x.pulse"],
    "check_celery_queue": ["-b", "redis://127.0.0.1:1/0"],
    "check_celery_heartbeat": ["--store", "redis://127.0.0.1:1/0"],
    "check_celery_tasks": ["--store", "redis://127.0.0.1:1/0"],
    "check_celery_workers": ["-b", "redis://127.0.0.1:1/0"],
}


def minimal_args(name):
    return list(MINIMAL_ARGS.get(name, []))
