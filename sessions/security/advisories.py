"""An offline vulnerability database for `safety check --db`, built from PyPA's advisories.

The PyPA advisory database (https://github.com/pypa/advisory-database, CC-BY 4.0) is a git
repository of OSV advisories, one YAML file each under `vulns/<package>/`. `build` converts
it into the two files safety 3.x reads with `--db` (schema 2.0.0):

- `insecure.json`: package -> the version specifiers that have advisories;
- `insecure_full.json`: package -> the advisories, each with its PYSEC id (safety's
  vulnerability id, usable in the policy's accepted list), CVE aliases and affected versions.

No account and no vendor server: `nox -s security -- --update-db DIR` clones the repository,
converts it into DIR and runs the gate against it (`--advisories CLONE` keeps the clone, or
reuses one: CI caches it per day).

    python -m sessions.security.advisories --update-db DIR [--advisories CLONE]

runs the conversion alone; it needs pyyaml and packaging (the security group installs both).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessions.files import remove_tree

if TYPE_CHECKING:
    import nox

ADVISORY_REPOSITORY = "https://github.com/pypa/advisory-database"
OSV_BASE = "https://osv.dev/vulnerability"
SCHEMA_VERSION = "2.0.0"
FULL, INDEX = "insecure_full.json", "insecure.json"


class DatabaseError(Exception):
    """The database cannot be built; the message is the one sentence the user sees."""


@dataclass(frozen=True)
class Summary:
    """What a built database holds, for the gate's log line."""

    date: datetime.date
    advisories: int
    packages: int
    # Advisories whose versions are not PEP 440 (e.g. "fixed: 2019-09-12"): safety cannot
    # match them, and one such specifier would stop its whole check.
    skipped: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = (
            f"advisories as of {self.date.isoformat()}, {self.advisories} advisories "
            f"on {self.packages} packages"
        )
        if self.skipped:
            text += f"; skipped, no PEP 440 versions: {', '.join(self.skipped)}"
        return text


# --- OSV -> safety ----------------------------------------------------------------------------


def canonical_name(name: str) -> str:
    """A package name as safety looks it up (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def range_specs(events: Sequence[Mapping[str, str]]) -> list[str]:
    """One specifier per affected interval of an OSV ECOSYSTEM range.

    `introduced: "0"` opens at the first release; `fixed` and `limit` close before a version,
    `last_affected` at it; an interval that never closes covers every later release.
    """
    specs: list[str] = []
    start: str | None = None
    opened = False
    for event in events:
        if "introduced" in event:
            start, opened = event["introduced"], True
            continue
        lower = [] if start in (None, "0") else [f">={start}"]
        if "fixed" in event or "limit" in event:
            specs.append(",".join([*lower, f"<{event.get('fixed') or event['limit']}"]))
        elif "last_affected" in event:
            specs.append(",".join([*lower, f"<={event['last_affected']}"]))
        else:
            continue
        start, opened = None, False
    if opened:
        specs.append(f">={start}" if start not in (None, "0") else ">=0")
    return specs


def valid_spec(spec: str) -> bool:
    """safety parses every specifier of a matched package and stops on an invalid one."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet  # noqa: PLC0415

    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        return False
    return True


