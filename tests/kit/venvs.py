"""Installs of this checkout the way operators make them, for tests that run
the plugins from somewhere else than the dev venv.

:func:`debian_venv`: a venv on Debian's /usr/bin/python3 that sees its
python3-* packages (--system-site-packages), this project installed into it
with --no-deps (not editable, no bytecode written), in a directory the
``nagios`` user can read: what NRPE, Icinga and the nagios-user tests run.
"""

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.kit.project import ROOT


def readable_tmpdir(prefix):
    """A temporary directory others may enter (pytest's tmp is mode 700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def copy_of_checkout(target):
    """The files an install needs, copied (no venvs, caches or .git)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "celery_checks", target / "celery_checks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return target


@contextlib.contextmanager
def debian_venv(prefix="celery-checks-debian-"):
    """Yields the venv's directory; removed afterwards."""
    base = readable_tmpdir(prefix)
    try:
        source = copy_of_checkout(base / "src")
        venv = base / "venv"
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages",
                        "--without-pip", str(venv)], check=True)
        subprocess.run(
            ["/usr/bin/python3", "-m", "pip", "--python", str(venv / "bin" / "python"),
             "install", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--no-build-isolation", "--no-index", "--no-compile", str(source)],
            check=True, capture_output=True, cwd=str(base))
        shutil.rmtree(source)
        yield venv
    finally:
        shutil.rmtree(base, ignore_errors=True)
