"""The executables the project declares, read from pyproject.toml."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def declared_scripts():
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^(\S+)\s*=\s*"([^"]+)"', section, re.M))


SCRIPTS = declared_scripts()
CHECKS = sorted(name for name in SCRIPTS if name.startswith("check_"))
