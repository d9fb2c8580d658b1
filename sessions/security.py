"""The `security` gate (Rule 6): bandit over our code, safety over the locked dependencies.

Both scanners always run to the end, then a summary table is printed. The gate fails closed:
findings, a scanner that cannot run, a missing or malformed vulnerability database, a missing
lock or an unreadable report each fail the session with one sentence saying what to do.
Accepted findings live in `security-policy.toml`, each with a reason and an expiry date.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessions import safety_db
from sessions.project import LOCK, REPORTS, ROOT
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

# A local safety database folder (insecure.json + insecure_full.json); unset: safety's online
# database. safety's own `scan` command reads the same variable for the same purpose.
DB_ENV = "SAFETY_DB_DIR"
POLICY_NAME = "security-policy.toml"
DB_FILES = ("insecure.json", "insecure_full.json")
SEVERITIES = ("low", "medium", "high")
SAFETY_FOUND_VULNERABILITIES = 64
# safety 3.7.0 exit codes that mean it had no database to check against.
SAFETY_NO_DATABASE = {67: "could not find", 68: "could not load or reach"}
# With --db, safety 3.7.0 still asks its auth server for OpenID metadata at start-up (and
# ignores the answer). A dead loopback proxy makes that request fail at once, on this machine.
DEAD_PROXY = "http://127.0.0.1:9"
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")


class GateError(Exception):
    """The gate cannot do its job; the message is the one sentence the user sees."""


# --- policy: accepted findings ------------------------------------------------------------


@dataclass(frozen=True)
class Acceptance:
    id: str
    reason: str
    expires: datetime.date
    path: str | None = None

    def expired(self, today: datetime.date) -> bool:
        """An acceptance holds through its expiry date and fails the day after."""
        return self.expires < today


ACCEPTANCE_KEYS = {"id", "reason", "expires", "path"}


def load_policy(path: Path) -> list[Acceptance]:
    """The accepted findings in a policy file; a missing file accepts nothing."""
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise GateError(f"{path.name} is not valid TOML ({error}): fix its syntax.") from error
    entries = data.get("accepted", [])
    if not isinstance(entries, list) or set(data) - {"accepted"}:
        raise GateError(f"{path.name} must hold only [[accepted]] entries: fix its layout.")
    return [parse_acceptance(entry, number, path.name) for number, entry in enumerate(entries, 1)]


def parse_acceptance(entry: object, number: int, source: str) -> Acceptance:
    where = f"{source}, accepted entry {number}"
    if not isinstance(entry, dict):
        raise GateError(f"{where} is not a table: write [[accepted]] with id, reason, expires.")
    if unknown := set(entry) - ACCEPTANCE_KEYS:
        raise GateError(f"{where} has unknown keys {sorted(unknown)}: use id, reason, expires.")
    for key in ("id", "reason"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise GateError(f"{where} has no {key}: every acceptance needs an id and a reason.")
    expires = entry.get("expires")
    if not isinstance(expires, datetime.date) or isinstance(expires, datetime.datetime):
        raise GateError(f"{where} needs an expiry date written as expires = YYYY-MM-DD, unquoted.")
    path = entry.get("path")
    if path is not None and not isinstance(path, str):
        raise GateError(f'{where} has a path that is not a string: write path = "dir/file.py".')
    return Acceptance(entry["id"].strip(), entry["reason"].strip(), expires, path)


# --- findings and verdicts ----------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    tool: str
    id: str
    where: str
    aliases: tuple[str, ...] = ()
    path: str | None = None

    def matches(self, acceptance: Acceptance) -> bool:
        if acceptance.id not in (self.id, *self.aliases):
            return False
        return acceptance.path is None or acceptance.path == self.path

    def __str__(self) -> str:
        return f"{self.id} ({self.where})"


@dataclass
class Outcome:
    """What one scanner did: the row of the summary table and, on failure, the sentence."""

    tool: str
    scanned: str
    findings: list[Finding] = field(default_factory=list)
    accepted: list[Finding] = field(default_factory=list)
    problem: str | None = None

    @property
    def passed(self) -> bool:
        return self.problem is None and not self.findings

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"


def judge(
    tool: str,
    scanned: str,
    findings: Sequence[Finding],
    *,
    policy: Sequence[Acceptance],
    today: datetime.date,
    fix: str,
) -> Outcome:
    """Split findings into accepted (by an unexpired acceptance) and open ones."""
    outcome = Outcome(tool, scanned)
    expired: list[str] = []
    for finding in findings:
        matching = [acceptance for acceptance in policy if finding.matches(acceptance)]
        if any(not acceptance.expired(today) for acceptance in matching):
            outcome.accepted.append(finding)
            continue
        outcome.findings.append(finding)
        expired += [f"{a.id} expired on {a.expires.isoformat()}" for a in matching]
    if outcome.findings:
        listed = "; ".join(str(finding) for finding in outcome.findings)
        note = f" (acceptance {', '.join(sorted(set(expired)))})" if expired else ""
        outcome.problem = (
            f"{tool} found {len(outcome.findings)} unaccepted finding(s): {listed}{note}; "
            f"{fix}, or accept each in {POLICY_NAME} with a reason and an expiry date."
        )
    return outcome


def summary_table(outcomes: Sequence[Outcome]) -> str:
    rows = [("tool", "scanned", "findings", "verdict")]
    for outcome in outcomes:
        found = str(len(outcome.findings))
        if outcome.accepted:
            found += f" (+{len(outcome.accepted)} accepted)"
        scanned = outcome.scanned if outcome.problem is None or outcome.findings else "-"
        rows.append((outcome.tool, scanned, found, outcome.verdict))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


# --- running a scanner --------------------------------------------------------------------


def find_tool(name: str, bin_paths: Sequence[str] | None) -> Path:
    """The scanner's executable: in the session's venv, else on PATH or beside this Python."""
    search = [*(bin_paths or []), os.environ.get("PATH", ""), str(Path(sys.executable).parent)]
    found = shutil.which(name, path=os.pathsep.join(search))
    if found is None:
        raise GateError(f"{name} is not installed here: run `nox -s security`, which installs it.")
    return Path(found)


def run_tool(
    command: Sequence[str | Path], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    child_env = {**os.environ, **(env or {}), "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd, env=child_env, capture_output=True, text=True, encoding="utf-8",
        errors="replace",
    )  # fmt: skip


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def read_report(path: Path, tool: str, result: subprocess.CompletedProcess[str]) -> Any:
    if not path.is_file():
        raise GateError(
            f"{tool} wrote no report (exit code {result.returncode}: "
            f"{last_line(result.stderr + result.stdout)}): run it by hand to see why."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise GateError(f"{tool}'s report {path.name} is not JSON ({error}): rerun it.") from error


# --- bandit -------------------------------------------------------------------------------


def bandit_settings(pyproject: Path) -> tuple[list[str], str]:
    """Targets and the failing severity from [tool.bandit] (bandit reads the rest itself)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    config = data.get("tool", {}).get("bandit", {})
    targets = config.get("targets")
    severity = config.get("severity", "medium")
    if not targets or not all(isinstance(target, str) for target in targets):
        raise GateError(f"[tool.bandit] in {pyproject.name} names no targets: list what to scan.")
    if severity not in SEVERITIES:
        raise GateError(f"[tool.bandit] severity must be one of {', '.join(SEVERITIES)}.")
    return list(targets), severity


