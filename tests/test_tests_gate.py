"""Rule 5 is real: the `tests` session fails a project below the coverage floor; a test that
needs an optional part skips without it, and fails under CI=true."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import without_coverage

TOY = """
def covered(x):
    return x + 1


def uncovered(x):
    if x > 0:
        return x - 1
    return -x
"""

PYPROJECT = """
[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]

[tool.coverage.run]
source = ["toy"]

[tool.coverage.report]
fail_under = 60
"""


def make_project(project: Path, *, test_everything: bool) -> Path:
    """A copy of this project whose code and tests are a toy module, half or fully tested."""
    shutil.rmtree(project / "tests")
    (project / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (project / "toy.py").write_text(TOY, encoding="utf-8")
    tests = ["def test_covered():\n    from toy import covered\n    assert covered(1) == 2\n"]
    if test_everything:
        tests.append(
            "def test_uncovered():\n    from toy import uncovered\n"
            "    assert uncovered(2) == 1\n    assert uncovered(-2) == 2\n"
        )
    (project / "tests").mkdir()
    (project / "tests" / "test_toy.py").write_text("\n\n".join(tests), encoding="utf-8")
    return project


def run_tests_session(
    project: Path, nox_cmd: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "tests"],
        cwd=project, env=without_coverage(env), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_below_the_floor_fails_with_the_coverage_message(
    project_copy: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    project = make_project(project_copy, test_everything=False)
    result = run_tests_session(project, nox_cmd, child_env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Required test coverage of 60" in output and "not reached" in output
    assert (project / "reports" / "coverage.xml").is_file()


@pytest.mark.slow
def test_at_full_coverage_passes_and_writes_reports(
    project_copy: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    project = make_project(project_copy, test_everything=True)
    result = run_tests_session(project, nox_cmd, child_env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "TOTAL" in output and "100%" in output
    reports = project / "reports"
    assert (reports / "coverage.xml").is_file()
    assert list(reports.glob("junit-*.xml"))
    assert list(reports.glob(".coverage.*"))


@pytest.mark.slow
def test_no_tests_collected_is_a_failure(
    project_copy: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    project = make_project(project_copy, test_everything=False)
    shutil.rmtree(project / "tests")
    (project / "tests").mkdir()
    result = run_tests_session(project, nox_cmd, child_env)
    assert result.returncode != 0
    assert "exit code 5" in result.stdout + result.stderr or "no tests ran" in result.stdout


def test_a_missing_optional_part_skips_on_a_users_machine_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.optional import missing

    sentence = "no emoji font is installed (Debian: apt-get install fonts-noto-color-emoji)"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^no emoji font is installed \(Debian"):
        missing(sentence)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"^no emoji font .*\(CI=true: CI installs it"):
        missing(sentence)
