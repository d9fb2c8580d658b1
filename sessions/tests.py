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


def run(session: nox.Session) -> None:
    install_groups(session, "test")
    REPORTS.mkdir(exist_ok=True)
    env = {"COVERAGE_FILE": coverage_file()}
    session.run(
        "pytest",
        "--cov",
        "--cov-report=",
        # The gate is `coverage report` below, after the XML is written for CI.
        "--cov-fail-under=0",
        f"--junitxml={REPORTS / f'junit-{sys.platform}.xml'}",
        *session.posargs,
        env=env,
    )
    if "--no-cov" in session.posargs:
        session.warn("Coverage was switched off with --no-cov: the Rule 5 gate did not run.")
        return
    session.run("coverage", "xml", "-o", str(REPORTS / "coverage.xml"), env=env)
    # `coverage report` applies fail_under from pyproject and prints the total.
    session.run("coverage", "report", env=env)