def bandit_findings(report: Mapping[str, Any], severity: str) -> list[Finding]:
    """Findings at or above `severity` in a bandit JSON report."""
    floor = SEVERITIES.index(severity)
    findings = []
    for result in report["results"]:
        if SEVERITIES.index(result["issue_severity"].lower()) < floor:
            continue
        path = Path(result["filename"]).as_posix()
        level = result["issue_severity"].lower()
        where = f"{result['test_name']}, {level}, {path}:{result['line_number']}"
        findings.append(Finding("bandit", result["test_id"], where, path=path))
    return findings


def bandit_scanned(report: Mapping[str, Any]) -> tuple[int, int]:
    """Files and lines of code that bandit read."""
    files = [name for name in report["metrics"] if name != "_totals"]
    return len(files), int(report["metrics"]["_totals"]["loc"])


def run_bandit(
    bandit: Path,
    root: Path,
    reports: Path,
    *,
    policy: Sequence[Acceptance],
    today: datetime.date,
) -> Outcome:
    targets, severity = bandit_settings(root / "pyproject.toml")
    base: list[str | Path] = [bandit, "-q", "-c", "pyproject.toml", "-r", *targets]
    base += ["--severity-level", severity]
    reports.mkdir(parents=True, exist_ok=True)
    json_report, sarif_report = reports / "bandit.json", reports / "bandit.sarif"
    for report in (json_report, sarif_report):
        report.unlink(missing_ok=True)
    result = run_tool([*base, "-f", "json", "-o", json_report], root)
    report = read_report(json_report, "bandit", result)
    if result.returncode not in (0, 1):
        raise GateError(f"bandit failed ({last_line(result.stderr)}): fix [tool.bandit].")
    # The same scan for GitHub code scanning.
    run_tool([*base, "-f", "sarif", "-o", sarif_report], root)
    if report["errors"]:
        names = ", ".join(sorted({error["filename"] for error in report["errors"]}))
        raise GateError(f"bandit could not read {names}: fix them so every file is scanned.")
    files, lines = bandit_scanned(report)
    if files == 0:
        raise GateError(f"bandit found no Python files in {', '.join(targets)}: fix the targets.")
    scanned = f"{files} files, {lines} lines"
    fix = f"fix the code ({severity} severity or above fails)"
    return judge(
        "bandit", scanned, bandit_findings(report, severity), policy=policy, today=today, fix=fix
    )


