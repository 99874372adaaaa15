"""The throwaway venv the benchmark measures: a *regular* (non-editable) copy
of celery_checks and its console scripts, written the way pip writes them.

An editable install's import hook costs every process ~15 ms that no real
installation pays, so the dev venv's own executables are never measured.
The libraries (celery, redis, pika, nagiosplugin) are borrowed from the
interpreter given (the dev venv by default, or e.g. Debian's
/usr/bin/python3) through a .pth file.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
names = ("nagiosplugin", "celery", "kombu", "redis", "hiredis", "pika")
def version(name):
    try:
        return importlib.metadata.version(name)
    except Exception:
        return "?"
print("Python %s; " % platform.python_version() + ", ".join("%s %s" % (n, version(n)) for n in names))
"""


def declared_scripts():
    """{name: 'module:function'} as pyproject.toml declares them right now."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^(\S+)\s*=\s*"([^"]+)"', section, re.M))


def module_exists(module):
    """Whether the checkout has ``module`` as a file or as a package."""
    path = ROOT / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


class Install:
    """A venv in ``workdir`` with the package copied in and the scripts of
    every declared executable whose module exists (others: not built)."""

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
            if module_exists(spec.split(":")[0]):
                self._wrapper(name, spec)

    def _wrapper(self, name, spec):
        module, func = spec.split(":")
        path = self.bin / name
        path.write_text(WRAPPER % (self.python, module, func, func))
        path.chmod(0o755)
        self.scripts[name] = str(path)

    def has(self, name):
        return name in self.scripts

    def resolve(self, argv):
        """argv with its executable made a path: ``python`` is this venv's,
        ours come from this venv only (None when not built: never another
        copy from $PATH), any other tool from $PATH (None when absent)."""
        exe = argv[0]
        if "/" in exe:
            return list(argv)
        if exe == "python":
            return [self.python] + list(argv[1:])
        if self.has(exe):
            return [self.scripts[exe]] + list(argv[1:])
        if exe in declared_scripts() or exe.startswith(("check_", "trigger_")):
            return None
        found = shutil.which(exe)
        return [found] + list(argv[1:]) if found else None


class Before:
    """Another revision's celery_checks beside the install (``git archive``
    into the work dir, compiled) with wrappers of its own in the same
    directory (a script's directory comes first on sys.path), run by the
    same interpreter with the same libraries: the code before a change."""

    def __init__(self, workdir, install, revision):
        self.revision = subprocess.check_output(
            ["git", "-C", str(ROOT), "rev-parse", "--short", revision], text=True).strip()
        self.path = workdir / "before"
        self.path.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", self.revision,
                                  "celery_checks"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(self.path)], input=archive, check=True)
        subprocess.run([install.python, "-m", "compileall", "-q", str(self.path)], check=False)
        self.python = install.python

    def argv(self, argv):
        """``argv`` (a check's name, then its arguments) on the old code."""
        name = argv[0]
        path = self.path / name
        if not path.exists():
            module, func = declared_scripts()[name].split(":")
            path.write_text(WRAPPER % (self.python, module, func, func))
            path.chmod(0o755)
        return [str(path)] + list(argv[1:])