def convert(advisory: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(package, safety entry) for each PyPI package an OSV advisory affects."""
    if advisory.get("withdrawn"):
        return []
    advisory_id = str(advisory["id"])
    cves = [alias for alias in advisory.get("aliases") or [] if str(alias).startswith("CVE-")]
    published = str(advisory.get("published") or advisory.get("modified") or "")[:10]
    entries = []
    for affected in advisory.get("affected") or []:
        package = affected.get("package") or {}
        if package.get("ecosystem") != "PyPI" or not package.get("name"):
            continue
        ranges = [r for r in affected.get("ranges") or [] if r.get("type") == "ECOSYSTEM"]
        versions = [str(version) for version in affected.get("versions") or []]
        specs = [spec for r in ranges for spec in range_specs(r.get("events") or [])]
        if not ranges:  # only git commit ranges: the listed releases are what is affected
            specs = [f"=={version}" for version in versions]
        specs = [spec for spec in specs if valid_spec(spec)]
        if not specs:
            continue
        fixed = [e["fixed"] for r in ranges for e in r.get("events") or [] if "fixed" in e]
        entry = {
            "advisory": str(advisory.get("details") or advisory.get("summary") or advisory_id),
            "affected_versions": sorted(set(versions)),
            "fixed_versions": [str(version) for version in fixed],
            "ids": [{"id": advisory_id, "type": "pyup"}]
            + [{"id": cve, "type": "cve"} for cve in cves],
            "more_info_path": f"/{advisory_id}",
            "published_date": published,
            "specs": specs,
            "transitive": False,
        }
        entries.append((canonical_name(str(package["name"])), entry))
    return entries


def pypi_packages(advisory: Mapping[str, Any]) -> list[str]:
    """The PyPI packages an advisory names."""
    return [
        str(affected["package"]["name"])
        for affected in advisory.get("affected") or []
        if (affected.get("package") or {}).get("ecosystem") == "PyPI"
        and affected["package"].get("name")
    ]


def read_advisories(repository: Path) -> Iterable[tuple[Path, dict[str, Any]]]:
    """Every advisory file under `vulns/`, parsed."""
    # The security venv has pyyaml; nox's own environment may not.
    import yaml  # noqa: PLC0415

    try:  # libyaml's parser, where the wheel has it, reads the thousands of files much faster
        from yaml import CSafeLoader as SafeLoader  # noqa: PLC0415
    except ImportError:  # pragma: no cover - pyyaml built without libyaml
        from yaml import SafeLoader  # noqa: PLC0415

    for path in sorted((repository / "vulns").glob("*/*.yaml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=SafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise DatabaseError(
                f"The advisory {path.relative_to(repository)} cannot be read ({error}): "
                "update or re-clone the advisory repository."
            ) from error
        if not isinstance(data, dict) or "id" not in data:
            raise DatabaseError(
                f"The advisory {path.relative_to(repository)} is not an OSV record: "
                "update or re-clone the advisory repository."
            )
        yield path, data


def database(
    advisories: Iterable[Mapping[str, Any]], commit: str, timestamp: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The contents of insecure_full.json and insecure.json."""
    packages: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    for advisory in advisories:
        entries = convert(advisory)
        for name, entry in entries:
            packages.setdefault(name, []).append(entry)
        if not entries and not advisory.get("withdrawn") and pypi_packages(advisory):
            skipped.append(f"{advisory['id']} ({', '.join(pypi_packages(advisory))})")
    if not packages:
        raise DatabaseError(
            "The advisory repository lists no PyPI advisories: point --advisories at a clone "
            f"of {ADVISORY_REPOSITORY}."
        )
    packages = {name: packages[name] for name in sorted(packages)}
    full_meta = {
        "advisory": f"Converted from the PyPA advisory database (CC-BY 4.0), commit {commit}",
        "base_domain": OSV_BASE,
        "packages": {},
        "schema_version": SCHEMA_VERSION,
        "severities": {},
        "timestamp": timestamp,
        "skipped": skipped,
    }
    index = {
        name: list(dict.fromkeys(spec for entry in entries for spec in entry["specs"]))
        for name, entries in packages.items()
    }
    full = {"meta": full_meta, "vulnerable_packages": packages}
    short = {
        "meta": {"schema_version": SCHEMA_VERSION, "timestamp": timestamp},
        "vulnerable_packages": index,
    }
    return full, short


# --- files and git ----------------------------------------------------------------------------


def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, encoding="utf-8",
        errors="replace",
    )  # fmt: skip


