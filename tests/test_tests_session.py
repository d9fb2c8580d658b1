"""How the `tests` session composes pytest and coverage (end to end: test_tests_gate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessions import tests as tests_session
from tests.conftest import RecordingSession


@pytest.fixture
def session(tmp_path: Path) -> RecordingSession:
    return RecordingSession(tmp_path, venv_backend="none", posargs=["-k", "lock"])


def test_pytest_gets_posargs_then_coverage_gates(session: RecordingSession) -> None:
    tests_session.run(session)  # type: ignore[arg-type]
    pytest_call, xml_call, report_call = session.runs
    assert pytest_call[0] == "pytest" and pytest_call[-2:] == ("-k", "lock")
    assert any(arg.startswith("--junitxml=") for arg in pytest_call)
    assert xml_call[:2] == ("coverage", "xml")
    assert report_call == ("coverage", "report")


def test_no_cov_skips_the_gate_loudly(session: RecordingSession) -> None:
    session.posargs.append("--no-cov")
    tests_session.run(session)  # type: ignore[arg-type]
    assert len(session.runs) == 1
    assert "gate did not run" in session.warnings[0]


def test_coverage_data_is_named_per_platform() -> None:
    import sys

    assert tests_session.coverage_file().endswith(f".coverage.{sys.platform}")
