"""safety over every pin of the locks, offline from a local database when one is given.

safety runs from its own venv, installed from the scanner lock, so the locks it scans can pin
anything, however old or conflicting with safety's own dependencies.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sessions.security.policy import ACCEPT_HINT, Acceptance, Finding, GateError, Outcome, judge
from sessions.security.tools import last_line, read_report, run_tool

# A local safety database folder (insecure.json + insecure_full.json); unset: safety's online
# database. safety's own `scan` command reads the same variable for the same purpose.
DB_ENV = "SAFETY_DB_DIR"
DB_FILES = ("insecure.json", "insecure_full.json")
SAFETY_FOUND_VULNERABILITIES = 64
# safety 3.7.0 exit codes that mean it had no database to check against.
SAFETY_NO_DATABASE = {67: "could not find", 68: "could not load or reach"}
# With --db, safety 3.7.0 still asks its auth server for OpenID metadata at start-up (and
# ignores the answer). A dead loopback proxy makes that request fail at once, on this machine.
DEAD_PROXY = "http://127.0.0.1:9"
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")


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
    """One finding per advisory: package, version, advisory id (CVE as alias), fixed version."""
    findings = []
    for vulnerability in report["vulnerabilities"]:
        cve = vulnerability.get("CVE")
        if isinstance(cve, dict):
            cve = cve.get("name")
        aliases = (cve,) if isinstance(cve, str) and cve else ()
        fixed = [str(version) for version in vulnerability.get("fixed_versions") or []]
        where = f"{vulnerability['package_name']}=={vulnerability['analyzed_version']}, "
        where += f"fixed in {', '.join(fixed)}" if fixed else "no fixed version yet"
        if aliases:
            where = f"{aliases[0]}, {where}"
        findings.append(Finding("safety", vulnerability["vulnerability_id"], where, aliases))
    return findings


def offline_env() -> dict[str, str]:
    """Proxy settings that keep an offline safety run on this machine (see DEAD_PROXY)."""
    env = dict.fromkeys(PROXY_VARS, DEAD_PROXY)
    env.update(dict.fromkeys(NO_PROXY_VARS, ""))
    return env


def no_database(code: int, database: str | None, detail: str) -> GateError:
    """The sentence for a safety run that had no database, true to where it looked."""
    if database:
        return GateError(
            f"safety {SAFETY_NO_DATABASE[code]} the database in {database} ({detail}): "
            f"point {DB_ENV} at a complete safety database, or unset it to go online."
        )
    return GateError(
        f"safety {SAFETY_NO_DATABASE[code]} its online database ({detail}): "
        f"check the network, or set {DB_ENV} to a local database."
    )


def run_safety(
    safety: Path,
    locks: Sequence[Path],
    reports: Path,
    *,
    policy: Sequence[Acceptance],
    today: datetime.date,
    database: str | None,
) -> Outcome:
    pins = sorted({pin for lock in locks for pin in lock_requirements(lock)})
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
        raise no_database(result.returncode, database, last_line(result.stderr))
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
    fix = f"upgrade the pins in pyproject.toml and run `nox -s lock`, or {ACCEPT_HINT}"
    return judge("safety", scanned, safety_findings(report), policy=policy, today=today, fix=fix)
