"""Rule 6 is real: the `security` gate runs bandit and safety and fails closed on every path.

The slow tests run the real scanners (installed in the tests venv by the security group)
against planted code and a small vulnerability database built here in safety's layout.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

import pytest

from sessions import security
from sessions.project import LOCK
from tests.conftest import ROOT

TODAY = datetime.date(2026, 6, 1)

PLANTED = """
import hashlib
import pickle
import subprocess

import yaml


def handle(command, blob, text, password):
    subprocess.run(command, shell=True)
    obj = pickle.loads(blob)
    config = yaml.load(text)
    token = hashlib.md5(password.encode()).hexdigest()
    return obj, config, token
"""

# Low severity only: below the gate's floor, so it must not fail it.
LOW_ONLY = """
import subprocess


def version():
    return subprocess.run(["git", "--version"], capture_output=True).stdout
"""

PLANTED_RULES = {"B602", "B301", "B506", "B324"}

# A real advisory from the PyPA database (requests < 2.20.0 leaks Authorization headers).
REQUESTS_ADVISORY = "PYSEC-2018-28"
REQUESTS_CVE = "CVE-2018-18074"


def write_database(folder: Path) -> Path:
    """A small vulnerability database in the layout safety 3.x reads with --db."""
    folder.mkdir(parents=True)
    meta = {"schema_version": "2.0.0", "timestamp": 1728581705}
    advisory = {
        "advisory": "Requests before 2.20.0 sends an HTTP Authorization header to an http URI "
        "upon receiving a same-hostname https-to-http redirect.",
        "affected_versions": ["2.18.4", "2.19.0", "2.19.1"],
        "fixed_versions": ["2.20.0"],
        "ids": [{"id": REQUESTS_ADVISORY, "type": "pyup"}, {"id": REQUESTS_CVE, "type": "cve"}],
        "more_info_path": f"/{REQUESTS_ADVISORY}",
        "published_date": "2018-10-09",
        "specs": ["<2.20.0"],
        "transitive": False,
    }
    full = {"meta": {**meta, "base_domain": "https://osv.dev/vulnerability"},
            "vulnerable_packages": {"requests": [advisory]}}  # fmt: skip
    short = {"meta": meta, "vulnerable_packages": {"requests": ["<2.20.0"]}}
    (folder / "insecure_full.json").write_text(json.dumps(full), encoding="utf-8")
    (folder / "insecure.json").write_text(json.dumps(short), encoding="utf-8")
    return folder


def write_policy(folder: Path, *entries: str) -> None:
    (folder / security.POLICY_NAME).write_text("\n".join(entries), encoding="utf-8")


def acceptance(finding_id: str, expires: str, path: str | None = None) -> str:
    extra = f'\npath = "{path}"' if path else ""
    return f'[[accepted]]\nid = "{finding_id}"\nreason = "test"\nexpires = {expires}{extra}\n'


@pytest.fixture(autouse=True)
def unmeasured_scanners(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scanners are not our code: keep coverage's subprocess patch out of them.

    Started from another folder, a measured child resolves the relative `omit` patterns there
    and records this repository's tests as unexecuted source.
    """
    for name in [name for name in os.environ if name.startswith("COVERAGE")]:
        monkeypatch.delenv(name)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return write_database(tmp_path / "safety-db")


@pytest.fixture
def vulnerable_lock(tmp_path: Path) -> Path:
    lock = tmp_path / "vulnerable.lock.txt"
    lock.write_text("requests==2.19.0\n    # via test\nidna==2.7 ; python_version >= '3'\n")
    return lock


def code_project(tmp_path: Path, code: str) -> Path:
    project = tmp_path / "code"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "handlers.py").write_text(code, encoding="utf-8")
    (project / "tests").mkdir()
    (project / "tests" / "test_pkg.py").write_text("def test_x():\n    assert True\n")
    (project / "pyproject.toml").write_text(
        '[tool.bandit]\ntargets = ["pkg", "tests"]\nseverity = "medium"\n'
        'exclude_dirs = ["tests"]\n',
        encoding="utf-8",
    )
    return project


# --- policy ---------------------------------------------------------------------------------


def test_policy_reads_id_reason_and_expiry(tmp_path: Path) -> None:
    write_policy(
        tmp_path, acceptance("PYSEC-1", "2027-01-31"), acceptance("B614", "2027-02-01", "a.py")
    )
    first, second = security.load_policy(tmp_path / security.POLICY_NAME)
    assert first == security.Acceptance("PYSEC-1", "test", datetime.date(2027, 1, 31))
    assert second.path == "a.py"


