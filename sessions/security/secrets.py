"""detect-secrets over every file git tracks (or would add), accepted only through the policy.

The scan reads the file list from git, so ignored outputs (reports, venvs, data) stay out and
a new file is scanned before it is committed. detect-secrets' inline `pragma: allowlist secret`
comments are switched off: a false positive is accepted in the policy by its id (the hash
detect-secrets gives the secret) and path, with a reason and an expiry date, like any finding.
"""

from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sessions.files import tool_path
from sessions.security.policy import POLICY_NAME, Acceptance, Finding, GateError, Outcome, judge
from sessions.security.tools import last_line, run_tool

ALLOWLIST_FILTER = "detect_secrets.filters.allowlist.is_line_allowlisted"


def find_git() -> Path:
    found = shutil.which("git")
    if found is None:
        raise GateError("git is not on PATH: the secret scan needs it to list the tracked files.")
    return Path(found)


def scanned_files(git: Path, root: Path) -> list[str]:
    """Tracked files and untracked ones git does not ignore, that exist, minus the policy
    (it names accepted secrets by their hash, which reads as a high-entropy string)."""
    command: list[str | Path] = [
        git,
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]
    result = run_tool(command, root)
    if result.returncode != 0:
        raise GateError(
            f"The secret scan reads the file list from git, and git could not list the files "
            f"in {root} ({last_line(result.stderr)}): run the gate in a git checkout."
        )
    names = sorted({name for name in result.stdout.split("\0") if name})
    return [name for name in names if name != POLICY_NAME and (root / name).is_file()]


def secret_findings(report: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for path, results in sorted(report["results"].items()):
        name = tool_path(path)
        for result in results:
            where = f"{result['type']}, {name}:{result['line_number']}"
            findings.append(Finding("secrets", result["hashed_secret"], where, path=name))
    return findings


def run_secrets(
    detect_secrets: Path,
    git: Path,
    root: Path,
    reports: Path,
    *,
    policy: Sequence[Acceptance],
    today: datetime.date,
) -> Outcome:
    files = scanned_files(git, root)
    if not files:
        raise GateError(f"git lists no files in {root}: the secret scan would see nothing.")
    reports.mkdir(parents=True, exist_ok=True)
    report_path = reports / "secrets.json"
    report_path.unlink(missing_ok=True)
    # -n: no network call to verify a secret; the scan stays on this machine.
    command: list[str | Path] = [
        detect_secrets,
        "scan",
        "-n",
        "--disable-filter",
        ALLOWLIST_FILTER,
        *files,
    ]
    result = run_tool(command, root)
    if result.returncode != 0:
        raise GateError(
            f"detect-secrets failed with exit code {result.returncode} "
            f"({last_line(result.stderr)}): run it by hand to see why."
        )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise GateError(f"detect-secrets printed no JSON report ({error}): rerun it.") from error
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    fix = (
        "move each secret out of the code into the environment or an untracked file (and "
        f"revoke it if it is real), or accept a false positive by its id and path in {POLICY_NAME} "
        "with a reason and an expiry date"
    )
    findings = secret_findings(report)
    return judge("secrets", f"{len(files)} files", findings, policy=policy, today=today, fix=fix)
