"""The contract every executable keeps (DESIGN.md): exit codes, help, ranges.

Parametrised over the console scripts declared in pyproject.toml, so a new
check is held to it the moment it is declared.
"""

import os
import stat
import subprocess
import sys

import pytest

from tests.kit import project
from tests.kit.project import ROOT, minimal_args
from tests.kit.plugin import run_check

SCRIPTS = project.scripts()
CHECKS = project.checks()

pytestmark = pytest.mark.quick


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_script_has_a_thin_executable_in_checks(name):
    path = ROOT / "checks" / name
    assert path.exists(), "checks/%s missing" % name
    assert path.stat().st_mode & stat.S_IXUSR
    assert "import" in path.read_text() and "celery_checks" in path.read_text()


def test_checks_folder_holds_only_declared_executables():
    assert sorted(p.name for p in (ROOT / "checks").iterdir()) == sorted(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_script_runs_as_python_m_its_module(name):
    """``python -m celery_checks.pulsefile`` (a container probe with no
    console script on PATH) answers like the executable."""
    proc = subprocess.run([sys.executable, "-m", project.module_of(name), "-V"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 3 and proc.stdout.startswith(name + " (celery-checks)"), proc


@pytest.mark.parametrize("name", CHECKS)
def test_help_exits_3_fits_80_columns_and_has_sections(name):
    result = run_check(name, "--help")
    assert result.rc == 3, result.describe("--help exit code")
    for section in ("Check:", "Perfdata:", "States:"):
        assert "\n%s\n" % section in result.stdout, section
    too_wide = [line for line in result.stdout.splitlines() if len(line) > 80]
    assert not too_wide, too_wide


@pytest.mark.parametrize("name", CHECKS)
def test_version_exits_3(name):
    result = run_check(name, "--version")
    assert result.rc == 3
    assert result.stdout.startswith(name + " (celery-checks) ")


@pytest.mark.parametrize("name", CHECKS)
@pytest.mark.parametrize("option", ["-w", "-c"])
@pytest.mark.parametrize("bad", ["abc", "10:5", "1e3", "", "@", "5::", "~"])
def test_bad_range_is_unknown_with_usage(name, option, bad):
    result = run_check(name, *minimal_args(name), option, bad)
    result.assert_unknown("range")
    assert result.stdout.splitlines()[1].startswith("usage: ")
    assert not result.perfdata


@pytest.mark.parametrize("name", CHECKS)
@pytest.mark.parametrize("good", ["10", "10:", "~:10", "10:20", "@10:20", "0.5"])
def test_good_ranges_are_accepted(name, good):
    result = run_check(name, *minimal_args(name), "-w", good, "-c", good)
    assert "invalid range" not in result.first_line
    assert result.rc != 3 or "range" not in result.first_line


@pytest.mark.parametrize("name", CHECKS)
@pytest.mark.parametrize("args", [["--no-such-option"], ["-t", "0"], ["-t", "abc"], ["-t", "-5"]])
def test_usage_errors_exit_3_never_2(name, args):
    result = run_check(name, *minimal_args(name), *args)
    result.assert_unknown()
    assert len(result.stdout.splitlines()) >= 2  # status line + usage


@pytest.mark.parametrize("name", CHECKS)
def test_status_line_prefix_is_the_check_name(name):
    result = run_check(name, *minimal_args(name))
    prefix = name.upper().replace("CHECK_", "", 1) + " "
    assert result.first_line.startswith(prefix), result.describe("prefix")
    result.assert_well_formed()


def test_thin_executable_runs_from_a_plugin_directory(tmp_path):
    """checks/<name> copied elsewhere still works (imports celery_checks)."""
    import shutil
    import subprocess
    import sys

    target = tmp_path / "check_celery_pulsefile"
    shutil.copy(ROOT / "checks" / "check_celery_pulsefile", target)
    os.chmod(target, 0o755)
    pulse = tmp_path / "x.pulse"
    pulse.write_text("")
    proc = subprocess.run([sys.executable, str(target), "-f", str(pulse)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("CELERY_PULSEFILE OK")


def test_readme_reference_is_generated_from_help():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-readme"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + " (run: .venv/bin/python scripts/gen-readme)"
