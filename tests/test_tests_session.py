"""How the `tests` session composes pytest and coverage (end to end: test_tests_gate)."""

from __future__ import annotations

import sys
from pathlib import Path

from sessions import tests as tests_session
from tests.conftest import RecordingSession


def test_one_pytest_run_measures_reports_and_passes_posargs(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path, venv_backend="none", posargs=["-k", "lock"])
    tests_session.run(session)  # type: ignore[arg-type]
    (pytest_call,) = session.runs
    assert pytest_call[0] == "pytest" and pytest_call[-2:] == ("-k", "lock")
    assert pytest_call[1:3] == ("-n", "auto"), "in parallel over the cores"
    assert "--cov" in pytest_call
    assert any(arg.startswith("--cov-report=xml:") for arg in pytest_call)
    assert any(arg.startswith("--junitxml=") for arg in pytest_call)
    assert not any(arg.startswith("--cov-fail-under") for arg in pytest_call), (
        "set once, in pyproject"
    )
    assert session.warnings == []


def test_no_cov_says_the_gate_did_not_run(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path, venv_backend="none", posargs=["--no-cov"])
    tests_session.run(session)  # type: ignore[arg-type]
    assert "gate did not run" in session.warnings[0]


def test_coverage_data_is_named_per_platform() -> None:
    assert tests_session.coverage_file().endswith(f".coverage.{sys.platform}")


def test_fast_tier_deselects_the_marked_tests_in_a_lean_venv(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path, posargs=["-x"])
    tests_session.run_fast(session)  # type: ignore[arg-type]
    (install,) = session.installs
    assert any(arg.startswith("pytest>=") for arg in install)
    for tool in ("dvc", "bandit", "safety", "pypandoc", "seaweedfs", "mypy", "pytest-xdist"):
        assert not any(arg.startswith(tool) for arg in install), tool
    (pytest_call,) = session.runs
    assert pytest_call[:3] == ("pytest", "-m", "not slow and not docker")
    assert "--cov-fail-under=0" in pytest_call, "coverage shown; the floor is the full gate's"
    assert pytest_call[-1] == "-x"
