"""The `tests` gate (Rule 5): pytest with coverage, failing below `fail_under` in pyproject."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from sessions.project import REPORTS
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox


def coverage_file() -> str:
    """A coverage data file per platform, so Linux and Windows runs can be combined."""
    return str(REPORTS / f".coverage.{sys.platform}")


def pytest_args(posargs: list[str]) -> list[str]:
    """One pytest process measures, reports (terminal + XML for CI) and gates coverage.

    pytest-cov takes the floor from `fail_under` in pyproject, writes the reports first, then
    fails the run below it, so CI gets the XML either way.
    """
    return [
        "--cov",
        "--cov-report=term-missing:skip-covered",
        f"--cov-report=xml:{REPORTS / 'coverage.xml'}",
        f"--junitxml={REPORTS / f'junit-{sys.platform}.xml'}",
        *posargs,
    ]


def run(session: nox.Session) -> None:
    install_groups(session, "test", project=True)
    REPORTS.mkdir(exist_ok=True)
    session.run("pytest", *pytest_args(session.posargs), env={"COVERAGE_FILE": coverage_file()})
    if "--no-cov" in session.posargs:
        session.warn("Coverage was switched off with --no-cov: the Rule 5 gate did not run.")
