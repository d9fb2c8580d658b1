"""bandit over our code, and the audit of every `# nosec` comment in what it scanned.

bandit runs with `--ignore-nosec` and no severity filter, so its JSON and SARIF reports carry
every finding; the gate fails on those at or above the configured severity unless the policy
accepts them. A `# nosec` comment silences bandit when someone runs it by hand, so each one
must be backed by a current acceptance of its rule for its file, or the gate fails.
"""

from __future__ import annotations

import datetime
import io
import re
import tokenize
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessions.files import tool_path
from sessions.security.policy import (
    ACCEPT_HINT,
    POLICY_NAME,
    Acceptance,
    Finding,
    GateError,
    Outcome,
    judge,
)
from sessions.security.tools import last_line, read_report, run_tool

SEVERITIES = ("low", "medium", "high")
# bandit's own pattern (bandit.core.manager): bare, with rule ids or names, a colon or not.
NOSEC = re.compile(r"#\s*nosec:?(?P<rest>[^#]*)")
RULE_ID = re.compile(r"\bB\d{3}\b")


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


def severity_of(result: Mapping[str, Any]) -> str:
    return str(result["issue_severity"]).lower()


def bandit_findings(report: Mapping[str, Any]) -> list[Finding]:
    """Every finding in a bandit JSON report, whatever its severity."""
    findings = []
    for result in report["results"]:
        path = tool_path(result["filename"])
        level = severity_of(result)
        where = f"{result['test_name']}, {level}, {path}:{result['line_number']}"
        findings.append(Finding("bandit", result["test_id"], where, path=path, severity=level))
    return findings


def severity_counts(findings: Sequence[Finding]) -> dict[str, int]:
    counts = Counter(finding.severity for finding in findings)
    return {level: counts[level] for level in reversed(SEVERITIES)}


def bandit_scanned(report: Mapping[str, Any]) -> list[str]:
    """The files bandit read, as it names them."""
    return [name for name in report["metrics"] if name != "_totals"]


# --- nosec comments ----------------------------------------------------------------------


@dataclass(frozen=True)
class Nosec:
    path: str
    line: int
    rules: tuple[str, ...]


def nosec_comments(root: Path, files: Sequence[str]) -> list[Nosec]:
    """Every `# nosec` comment (a real comment, not text in a string) in the given files."""
    found = []
    for name in files:
        source = (root / name).read_bytes()
        try:  # bytes: tokenize honours the file's encoding declaration, as bandit does
            tokens = list(tokenize.tokenize(io.BytesIO(source).readline))
        except (tokenize.TokenError, SyntaxError, UnicodeDecodeError) as error:
            raise GateError(f"{name} cannot be tokenized ({error}): fix its syntax.") from error
        for token in tokens:
            if token.type == tokenize.COMMENT and (match := NOSEC.search(token.string)):
                rules = tuple(dict.fromkeys(RULE_ID.findall(match["rest"])))
                found.append(Nosec(tool_path(name), token.start[0], rules))
    return found


def nosec_findings(comments: Sequence[Nosec], report: Mapping[str, Any]) -> list[Finding]:
    """One finding per rule a comment silences: the rules it names, or else what bandit finds
    on its line (a statement over several lines counts on each of them)."""
    on_line: dict[tuple[str, int], list[str]] = {}
    for result in report["results"]:
        path = tool_path(result["filename"])
        for line in result.get("line_range") or [result["line_number"]]:
            on_line.setdefault((path, int(line)), []).append(result["test_id"])
    findings = []
    for comment in comments:
        rules = comment.rules or tuple(dict.fromkeys(on_line.get((comment.path, comment.line), [])))
        where = f"{comment.path}:{comment.line}"
        if not rules:
            findings.append(
                Finding("nosec", "nosec", f"{where} silences nothing", path=comment.path)
            )
        for rule in rules:
            findings.append(Finding("nosec", rule, f"# nosec at {where}", path=comment.path))
    return findings


# --- the scan -----------------------------------------------------------------------------


def run_bandit(
    bandit: Path,
    root: Path,
    reports: Path,
    *,
    policy: Sequence[Acceptance],
    today: datetime.date,
) -> list[Outcome]:
    """bandit's verdict and the `# nosec` audit's verdict."""
    targets, severity = bandit_settings(root / "pyproject.toml")
    base: list[str | Path] = [bandit, "-q", "-c", "pyproject.toml", "--ignore-nosec", "-r"]
    base += targets
    reports.mkdir(parents=True, exist_ok=True)
    json_report, sarif_report = reports / "bandit.json", reports / "bandit.sarif"
    for report in (json_report, sarif_report):
        report.unlink(missing_ok=True)
    # The same scan twice, for the gate and for GitHub code scanning, at the same time.
    with ThreadPoolExecutor(max_workers=2) as pool:
        as_json = pool.submit(run_tool, [*base, "-f", "json", "-o", json_report], root)
        as_sarif = pool.submit(run_tool, [*base, "-f", "sarif", "-o", sarif_report], root)
        result, _ = as_json.result(), as_sarif.result()
    report = read_report(json_report, "bandit", result)
    if result.returncode not in (0, 1):
        raise GateError(f"bandit failed ({last_line(result.stderr)}): fix [tool.bandit].")
    if report["errors"]:
        names = ", ".join(sorted({error["filename"] for error in report["errors"]}))
        raise GateError(f"bandit could not read {names}: fix them so every file is scanned.")
    files = bandit_scanned(report)
    if not files:
        raise GateError(f"bandit found no Python files in {', '.join(targets)}: fix the targets.")
    lines = int(report["metrics"]["_totals"]["loc"])
    everything = bandit_findings(report)
    floor = SEVERITIES.index(severity)
    failing = [f for f in everything if SEVERITIES.index(f.severity or "low") >= floor]
    fix = f"fix the code ({severity} severity or above fails), or {ACCEPT_HINT}"
    outcome = judge(
        "bandit", f"{len(files)} files, {lines} lines", failing, policy=policy, today=today, fix=fix
    )
    outcome.severities = severity_counts(everything)

    comments = nosec_comments(root, files)
    # A nosec comment is backed only by an acceptance of its rule for its own file.
    per_file = [acceptance for acceptance in policy if acceptance.path is not None]
    nosec = judge(
        "nosec",
        f"{len(comments)} comments in {len({c.path for c in comments})} files",
        nosec_findings(comments, report),
        policy=per_file,
        today=today,
        fix="remove each comment (it hides findings from bandit run by hand), or accept its "
        f"rule for its file in {POLICY_NAME} (id and path) with a reason and an expiry date",
    )
    return [outcome, nosec]