# --- safety -------------------------------------------------------------------------------


def lock_requirements(lock: Path) -> list[str]:
    """Every pin in the lock as `name==version`, environment markers and comments dropped.

    The lock is universal, so one package may be pinned twice (one per Python range); both
    pins are scanned. A line that is not an exact pin fails closed: it would not be checked.
    """
    if not lock.is_file():
        raise GateError(f"The lock {lock.name} is missing: run `nox -s lock` to create it.")
    pins: list[str] = []
    for raw in lock.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip() or " " in version.strip():
            raise GateError(f"{lock.name} has a line that is not an exact pin ({raw.strip()!r}).")
        pins.append(f"{name.strip()}=={version.strip()}")
    if not pins:
        raise GateError(f"The lock {lock.name} pins nothing: run `nox -s lock` to fill it.")
    return sorted(set(pins))


def package_count(pins: Sequence[str]) -> int:
    return len({pin.split("==")[0].split("[")[0].lower().replace("_", "-") for pin in pins})


def check_database(folder: Path) -> None:
    """Fail closed unless `folder` holds a safety database that lists advisories."""
    if not folder.is_dir():
        raise GateError(
            f"{DB_ENV} points at {folder}, which is not a folder: point it at a safety database "
            f"({' and '.join(DB_FILES)}) or unset it to use safety's online database."
        )
    for name in DB_FILES:
        path = folder / name
        if not path.is_file():
            detail = "is missing"
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                detail = f"is not readable JSON: {error}"
            else:
                packages = data.get("vulnerable_packages") if isinstance(data, dict) else None
                if isinstance(packages, dict) and packages:
                    continue
                detail = "lists no vulnerable packages"
        raise GateError(
            f"The safety database in {folder} is malformed ({name} {detail}): replace it "
            f"with a complete copy in safety's layout or unset {DB_ENV} to go online."
        )


