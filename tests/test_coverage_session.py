"""`nox -s coverage`: the tests legs' data combined, reported and gated, in a copy of the
project, as CI's coverage job and a developer after `nox -s tests` run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sessions import coverage
from tests.conftest import without_coverage


def coverage_session(
    project: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nox", "--no-venv", "-s", "coverage", "--", *args],
        cwd=project,
        env=without_coverage(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("planted", "args", "said"),
    [
        (
            ["linux"],
            ["--all-systems"],
            "No coverage data from win32 (reports/.coverage.win32), darwin "
            "(reports/.coverage.darwin): a tests leg that did not finish uploads none.",
        ),
        ([], [], "No coverage data in reports/: run `nox -s tests` first."),
        (["linux"], ["--all"], "Usage: nox -s coverage [-- --all-systems]."),
    ],
)
def test_missing_data_or_a_bad_option_is_one_sentence(
    project_copy: Path,
    child_env: dict[str, str],
    planted: list[str],
    args: list[str],
    said: str,
) -> None:
    (project_copy / "reports").mkdir()
    for system in planted:
        (project_copy / "reports" / f".coverage.{system}").write_bytes(b"")
    result = coverage_session(project_copy, child_env, *args)
    assert result.returncode == 1, result.stdout
    assert said in result.stdout
    assert not (project_copy / "reports" / "coverage-combined.xml").exists()


# A test planted in a copy: its child starts in the folder above the checkout, as the import
# boundary test's does, and runs {child}.
PLANTED = """\
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_a_child_started_above_the_checkout() -> None:
    env = os.environ | {{"PYTHONPATH": str(ROOT / "src")}}
    subprocess.run([sys.executable, *{child!r}], cwd=ROOT.parent, env=env, check=True, timeout=300)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("child", "unreported"),
    [
        # A library module: recorded as project/src/..., folded by [tool.coverage.paths].
        (["-c", "import gradient_lab.tracking"], None),
        # A top-level file cannot be folded: the coverage session names it, and fails.
        (["-m", "nox", "-f", "project/noxfile.py", "--list"], "project/noxfile.py"),
    ],
)
def test_data_from_a_child_started_above_the_checkout_is_combined_or_named(
    project_copy: Path,
    child_env: dict[str, str],
    child: list[str],
    unreported: str | None,
) -> None:
    pyproject = project_copy / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace("fail_under = 60", "fail_under = 0"), encoding="utf-8")
    planted = project_copy / "tests" / "test_planted_child.py"
    planted.write_text(PLANTED.format(child=child), encoding="utf-8")
    data = project_copy / "reports" / f".coverage.{sys.platform}"
    data.parent.mkdir()
    pytest_run = ["-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "--cov", "--cov-report="]
    gate = subprocess.run(
        [sys.executable, *pytest_run, str(planted.relative_to(project_copy))],
        cwd=project_copy,
        env=without_coverage(child_env) | {"COVERAGE_FILE": str(data)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert gate.returncode == 0, gate.stdout + gate.stderr  # pytest-cov does not see it
    result = coverage_session(project_copy, child_env)
    if unreported is None:
        assert result.returncode == 0, result.stdout
        xml = (project_copy / "reports" / "coverage-combined.xml").read_text(encoding="utf-8")
        assert 'filename="src/gradient_lab/tracking.py"' in xml
        assert 'filename="project/' not in xml
    else:
        assert result.returncode == 1
        assert f"No source for code: '{unreported}'" in result.stdout


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ((), ["linux", "win32", "darwin"]),
        (("linux", "darwin"), ["win32"]),
        (("linux", "win32", "darwin"), []),
    ],
)
def test_the_data_check_names_each_missing_system(
    tmp_path: Path, present: tuple[str, ...], missing: list[str]
) -> None:
    for system in present:
        (tmp_path / f".coverage.{system}").write_bytes(b"")
    said = coverage.missing_systems(tmp_path) or ""
    named = [system for system in ("linux", "win32", "darwin") if f"{system} (" in said]
    assert named == missing, said
