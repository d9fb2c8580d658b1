"""The `security` gate (Rule 6): bandit and a `# nosec` audit over our code, safety over every
locked pin, detect-secrets over every tracked file. `-- --update-db DIR` first builds safety's
offline database from PyPA's advisories (`sessions/security/advisories.py`).

The scanners run from their own venv, installed from the scanner lock, never from the lock they
scan. They run side by side and always to the end; then a table with a row per scan, one line
per open finding and one sentence per failed scan are printed. The gate fails closed: findings,
a scanner that cannot run, a missing or malformed vulnerability database, a missing lock or an
unreadable report each fail the session with one sentence saying what to do. Accepted findings
live in `security-policy.toml`, each with a reason and an expiry date.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from sessions.project import LOCK, REPORTS, ROOT, SCANNER_LOCK
from sessions.security import advisories
from sessions.security.bandit import SEVERITIES, run_bandit
from sessions.security.policy import POLICY_NAME, GateError, Outcome, load_policy
from sessions.security.safety import DB_ENV, check_database, run_safety
from sessions.security.secrets import find_git, run_secrets
from sessions.security.tools import find_tool
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

__all__ = ["DB_ENV", "POLICY_NAME", "GateError", "check_database", "run", "scan"]

# The locks whose pins safety checks: the project's and the scanners' own.
SCANNED_LOCKS = (LOCK, SCANNER_LOCK)


# --- running every scan -------------------------------------------------------------------


def guarded(tool: str, run_scan: Callable[[], Outcome | list[Outcome]]) -> list[Outcome]:
    """Run one scanner; turn a gate error or an unexpected report into a failed outcome."""
    try:
        outcome = run_scan()
    except GateError as error:
        return [Outcome(tool, "-", problem=str(error))]
    except (KeyError, TypeError, ValueError) as error:
        return [Outcome(tool, "-", problem=f"{tool}'s report has an unexpected shape ({error!r}).")]
    return outcome if isinstance(outcome, list) else [outcome]


def scan(
    bin_paths: Sequence[str] | None,
    *,
    root: Path = ROOT,
    locks: Sequence[Path] = SCANNED_LOCKS,
    reports: Path = REPORTS,
    database: str | None = None,
    today: datetime.date | None = None,
) -> list[Outcome]:
    """Run every scanner at once and judge their reports against the policy."""
    today = today or datetime.date.today()
    try:
        policy = load_policy(root / POLICY_NAME)
    except GateError as error:
        return [Outcome("policy", "-", problem=str(error))]

    def bandit() -> list[Outcome]:
        tool = find_tool("bandit", bin_paths)
        return run_bandit(tool, root, reports, policy=policy, today=today)

    def safety() -> Outcome:
        tool = find_tool("safety", bin_paths)
        return run_safety(tool, locks, reports, policy=policy, today=today, database=database)

    def secrets() -> Outcome:
        tool, git = find_tool("detect-secrets", bin_paths), find_git()
        return run_secrets(tool, git, root, reports, policy=policy, today=today)

    scans: dict[str, Callable[[], Outcome | list[Outcome]]] = {
        "bandit": bandit,
        "safety": safety,
        "secrets": secrets,
    }
    with ThreadPoolExecutor(max_workers=len(scans)) as pool:
        running = [pool.submit(guarded, tool, work) for tool, work in scans.items()]
        return [outcome for future in running for outcome in future.result()]


# --- what the user reads ------------------------------------------------------------------


def findings_cell(outcome: Outcome) -> str:
    found = str(len(outcome.findings))
    if outcome.accepted:
        found += f" (+{len(outcome.accepted)} accepted)"
    return found


def summary_table(outcomes: Sequence[Outcome]) -> str:
    """A row per scan: what it read, open findings, bandit's findings per severity, verdict.

    The severity columns count every finding bandit reports, below the failing floor and
    accepted ones included: the reports hold them all.
    """
    rows: list[tuple[str, ...]] = [("tool", "scanned", "findings", *SEVERITIES[::-1], "verdict")]
    for outcome in outcomes:
        scanned = outcome.scanned if outcome.problem is None or outcome.findings else "-"
        counts = outcome.severities or {}
        levels = [str(counts[level]) if level in counts else "-" for level in SEVERITIES[::-1]]
        rows.append((outcome.tool, scanned, findings_cell(outcome), *levels, outcome.verdict))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def finding_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """One line per open finding, with why the policy did not accept it when it names it."""
    lines = []
    for outcome in outcomes:
        for finding in outcome.findings:
            note = outcome.notes.get(finding)
            lines.append(f"{outcome.tool}: {finding}" + (f"; {note}" if note else ""))
    return lines


def wrapped(line: str, width: int | None) -> str:
    """A line folded at the terminal's width (continuations indented), or as it is."""
    if width is None:
        return line
    return textwrap.fill(line, width=width, subsequent_indent="    ", break_on_hyphens=False)


def terminal_width() -> int | None:
    """The terminal's width when printing to one; a log file gets unwrapped lines."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def database_line(database: str | None, source: str = DB_ENV) -> str:
    """Which database safety reads and where that choice came from: its date and advisory
    count for a local one."""
    if database:
        return f"safety database from {source}: {advisories.describe(Path(database).resolve())}"
    return f"safety database: online (set {DB_ENV} or pass --update-db for a local one)"


def report(outcomes: Sequence[Outcome], width: int | None) -> str:
    """The table, then each open finding on its own line."""
    lines = [summary_table(outcomes)]
    if findings := finding_lines(outcomes):
        lines += ["", "Open findings:", *(wrapped(line, width) for line in findings)]
    return "\n".join(lines)


def run(session: nox.Session) -> None:
    install_groups(session, "security", lock=SCANNER_LOCK)
    database, source = os.environ.get(DB_ENV) or None, DB_ENV
    if session.posargs:  # --update-db DIR: build the database from PyPA's advisories first
        database, source = str(advisories.update_in_session(session)), "--update-db"
    session.log(database_line(database, source))
    outcomes = scan(session.bin_paths, database=database)
    width = terminal_width()
    print(report(outcomes, width), flush=True)
    session.log(f"Reports: {REPORTS}")
    if problems := [outcome.problem for outcome in outcomes if outcome.problem]:
        session.error("\n".join(wrapped(problem, width) for problem in problems))
