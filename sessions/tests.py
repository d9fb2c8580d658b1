"""The `tests` gate (Rule 5) and its fast tier.

`tests`: every test, in parallel over the available cores, with coverage combined across
workers and the processes they start, failing below `fail_under` in pyproject.
`tests-fast`: the tests of our own logic that stay inside the pytest process (the ones not
marked `slow` or `docker`, see tests/support/tiers.py), in a venv without the external tools; it
reports coverage but does not gate it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from sessions.project import REPORTS
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

# Tests with one of these markers leave the pytest process; the others are the fast tier.
TIER_MARKERS = ("slow", "docker")
FAST_TIER = " and ".join(f"not {marker}" for marker in TIER_MARKERS)

# pytest-xdist: one worker per core; a file's tests stay on one worker, so module fixtures
# (a server, an exported document) are built once; files go out in collection order, which
# tests/support/schedule.py makes longest first. `-- -n 0` runs serially.
PARALLEL = ["-n", "auto", "--dist", "loadfile", "--no-loadscope-reorder"]


def coverage_file() -> str:
    """A coverage data file per platform, so the Linux, Windows and macOS runs can be combined."""
    return str(REPORTS / f".coverage.{sys.platform}")


def pytest_args(posargs: list[str]) -> list[str]:
    """One pytest run measures, reports (terminal + XML for CI) and gates coverage.

    pytest-cov takes the floor from `fail_under` in pyproject, writes the reports first, then
    fails the run below it, so CI gets the XML either way.
    """
    return [
        *PARALLEL,
        "--cov",
        "--cov-report=term-missing:skip-covered",
        f"--cov-report=xml:{REPORTS / 'coverage.xml'}",
        f"--junitxml={REPORTS / f'junit-{sys.platform}.xml'}",
        *posargs,
    ]


def fast_pytest_args(posargs: list[str]) -> list[str]:
    """The fast tier in this process: coverage shown, the floor left to the full gate."""
    return ["-m", FAST_TIER, "--cov", "--cov-report=term:skip-covered", "--cov-fail-under=0",
            *posargs]  # fmt: skip


def run(session: nox.Session) -> None:
    install_groups(session, "test", project=True)
    REPORTS.mkdir(exist_ok=True)
    session.run("pytest", *pytest_args(session.posargs), env={"COVERAGE_FILE": coverage_file()})
    if "--no-cov" in session.posargs:
        session.warn("Coverage was switched off with --no-cov: the Rule 5 gate did not run.")


def run_fast(session: nox.Session) -> None:
    install_groups(session, "test-fast", project=True)
    REPORTS.mkdir(exist_ok=True)
    env = {"COVERAGE_FILE": str(REPORTS / f".coverage-fast.{sys.platform}")}
    session.run("pytest", *fast_pytest_args(session.posargs), env=env)
