"""The offline vulnerability database is built from PyPA's advisory repository, and the gate
catches what it lists.

The fixture repository is a real git repository holding two real PyPA advisories (trimmed
version lists): requests PYSEC-2018-28 (one range) and urllib3 PYSEC-2023-192 (two ranges).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sessions.project import LOCK, SCANNER_LOCK
from sessions.security import advisories as safety_db
from sessions.security import session as security
from tests.conftest import ROOT, measured_in

REQUESTS = """\
id: PYSEC-2018-28
details: The Requests package before 2.20.0 for Python sends an HTTP Authorization header to an
  http URI upon receiving a same-hostname https-to-http redirect.
aliases:
- CVE-2018-18074
- GHSA-x84v-xcm2-53pg
modified: '2021-06-10T06:51:40.584908Z'
published: '2018-10-09T00:29:00Z'
affected:
- package:
    name: requests
    ecosystem: PyPI
    purl: pkg:pypi/requests
  ranges:
  - type: ECOSYSTEM
    events:
    - introduced: '0'
    - fixed: 2.20.0
  versions:
  - 2.18.4
  - 2.19.0
  - 2.19.1
"""

URLLIB3 = """\
id: PYSEC-2023-192
details: urllib3 doesn't treat the `Cookie` HTTP header special or provide any helpers for
  managing cookies over HTTP.
aliases:
- CVE-2023-43804
- GHSA-v845-jxx5-vc9f
modified: '2023-11-08T03:55:45.964553Z'
published: '2023-10-04T17:15:00Z'
affected:
- package:
    name: urllib3
    ecosystem: PyPI
    purl: pkg:pypi/urllib3
  ranges:
  - type: GIT
    repo: https://github.com/urllib3/urllib3
    events:
    - introduced: '0'
    - fixed: 644124ecd0b6e417c527191f866daa05a5a2056d
  - type: ECOSYSTEM
    events:
    - introduced: 2.0.0
    - fixed: 2.0.6
    - introduced: '0'
    - fixed: 1.26.17
  versions:
  - 1.26.16
  - 2.0.5
