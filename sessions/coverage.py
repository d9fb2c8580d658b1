"""The `coverage` session: the tests legs' coverage data combined, reported and gated (Rule 5).

Each `tests` run leaves `reports/.coverage.<sys.platform>`; CI's legs on Linux, Windows and
macOS each upload theirs. `nox -s coverage` combines whatever data is there (folding each
system's paths into the checkout's, [tool.coverage.paths]), writes
`reports/coverage-combined.xml`, prints the report and fails below `fail_under` in pyproject.
With `-- --all-systems` (CI, after the legs) it first fails naming every system whose data
is missing; run locally after `nox -s tests`, it gives the Linux figure alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sessions.project import CI_PLATFORMS, REPORTS
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

COMBINED_XML = REPORTS / "coverage-combined.xml"
USAGE = "Usage: nox -s coverage [-- --all-systems]."


def data_file(system: str, reports: Path = REPORTS) -> Path:
    """Where a tests run on `system` (its sys.platform) leaves its coverage data."""
    return reports / f".coverage.{system}"


def missing_systems(reports: Path = REPORTS) -> str | None:
    """One sentence naming each CI system whose data is missing, or None when all came."""
    systems = dict.fromkeys(CI_PLATFORMS.values())
    missing = [system for system in systems if not data_file(system, reports).is_file()]
    if not missing:
        return None
    named = ", ".join(f"{system} ({reports.name}/.coverage.{system})" for system in missing)
    return f"No coverage data from {named}: a tests leg that did not finish uploads none."


def run(session: nox.Session) -> None:
    if any(arg != "--all-systems" for arg in session.posargs):
        session.error(USAGE)
    if "--all-systems" in session.posargs and (problem := missing_systems()):
        session.error(problem)
    found = sorted(REPORTS.glob(".coverage.*"))
    if not found:
        session.error(f"No coverage data in {REPORTS.name}/: run `nox -s tests` first.")
    install_groups(session, "coverage")
    # The combined data goes beside the systems' files, which --keep leaves for a rerun.
    env = {"COVERAGE_FILE": str(REPORTS / ".coverage")}
    session.run("coverage", "combine", "--keep", *map(str, found), env=env)
    session.run("coverage", "xml", "-o", str(COMBINED_XML), env=env)
    session.run("coverage", "report", env=env)