def safety_findings(report: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for vulnerability in report["vulnerabilities"]:
        cve = vulnerability.get("CVE")
        if isinstance(cve, dict):
            cve = cve.get("name")
        aliases = (cve,) if isinstance(cve, str) and cve else ()
        where = f"{vulnerability['package_name']}=={vulnerability['analyzed_version']}"
        findings.append(Finding("safety", vulnerability["vulnerability_id"], where, aliases))
    return findings


def offline_env() -> dict[str, str]:
    """Proxy settings that keep an offline safety run on this machine (see DEAD_PROXY)."""
    env = dict.fromkeys(PROXY_VARS, DEAD_PROXY)
    env.update(dict.fromkeys(NO_PROXY_VARS, ""))
    return env


def run_safety(
    safety: Path,
    lock: Path,
    reports: Path,
    *,
    policy: Sequence[Acceptance],
    today: datetime.date,
    database: str | None,
) -> Outcome:
    pins = lock_requirements(lock)
    reports.mkdir(parents=True, exist_ok=True)
    requirements = reports / "safety-requirements.txt"
    requirements.write_text("\n".join(pins) + "\n", encoding="utf-8")
    json_report = reports / "safety.json"
    json_report.unlink(missing_ok=True)
    command: list[str | Path] = [safety, "check", "-r", requirements, "--save-json", json_report]
    env: dict[str, str] = {}
    if database:
        folder = Path(database).resolve()
        check_database(folder)
        command[2:2] = ["--db", folder]
        env = offline_env()
    result = run_tool(command, reports, env)
    if result.returncode in SAFETY_NO_DATABASE:
        where = f"the database in {database}" if database else "its online database"
        raise GateError(
            f"safety {SAFETY_NO_DATABASE[result.returncode]} {where} "
            f"({last_line(result.stderr)}): check the network, or set {DB_ENV} to a local database."
        )
    if result.returncode not in (0, SAFETY_FOUND_VULNERABILITIES):
        raise GateError(
            f"safety failed with exit code {result.returncode} ({last_line(result.stderr)}): "
            "run it by hand to see why."
        )
    report = read_report(json_report, "safety", result)
    expected, found = package_count(pins), int(report["report_meta"]["packages_found"])
    if found != expected:
        raise GateError(f"safety checked {found} of the {expected} locked packages: rerun it.")
    scanned = f"{found} packages ({len(pins)} pins)"
    fix = "upgrade the pins in pyproject.toml and run `nox -s lock`"
    return judge("safety", scanned, safety_findings(report), policy=policy, today=today, fix=fix)


# --- the session --------------------------------------------------------------------------


def guarded(tool: str, scan: Callable[[], Outcome]) -> Outcome:
    """Run one scanner; turn a gate error or an unexpected report into a failed outcome."""
    try:
        outcome = scan()
    except GateError as error:
        return Outcome(tool, "-", problem=str(error))
    except (KeyError, TypeError, ValueError) as error:
        return Outcome(tool, "-", problem=f"{tool}'s report has an unexpected shape ({error!r}).")
    return outcome


def scan(
    bin_paths: Sequence[str] | None,
    *,
    root: Path = ROOT,
    lock: Path = LOCK,
    reports: Path = REPORTS,
    database: str | None = None,
    today: datetime.date | None = None,
) -> list[Outcome]:
    """Run both scanners and judge their reports against the policy."""
    today = today or datetime.date.today()
    try:
        policy = load_policy(root / POLICY_NAME)
    except GateError as error:
        return [Outcome("policy", "-", problem=str(error))]

    def bandit() -> Outcome:
        return run_bandit(find_tool("bandit", bin_paths), root, reports, policy=policy, today=today)

    def safety() -> Outcome:
        tool = find_tool("safety", bin_paths)
        return run_safety(tool, lock, reports, policy=policy, today=today, database=database)

    return [guarded("bandit", bandit), guarded("safety", safety)]


def run(session: nox.Session) -> None:
    install_groups(session, "security")
    database = os.environ.get(DB_ENV) or None
    if session.posargs:  # --update-db DIR: build the database from PyPA's advisories first
        database = str(safety_db.update_in_session(session))
    if database:
        session.log(f"safety database: {safety_db.describe(Path(database).resolve())}")
    else:
        session.log(f"safety database: online (set {DB_ENV} or pass --update-db for a local one)")
    outcomes = scan(session.bin_paths, database=database)
    print(summary_table(outcomes), flush=True)
    session.log(f"Reports: {REPORTS}")
    if problems := [outcome.problem for outcome in outcomes if outcome.problem]:
        session.error(" ".join(problems))