"""

COMMIT_TIME = "2024-10-10T17:35:05+00:00"


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_COMMITTER_DATE": COMMIT_TIME, "GIT_AUTHOR_DATE": COMMIT_TIME}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@pytest.fixture
def advisories(tmp_path: Path) -> Path:
    """A small copy of the PyPA advisory repository: two advisories in one commit."""
    repo = tmp_path / "advisory-database"
    for package, text in (("requests", REQUESTS), ("urllib3", URLLIB3)):
        folder = repo / "vulns" / package
        folder.mkdir(parents=True)
        advisory_id = text.split("\n", 1)[0].removeprefix("id: ")
        (folder / f"{advisory_id}.yaml").write_text(text, encoding="utf-8")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "advisories")
    return repo


# --- OSV ranges -> safety specifiers ------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "specs"),
    [
        ([{"introduced": "0"}, {"fixed": "2.20.0"}], ["<2.20.0"]),
        ([{"introduced": "1.17"}, {"fixed": "1.18.1"}], [">=1.17,<1.18.1"]),
        (
            [
                {"introduced": "2.0.0"},
                {"fixed": "2.0.6"},
                {"introduced": "0"},
                {"fixed": "1.26.17"},
            ],
            [">=2.0.0,<2.0.6", "<1.26.17"],
        ),
        ([{"introduced": "0"}, {"last_affected": "3.1"}], ["<=3.1"]),
        ([{"introduced": "4.0"}], [">=4.0"]),
        ([{"introduced": "0"}], [">=0"]),
        ([{"introduced": "1.0"}, {"limit": "2.0"}], [">=1.0,<2.0"]),
    ],
)
def test_osv_ranges_become_safety_specifiers(
    events: list[dict[str, str]], specs: list[str]
) -> None:
    assert safety_db.range_specs(events) == specs


def test_withdrawn_git_only_and_other_ecosystems() -> None:
    base = {"id": "PYSEC-1", "details": "x", "published": "2020-01-02T00:00:00Z"}
    package = {"name": "Some_Package", "ecosystem": "PyPI"}
    assert safety_db.convert({**base, "withdrawn": "2021-01-01", "affected": [{}]}) == []
    npm = {"package": {"name": "left-pad", "ecosystem": "npm"}, "versions": ["1.0"]}
    assert safety_db.convert({**base, "affected": [npm]}) == []
    git_only = {"package": package, "ranges": [{"type": "GIT", "events": []}], "versions": ["1.0"]}
    ((name, entry),) = safety_db.convert({**base, "affected": [git_only]})
    assert name == "some-package"
    assert entry["specs"] == ["==1.0"]
    assert entry["published_date"] == "2020-01-02"


def test_an_invalid_version_is_dropped_not_passed_to_safety() -> None:
    affected = {"package": {"name": "p", "ecosystem": "PyPI"}, "versions": ["1.0", "not a version"]}
    ((_, entry),) = safety_db.convert({"id": "PYSEC-2", "affected": [affected]})
    assert entry["specs"] == ["==1.0"]


def test_an_advisory_safety_cannot_match_is_named_as_skipped() -> None:
    dated = {"introduced": "0"}, {"fixed": "2019-09-12"}
    steam = {
        "id": "PYSEC-2019-125",
        "affected": [{"package": {"name": "steam", "ecosystem": "PyPI"},
                      "ranges": [{"type": "ECOSYSTEM", "events": list(dated)}]}],
    }  # fmt: skip
    requests = {"id": "PYSEC-3", "affected": [{"package": {"name": "requests", "ecosystem": "PyPI"},
                                               "versions": ["2.0"]}]}  # fmt: skip
    full, short = safety_db.database([steam, requests], "abc", 0)
    assert set(short["vulnerable_packages"]) == {"requests"}
    summary = safety_db.summarize(full)
    assert summary.skipped == ("PYSEC-2019-125 (steam)",)
    assert str(summary).endswith("; skipped, no PEP 440 versions: PYSEC-2019-125 (steam)")


# --- building from a repository -------------------------------------------------------------


@pytest.mark.slow
def test_build_writes_safetys_layout_from_the_repository(advisories: Path, tmp_path: Path) -> None:
    output = tmp_path / "db"
    summary = safety_db.build(advisories, output)
    assert summary == safety_db.Summary(datetime.date(2024, 10, 10), 2, 2)
    assert str(summary) == "advisories as of 2024-10-10, 2 advisories on 2 packages"
    full = json.loads((output / "insecure_full.json").read_text(encoding="utf-8"))
    short = json.loads((output / "insecure.json").read_text(encoding="utf-8"))
    assert short["vulnerable_packages"] == {
        "requests": ["<2.20.0"],
        "urllib3": [">=2.0.0,<2.0.6", "<1.26.17"],
    }
    (requests,) = full["vulnerable_packages"]["requests"]
    assert requests["ids"] == [
        {"id": "PYSEC-2018-28", "type": "pyup"},
        {"id": "CVE-2018-18074", "type": "cve"},
    ]
    assert requests["fixed_versions"] == ["2.20.0"]
    assert short["meta"] == {"schema_version": "2.0.0", "timestamp": 1728581705}
    # The gate's own check accepts it, and its log line reads it back.
    security.check_database(output)
    assert safety_db.describe(output) == f"{output} ({summary})"


@pytest.mark.slow
def test_a_repository_without_advisories_fails_closed(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    git(
        empty,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    with pytest.raises(safety_db.DatabaseError, match="lists no PyPI advisories"):
        safety_db.build(empty, tmp_path / "db")
    assert not (tmp_path / "db" / "insecure.json").exists()


@pytest.mark.slow
def test_a_folder_that_is_no_clone_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(safety_db.DatabaseError, match="is not a git clone"):
        safety_db.build(tmp_path, tmp_path / "db")


@pytest.mark.slow
def test_a_broken_advisory_names_its_file(advisories: Path, tmp_path: Path) -> None:
    (advisories / "vulns" / "requests" / "PYSEC-2018-28.yaml").write_text("id: [", encoding="utf-8")
    with pytest.raises(safety_db.DatabaseError, match=r"PYSEC-2018-28\.yaml cannot be read"):
        safety_db.build(advisories, tmp_path / "db")


@pytest.mark.slow
def test_a_missing_clone_folder_is_cloned_and_kept(advisories: Path, tmp_path: Path) -> None:
    clone = tmp_path / "cache" / "advisory-database"
    summary = safety_db.update(tmp_path / "db", clone, source=advisories.as_uri())
    assert summary.advisories == 2
    assert (clone / "vulns" / "urllib3" / "PYSEC-2023-192.yaml").is_file()
    # A temporary clone (no --advisories) is removed again.
    assert safety_db.update(tmp_path / "db2", None, source=advisories.as_uri()).advisories == 2


@pytest.mark.slow
def test_an_unreachable_repository_fails_with_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(safety_db.DatabaseError, match="git could not clone") as raised:
        safety_db.update(tmp_path / "db", tmp_path / "clone", source=str(tmp_path / "nowhere"))
    assert "--advisories" in str(raised.value)
    assert not (tmp_path / "clone").exists()


def test_describe_an_unreadable_database(tmp_path: Path) -> None:
    assert "not a readable database" in safety_db.describe(tmp_path)


# --- the user's command: nox -s security -- --update-db DIR ----------------------------------


def copy_project(tmp_path: Path, lock: str) -> Path:
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("src", "sessions", "experiments"):
        shutil.copytree(ROOT / folder, project / folder, ignore=ignore)
    for name in ("noxfile.py", "pyproject.toml", ".gitignore", security.POLICY_NAME):
        shutil.copy2(ROOT / name, project / name)
    shutil.copy2(SCANNER_LOCK, project / SCANNER_LOCK.name)
    (project / LOCK.name).write_text(lock, encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    return project


@pytest.mark.slow
def test_update_db_builds_the_database_and_the_gate_fails_a_vulnerable_pin(
    advisories: Path, tmp_path: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    project = copy_project(tmp_path, "urllib3==2.0.5\nrequests==2.32.3\n")
    database = tmp_path / "safety-db"
    env = {k: v for k, v in measured_in(project, child_env).items() if k != security.DB_ENV}
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "security", "--",
         "--update-db", str(database), "--advisories", str(advisories)],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert (database / "insecure.json").is_file() and (database / "insecure_full.json").is_file()
    assert "advisories as of 2024-10-10, 2 advisories on 2 packages" in output
    assert "safety found 1 unaccepted finding(s)" in output
    (line,) = [line for line in output.splitlines() if line.startswith("safety: ")]
    assert line.startswith("safety: PYSEC-2023-192 (") and "urllib3==2.0.5" in line
    assert f"safety database from --update-db: {database}" in output


@pytest.mark.slow
def test_update_db_with_bad_options_says_how_to_call_it(
    tmp_path: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    project = copy_project(tmp_path, "urllib3==2.0.5\n")
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "security", "--", "--advisories", str(tmp_path)],
        cwd=project, env=measured_in(project, child_env), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Usage: nox -s security -- --update-db DIR [--advisories CLONE]." in result.stderr