def test_the_project_policy_is_valid() -> None:
    for entry in security.load_policy(ROOT / security.POLICY_NAME):
        assert entry.reason and entry.expires


def test_no_policy_file_accepts_nothing(tmp_path: Path) -> None:
    assert security.load_policy(tmp_path / "absent.toml") == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('[[accepted]]\nid = "X"\nexpires = 2027-01-01\n', "has no reason"),
        ('[[accepted]]\nid = "X"\nreason = "r"\nexpires = "2027-01-01"\n', "YYYY-MM-DD"),
        ('[[accepted]]\nid = "X"\nreason = "r"\nexpires = 2027-01-01T00:00:00\n', "YYYY-MM-DD"),
        ('[[accepted]]\nid = "X"\nreason = "r"\nexpires = 2027-01-01\nuntil = 1\n', "unknown keys"),
        ('[[accepted]]\nid = "X"\nreason = "r"\nexpires = 2027-01-01\npath = 1\n', "path"),
        ("accepted = [1]\n", "not a table"),
        ("ignore = []\n", r"only \[\[accepted\]\]"),
        ("[[accepted]\n", "not valid TOML"),
    ],
)
def test_a_malformed_policy_fails_closed(tmp_path: Path, entry: str, message: str) -> None:
    write_policy(tmp_path, entry)
    with pytest.raises(security.GateError, match=message):
        security.load_policy(tmp_path / security.POLICY_NAME)


def test_scan_reports_a_malformed_policy_as_a_failure(tmp_path: Path) -> None:
    write_policy(tmp_path, "[[accepted]]\nid = 'X'\n")
    (outcome,) = security.scan(None, root=tmp_path, reports=tmp_path / "reports")
    assert not outcome.passed and "no reason" in str(outcome.problem)


FINDING = security.Finding("safety", "PYSEC-1", "pkg==1.0", aliases=("CVE-1",))


@pytest.mark.parametrize(
    ("expires", "accepted"),
    [("2026-06-02", True), ("2026-06-01", True), ("2026-05-31", False)],
)
def test_an_acceptance_holds_through_its_expiry_date(expires: str, accepted: bool) -> None:
    policy = [security.Acceptance("PYSEC-1", "r", datetime.date.fromisoformat(expires))]
    outcome = security.judge("safety", "1", [FINDING], policy=policy, today=TODAY, fix="upgrade")
    assert outcome.passed is accepted
    assert len(outcome.accepted) == int(accepted)
    if not accepted:
        assert f"PYSEC-1 expired on {expires}" in str(outcome.problem)


def test_a_cve_alias_accepts_and_a_path_limits(tmp_path: Path) -> None:
    later = datetime.date(2027, 1, 1)
    assert FINDING.matches(security.Acceptance("CVE-1", "r", later))
    assert not FINDING.matches(security.Acceptance("PYSEC-2", "r", later))
    bandit = security.Finding("bandit", "B602", "x", path="pkg/a.py")
    assert bandit.matches(security.Acceptance("B602", "r", later, "pkg/a.py"))
    assert not bandit.matches(security.Acceptance("B602", "r", later, "pkg/b.py"))