def clone(source: str, destination: Path) -> None:
    """A shallow clone of the advisory repository (only its newest state is needed)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    result = git("clone", "--quiet", "--depth", "1", source, str(destination))
    if result.returncode != 0:
        remove_tree(destination, missing_ok=True)
        reason = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise DatabaseError(
            f"git could not clone {source} ({reason[0]}): check the network, or clone it "
            "yourself and pass the folder with --advisories."
        )


def head_commit(repository: Path) -> tuple[str, int]:
    """The commit the advisories come from and its time (the database's date)."""
    result = git("log", "-1", "--format=%H %ct", cwd=repository)
    if result.returncode != 0 or len(result.stdout.split()) != 2:
        raise DatabaseError(
            f"{repository} is not a git clone of the advisory database: clone "
            f"{ADVISORY_REPOSITORY} there, or pass a missing folder to have it cloned."
        )
    commit, seconds = result.stdout.split()
    return commit, int(seconds)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write a file whole or not at all: a reader never sees half a database file."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(data, stream, sort_keys=True)
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def build(repository: Path, output: Path) -> Summary:
    """Convert a clone of the advisory repository into safety's layout in `output`."""
    commit, timestamp = head_commit(repository)
    full, short = database((data for _, data in read_advisories(repository)), commit, timestamp)
    output.mkdir(parents=True, exist_ok=True)
    # The full file first: the index names no package that the full file lacks.
    write_json(output / FULL, full)
    write_json(output / INDEX, short)
    return summarize(full)


def update(output: Path, advisories: Path | None, source: str = ADVISORY_REPOSITORY) -> Summary:
    """Build the database from `advisories` (cloned there first if missing) or a fresh clone."""
    if advisories is not None:
        if not advisories.exists():
            clone(source, advisories)
        return build(advisories, output)
    with tempfile.TemporaryDirectory() as temp:
        clone_dir = Path(temp) / "advisory-database"
        clone(source, clone_dir)
        try:
            return build(clone_dir, output)
        finally:
            remove_tree(clone_dir)  # git's pack files are read-only on Windows


# --- reading a database back ------------------------------------------------------------------


def summarize(full: Mapping[str, Any]) -> Summary:
    packages = full["vulnerable_packages"]
    stamp = datetime.datetime.fromtimestamp(int(full["meta"]["timestamp"]), tz=datetime.UTC)
    count = sum(len(entries) for entries in packages.values())
    skipped = tuple(str(entry) for entry in full["meta"].get("skipped", []))
    return Summary(stamp.date(), count, len(packages), skipped)


def describe(folder: Path) -> str:
    """The database's date and advisory count, or why they cannot be read (the gate then
    fails on that database with its own sentence)."""
    try:
        full = json.loads((folder / FULL).read_text(encoding="utf-8"))
        return f"{folder} ({summarize(full)})"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"{folder} (not a readable database: {type(error).__name__})"


# --- the command --------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="nox -s security --",
        description="Build safety's offline database from the PyPA advisory database, then scan.",
    )
    cli.add_argument(
        "--update-db", type=Path, required=True, metavar="DIR",
        help="folder to write insecure.json and insecure_full.json into",
    )  # fmt: skip
    cli.add_argument(
        "--advisories", type=Path, metavar="CLONE",
        help=f"a clone of {ADVISORY_REPOSITORY} (cloned there if missing); "
        "default: a temporary clone",
    )  # fmt: skip
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    try:
        summary = update(options.update_db.resolve(), options.advisories)
    except DatabaseError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"Wrote the safety database {options.update_db} ({summary}).")
    return 0


def update_in_session(session: nox.Session) -> Path:
    """`nox -s security -- --update-db DIR ...`: build the database in the session's venv
    (which has pyyaml and packaging); returns DIR for the gate to scan against."""
    try:
        options = parser().parse_args(session.posargs)
    except SystemExit as stop:
        if stop.code == 0:  # --help was printed
            session.skip("Printed the options of the security session.")
        session.error("Usage: nox -s security -- --update-db DIR [--advisories CLONE].")
    session.run("python", "-m", "sessions.security.advisories", *session.posargs)
    return Path(options.update_db).resolve()


if __name__ == "__main__":
    sys.exit(main())
