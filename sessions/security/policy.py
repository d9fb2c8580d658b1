"""Accepted findings (`security-policy.toml`) and the verdict on each scanner's findings.

An acceptance names a finding's id, why it is acceptable and the date it expires; a `path`
limits it to one file. It is the only way to let a finding through: `# nosec` comments need
one too, and detect-secrets' inline allowlist comments are switched off.
"""

from __future__ import annotations

import datetime
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

POLICY_NAME = "security-policy.toml"
ACCEPT_HINT = f"accept each in {POLICY_NAME} with a reason and an expiry date"


class GateError(Exception):
    """The gate cannot do its job; the message is the one sentence the user sees."""


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


@dataclass(frozen=True)
class Finding:
    tool: str
    id: str
    where: str
    aliases: tuple[str, ...] = ()
    path: str | None = None
    severity: str | None = None

    def matches(self, acceptance: Acceptance) -> bool:
        if acceptance.id not in (self.id, *self.aliases):
            return False
        return acceptance.path is None or acceptance.path == self.path

    def __str__(self) -> str:
        return f"{self.id} ({self.where})"


@dataclass
class Outcome:
    """What one scanner did: the row of the summary table, its open findings, the sentence."""

    tool: str
    scanned: str
    findings: list[Finding] = field(default_factory=list)
    accepted: list[Finding] = field(default_factory=list)
    problem: str | None = None
    # Why an open finding is open although the policy names it (an expired acceptance).
    notes: dict[Finding, str] = field(default_factory=dict)
    # Every finding per severity, accepted or not, below the failing floor or not (bandit).
    severities: dict[str, int] | None = None

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
    """Split findings into accepted (by an unexpired acceptance) and open ones.

    The sentence counts the open findings; each is printed on its own line by the session.
    """
    outcome = Outcome(tool, scanned)
    for finding in findings:
        matching = [acceptance for acceptance in policy if finding.matches(acceptance)]
        if any(not acceptance.expired(today) for acceptance in matching):
            outcome.accepted.append(finding)
            continue
        outcome.findings.append(finding)
        if matching:
            dates = sorted({acceptance.expires.isoformat() for acceptance in matching})
            outcome.notes[finding] = f"its acceptance expired on {', '.join(dates)}"
    if outcome.findings:
        expired = (
            f", {len(outcome.notes)} of them with an expired acceptance" if outcome.notes else ""
        )
        outcome.problem = (
            f"{tool} found {len(outcome.findings)} unaccepted finding(s){expired}: {fix}."
        )
    return outcome