def test_summary_table_has_a_row_per_tool() -> None:
    outcomes = [
        security.Outcome("bandit", "3 files, 40 lines"),
        security.Outcome("safety", "9 packages (10 pins)", [FINDING], problem="found"),
        security.Outcome("safety", "-", problem="no database"),
    ]
    outcomes[0].accepted.append(FINDING)
    header, rule, bandit, safety, broken = security.summary_table(outcomes).splitlines()
    assert header.split() == ["tool", "scanned", "findings", "verdict"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert bandit.split() == [
        "bandit",
        "3",
        "files,",
        "40",
        "lines",
        "0",
        "(+1",
        "accepted)",
        "pass",
    ]
    assert safety.split()[-2:] == ["1", "FAIL"]
    assert broken.split() == ["safety", "-", "0", "FAIL"]


# --- the lock -------------------------------------------------------------------------------


def test_lock_export_drops_markers_and_keeps_every_pin(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "numpy==2.4.6 ; python_full_version < '3.12'\n"
        "numpy==2.5.5 ; python_full_version >= '3.12'\n"
        "    # via torch\n# a comment\n\nrequests==2.19.0  # inline\n",
        encoding="utf-8",
    )
    pins = security.lock_requirements(lock)
    assert pins == ["numpy==2.4.6", "numpy==2.5.5", "requests==2.19.0"]
    assert security.package_count(pins) == 2


def test_the_project_lock_exports_cleanly() -> None:
    pins = security.lock_requirements(LOCK)
    assert "safety==3.7.0" in pins and "torch==2.13.0" in pins


@pytest.mark.parametrize("content", ["requests>=2\n", "pkg @ https://example.org/pkg.whl\n"])
def test_a_lock_line_that_is_not_a_pin_fails_closed(tmp_path: Path, content: str) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text(content, encoding="utf-8")
    with pytest.raises(security.GateError, match="not an exact pin"):
        security.lock_requirements(lock)


def test_a_missing_or_empty_lock_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(security.GateError, match=r"missing: run `nox -s lock`"):
        security.lock_requirements(tmp_path / "absent.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(security.GateError, match="pins nothing"):
        security.lock_requirements(tmp_path / "empty.txt")


# --- the database ---------------------------------------------------------------------------


def test_a_database_folder_that_does_not_exist_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(security.GateError, match=r"SAFETY_DB_DIR points at .*not a folder"):
        security.check_database(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("content", "detail"),
    [(None, "is missing"), ("{not json", "is not readable JSON"), ("[]", "lists no vuln"),
     ('{"meta": {}}', "lists no vuln"), ('{"vulnerable_packages": {}}', "lists no vuln")],
)  # fmt: skip
def test_a_malformed_database_fails_closed(
    database: Path, content: str | None, detail: str
) -> None:
    target = database / "insecure.json"
    if content is None:
        target.unlink()
    else:
        target.write_text(content, encoding="utf-8")
    with pytest.raises(security.GateError, match=rf"malformed \(insecure.json {detail}"):
        security.check_database(database)


def test_the_built_database_is_well_formed(database: Path) -> None:
    security.check_database(database)


def test_offline_runs_send_safety_through_a_dead_loopback_proxy() -> None:
    env = security.offline_env()
    assert env["HTTPS_PROXY"] == env["https_proxy"] == security.DEAD_PROXY
    assert env["NO_PROXY"] == ""


def test_a_missing_scanner_fails_closed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(security.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(security.GateError, match="not installed here"):
        security.find_tool("bandit", [str(tmp_path)])


# --- bandit, for real -----------------------------------------------------------------------


def test_bandit_settings_come_from_pyproject() -> None:
    targets, severity = security.bandit_settings(ROOT / "pyproject.toml")
    assert targets == ["src", "sessions", "experiments", "noxfile.py"]
    assert severity == "medium"


@pytest.mark.slow
def test_bandit_fails_on_planted_code_naming_each_rule(tmp_path: Path) -> None:
    project = code_project(tmp_path, PLANTED)
    reports = tmp_path / "reports"
    bandit = security.find_tool("bandit", None)
    outcome = security.run_bandit(bandit, project, reports, policy=[], today=TODAY)
    assert outcome.tool == "bandit" and outcome.verdict == "FAIL"
    assert {finding.id for finding in outcome.findings} == PLANTED_RULES
    for rule in PLANTED_RULES:
        assert rule in str(outcome.problem)
    assert "pkg/handlers.py:10" in str(outcome.problem)  # the shell=True line
    assert outcome.scanned.startswith("1 files")  # tests/ is excluded
    sarif = json.loads((reports / "bandit.sarif").read_text(encoding="utf-8"))
    assert {result["ruleId"] for result in sarif["runs"][0]["results"]} == PLANTED_RULES
    report = json.loads((reports / "bandit.json").read_text(encoding="utf-8"))
    assert len(report["results"]) == 4


@pytest.mark.slow
def test_bandit_passes_low_severity_code_and_accepted_findings(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    bandit = security.find_tool("bandit", None)
    low_project = code_project(tmp_path / "low", LOW_ONLY)
    low = security.run_bandit(bandit, low_project, reports, policy=[], today=TODAY)
    assert low.passed, low.problem
    project = code_project(tmp_path / "planted", PLANTED)
    policy = [
        security.Acceptance(rule, "test", datetime.date(2026, 12, 31), "pkg/handlers.py")
        for rule in PLANTED_RULES
    ]
    accepted = security.run_bandit(bandit, project, reports, policy=policy, today=TODAY)
    assert accepted.passed and len(accepted.accepted) == 4


@pytest.mark.slow
def test_bandit_cannot_parse_a_file_fails_closed(tmp_path: Path) -> None:
    project = code_project(tmp_path, "def broken(:\n")
    outcome = security.guarded(
        "bandit",
        lambda: security.run_bandit(
            security.find_tool("bandit", None), project, tmp_path / "r", policy=[], today=TODAY
        ),
    )
    assert "could not read" in str(outcome.problem) and "handlers.py" in str(outcome.problem)


# --- safety, for real -----------------------------------------------------------------------


def run_safety(
    tmp_path: Path, lock: Path, database: str | None, policy: list[security.Acceptance]
) -> security.Outcome:
    safety = security.find_tool("safety", None)
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    return security.guarded(
        "safety",
        lambda: security.run_safety(
            safety, lock, reports, policy=policy, today=TODAY, database=database
        ),
    )


@pytest.mark.slow
def test_safety_fails_on_a_vulnerable_pin_naming_the_advisory(
    tmp_path: Path, database: Path, vulnerable_lock: Path
) -> None:
    outcome = run_safety(tmp_path, vulnerable_lock, str(database), [])
    assert outcome.verdict == "FAIL"
    assert [finding.id for finding in outcome.findings] == [REQUESTS_ADVISORY]
    assert f"{REQUESTS_ADVISORY} (requests==2.19.0)" in str(outcome.problem)
    assert "nox -s lock" in str(outcome.problem)
    assert outcome.scanned == "2 packages (2 pins)"
    report = json.loads((tmp_path / "reports" / "safety.json").read_text(encoding="utf-8"))
    assert report["report_meta"]["local_database_path"] == str(database.resolve())


@pytest.mark.slow
@pytest.mark.parametrize(("expires", "passes"), [("2026-12-31", True), ("2026-01-31", False)])
def test_safety_accepted_finding_passes_until_it_expires(
    tmp_path: Path, database: Path, vulnerable_lock: Path, expires: str, passes: bool
) -> None:
    policy = [security.Acceptance(REQUESTS_CVE, "test", datetime.date.fromisoformat(expires))]
    outcome = run_safety(tmp_path, vulnerable_lock, str(database), policy)
    assert outcome.passed is passes, outcome.problem
    if not passes:
        assert f"{REQUESTS_CVE} expired on {expires}" in str(outcome.problem)


@pytest.mark.slow
def test_safety_with_no_reachable_database_fails_closed(
    tmp_path: Path, vulnerable_lock: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = run_safety(tmp_path, vulnerable_lock, str(tmp_path / "nowhere"), [])
    assert "SAFETY_DB_DIR points at" in str(missing.problem)
    # Online, with the network cut off by a dead proxy: safety reaches no database.
    for name in security.PROXY_VARS:
        monkeypatch.setenv(name, security.DEAD_PROXY)
    for name in security.NO_PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    online = run_safety(tmp_path, vulnerable_lock, None, [])
    assert online.verdict == "FAIL"
    assert "its online database" in str(online.problem)
    assert "set SAFETY_DB_DIR" in str(online.problem)


# --- the session end to end -----------------------------------------------------------------


def run_session(
    project: Path, database: Path, nox_cmd: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {**env, security.DB_ENV: str(database)}
    return subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "security"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_the_project_as_it_stands_passes(
    project_copy: Path, database: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    project = project_copy
    result = run_session(project, database, nox_cmd, child_env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "tool    scanned" in output
    assert len([line for line in output.splitlines() if line.endswith("pass")]) == 2
    for report in ("bandit.json", "bandit.sarif", "safety.json", "safety-requirements.txt"):
        assert (project / "reports" / report).is_file()


@pytest.mark.slow
def test_the_session_fails_closed_with_one_sentence_per_tool(
    project_copy: Path, database: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    project = project_copy
    (project / "experiments" / "planted.py").write_text(PLANTED, encoding="utf-8")
    (project / LOCK.name).write_text("requests==2.19.0\n", encoding="utf-8")
    result = run_session(project, database, nox_cmd, child_env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "bandit found 4 unaccepted finding(s)" in output and "B602" in output
    assert f"safety found 1 unaccepted finding(s): {REQUESTS_ADVISORY}" in output
    assert len([line for line in output.splitlines() if line.endswith("FAIL")]) == 2
