"""Installs of this checkout the way operators make them, for tests that run
the plugins from somewhere else than the dev venv.

:func:`plain_venv`: ``python -m venv`` + ``pip install <a copy of the
checkout>``, no extras, not editable: the README's quick start, cached by
the content of what the build reads.

:func:`debian_venv`: a venv on Debian's /usr/bin/python3 that sees its
python3-* packages (--system-site-packages), this project installed into it
with --no-deps (not editable, no bytecode written), in a directory the
``nagios`` user can read: what NRPE, Icinga and the nagios-user tests run.
Debian 12's python3-hiredis (1.0.1) predates hiredis's command packer, so
:func:`install_hiredis` adds the one library that comes from PyPI, at the
declared minimum, as the README tells operators.
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.kit.project import ROOT, declared_minimum


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
        install_hiredis(venv=venv)
        yield venv
    finally:
        shutil.rmtree(base, ignore_errors=True)


def install_hiredis(venv=None, target=None):
    """``pip install --no-deps hiredis==<declared minimum>`` with Debian's
    pip, into ``venv`` or (the copied-files install) the directory
    ``target``; then proves that this hiredis is the one Debian's Python
    imports from there, not python3-hiredis."""
    minimum = declared_minimum("hiredis")
    where = (["--python", str(venv / "bin" / "python"), "install"] if venv is not None
             else ["install", "--target", str(target)])
    proc = subprocess.run(
        ["/usr/bin/python3", "-m", "pip"] + where + [
            "--quiet", "--disable-pip-version-check", "--no-deps", "--no-compile",
            "--only-binary", "hiredis", "hiredis==" + minimum],
        capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, "pip install hiredis==%s failed:\n%s%s" % (
        minimum, proc.stdout, proc.stderr)
    home = venv if venv is not None else target
    python = str(venv / "bin" / "python") if venv is not None else "/usr/bin/python3"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if target is not None:
        env["PYTHONPATH"] = str(target)
    probe = subprocess.run(
        [python, "-c", "import hiredis; print(hiredis.__version__); print(hiredis.__file__)"],
        capture_output=True, text=True, cwd="/", env=env)
    found = probe.stdout.split("\n")
    assert probe.returncode == 0 and found[0] == minimum \
        and found[1].startswith(str(home) + "/"), \
        "hiredis %s not imported from %s:\n%s%s" % (minimum, home, probe.stdout, probe.stderr)


CACHE = Path(tempfile.gettempdir()) / "celery-checks-fresh-install"
# What `pip install .` builds from; a change to any of them is a new venv.
BUILD_INPUTS = ("pyproject.toml", "README.md", "celery_checks")


# ------------------------------------------------------------ the fresh venv

def _inputs():
    """(relative path, absolute path) of every file the build reads."""
    files = []
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            files += sorted(p for p in path.rglob("*")
                            if p.is_file() and "__pycache__" not in p.parts)
        else:
            files.append(path)
    return [(p.relative_to(ROOT).as_posix(), p) for p in files]


def _content_hash(files):
    digest = hashlib.sha256(("%d.%d" % sys.version_info[:2]).encode())
    for relative, path in files:
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _build(target, files):
    """python -m venv + pip install <copy of the checkout>, nothing else."""
    work = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        source = work / "src"
        for relative, path in files:
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / relative)
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", str(source)],
            capture_output=True, text=True, cwd=str(work), timeout=600,
        )
        assert proc.returncode == 0, "pip install of a plain checkout failed:\n%s%s" % (
            proc.stdout, proc.stderr)
        shutil.rmtree(source)
        # A venv is not relocatable: it stays where it was built and the
        # finished marker is a symlink to it, renamed into place atomically.
        link = work.with_suffix(".link")
        os.symlink(venv, link)
        os.replace(link, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _prune(keep, days=2):
    """Remove cached venvs of other contents unused for ``days`` (never one
    another run holds the lock of)."""
    for lock_path in CACHE.glob("*.lock"):
        target = Path(str(lock_path)[: -len(".lock")])
        if target == keep or not target.is_symlink():
            continue
        if time.time() - target.lstat().st_mtime < days * 86400:
            continue
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            real = target.resolve().parent  # the build's work directory
            target.unlink()
            if real.parent == CACHE:
                shutil.rmtree(real, ignore_errors=True)


def plain_venv():
    """The bin directory of a venv holding the project and its declared
    dependencies only (built once per content, shared by parallel runs)."""
    files = _inputs()
    CACHE.mkdir(exist_ok=True)
    target = CACHE / _content_hash(files)
    with open(str(target) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions build it once
        if not (target / "bin" / "python").exists():
            _build(target, files)
        os.utime(target, follow_symlinks=False)  # last used: see _prune
    _prune(keep=target)
    return target / "bin"
