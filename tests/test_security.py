"""Rule 6 is real: the `security` gate runs bandit, a nosec audit, safety and detect-secrets and
fails closed on every path.

The slow tests run the real scanners (installed in the tests venv by the security group)
against planted code, planted pins and planted secrets, and a small vulnerability database
built here in safety's layout.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sessions.files import tool_path
from sessions.project import LOCK, SCANNER_LOCK
from sessions.security import bandit as security_bandit
from sessions.security import policy as policy_module
from sessions.security import safety as security_safety
from sessions.security import secrets as security_secrets
from sessions.security import session as security
from sessions.security import tools as security_tools
from sessions.security.policy import Acceptance, Finding, GateError, Outcome
from tests.conftest import ROOT, measured_in

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
    (folder / policy_module.POLICY_NAME).write_text("\n".join(entries), encoding="utf-8")


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
    first, second = policy_module.load_policy(tmp_path / policy_module.POLICY_NAME)
    assert first == Acceptance("PYSEC-1", "test", datetime.date(2027, 1, 31))
    assert second.path == "a.py"


def test_the_project_policy_is_valid() -> None:
    for entry in policy_module.load_policy(ROOT / policy_module.POLICY_NAME):
        assert entry.reason and entry.expires


def test_no_policy_file_accepts_nothing(tmp_path: Path) -> None:
    assert policy_module.load_policy(tmp_path / "absent.toml") == []


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
    with pytest.raises(GateError, match=message):
        policy_module.load_policy(tmp_path / policy_module.POLICY_NAME)


def test_scan_reports_a_malformed_policy_as_a_failure(tmp_path: Path) -> None:
    write_policy(tmp_path, "[[accepted]]\nid = 'X'\n")
    (outcome,) = security.scan(None, root=tmp_path, reports=tmp_path / "reports")
    assert not outcome.passed and "no reason" in str(outcome.problem)


FINDING = Finding("safety", "PYSEC-1", "pkg==1.0", aliases=("CVE-1",))


@pytest.mark.parametrize(
    ("expires", "accepted"),
    [("2026-06-02", True), ("2026-06-01", True), ("2026-05-31", False)],
)
def test_an_acceptance_holds_through_its_expiry_date(expires: str, accepted: bool) -> None:
    policy = [Acceptance("PYSEC-1", "r", datetime.date.fromisoformat(expires))]
    outcome = policy_module.judge("safety", "1", [FINDING], policy=policy, today=TODAY, fix="x")
    assert outcome.passed is accepted
    assert len(outcome.accepted) == int(accepted)
    if not accepted:
        assert outcome.notes[FINDING] == f"its acceptance expired on {expires}"
        assert "1 of them with an expired acceptance" in str(outcome.problem)
        (line,) = security.finding_lines([outcome])
        assert line == f"safety: PYSEC-1 (pkg==1.0); its acceptance expired on {expires}"


def test_a_cve_alias_accepts_and_a_path_limits(tmp_path: Path) -> None:
    later = datetime.date(2027, 1, 1)
    assert FINDING.matches(Acceptance("CVE-1", "r", later))
    assert not FINDING.matches(Acceptance("PYSEC-2", "r", later))
    bandit = Finding("bandit", "B602", "x", path="pkg/a.py")
    assert bandit.matches(Acceptance("B602", "r", later, "pkg/a.py"))
    assert not bandit.matches(Acceptance("B602", "r", later, "pkg/b.py"))


def test_summary_table_has_a_row_per_scan_and_bandit_counts_per_severity() -> None:
    outcomes = [
        Outcome("bandit", "3 files, 40 lines", severities={"high": 0, "medium": 1, "low": 7}),
        Outcome("safety", "9 packages (10 pins)", [FINDING], problem="found"),
        Outcome("safety", "-", problem="no database"),
    ]
    outcomes[0].accepted.append(FINDING)
    header, rule, bandit, safety, broken = security.summary_table(outcomes).splitlines()
    assert header.split() == ["tool", "scanned", "findings", "high", "medium", "low", "verdict"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert bandit.split() == [
        "bandit", "3", "files,", "40", "lines", "0", "(+1", "accepted)", "0", "1", "7", "pass"
    ]  # fmt: skip
    assert safety.split()[-5:] == ["1", "-", "-", "-", "FAIL"]
    assert broken.split() == ["safety", "-", "0", "-", "-", "-", "FAIL"]


def test_each_open_finding_is_one_line_folded_only_for_a_terminal() -> None:
    findings = [
        Finding("bandit", f"B{n:03}", f"rule, medium, pkg/module_{n}.py:{n}") for n in range(60)
    ]
    outcome = Outcome("bandit", "1 files", findings, problem="bandit found 60")
    text = security.report([outcome], width=None)
    lines = text.splitlines()
    assert lines.count("Open findings:") == 1
    assert [line for line in lines if line.startswith("bandit: ")] == [
        f"bandit: B{n:03} (rule, medium, pkg/module_{n}.py:{n})" for n in range(60)
    ]
    assert "\x1b" not in text
    long = Finding("secrets", "f" * 40, "Secret Keyword, " + "deep/" * 12 + "config.py:3")
    folded = security.wrapped(security.finding_lines([Outcome("secrets", "-", [long])])[0], 50)
    assert all(len(line) <= 50 for line in folded.splitlines())
    assert folded.splitlines()[1].startswith("    ")


def test_tool_messages_lose_their_colour_codes() -> None:
    assert security_tools.last_line("ok\n\x1b[31mUnable to load the database\x1b[0m\n") == (
        "Unable to load the database"
    )


def test_the_database_line_is_true_to_the_configuration(database: Path) -> None:
    online = security.database_line(None)
    assert "online (set SAFETY_DB_DIR or pass --update-db" in online
    local = security.database_line(str(database))
    assert local.startswith(f"safety database from SAFETY_DB_DIR: {database} (advisories as of")
    assert "set SAFETY_DB_DIR" not in local
    built = security.database_line(str(database), "--update-db")
    assert built.startswith(f"safety database from --update-db: {database} (")


# --- the lock -------------------------------------------------------------------------------


def test_lock_export_drops_markers_and_keeps_every_pin(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "numpy==2.4.6 ; python_full_version < '3.12'\n"
        "numpy==2.5.5 ; python_full_version >= '3.12'\n"
        "    # via torch\n# a comment\n\nrequests==2.19.0  # inline\n",
        encoding="utf-8",
    )
    pins = security_safety.lock_requirements(lock)
    assert pins == ["numpy==2.4.6", "numpy==2.5.5", "requests==2.19.0"]
    assert security_safety.package_count(pins) == 2


def test_the_project_lock_exports_cleanly() -> None:
    pins = security_safety.lock_requirements(LOCK)
    assert "safety==3.7.0" in pins and "torch==2.13.0" in pins


def test_the_scanners_have_a_lock_of_their_own_that_the_gate_also_scans() -> None:
    from sessions.lock import lock_commands

    pins = security_safety.lock_requirements(SCANNER_LOCK)
    names = {pin.split("==")[0] for pin in pins}
    assert {"bandit", "safety", "detect-secrets"} <= names and "torch" not in names
    main, scanners = lock_commands("--upgrade")
    assert main[main.index("--output-file") + 1] == LOCK.name
    assert scanners[scanners.index("--output-file") + 1] == SCANNER_LOCK.name
    assert scanners.count("--group") == 1 and "pyproject.toml:security" in scanners
    assert security.SCANNED_LOCKS == (LOCK, SCANNER_LOCK)


@pytest.mark.parametrize("content", ["requests>=2\n", "pkg @ https://example.org/pkg.whl\n"])
def test_a_lock_line_that_is_not_a_pin_fails_closed(tmp_path: Path, content: str) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text(content, encoding="utf-8")
    with pytest.raises(GateError, match="not an exact pin"):
        security_safety.lock_requirements(lock)


def test_a_missing_or_empty_lock_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(GateError, match=r"missing: run `nox -s lock`"):
        security_safety.lock_requirements(tmp_path / "absent.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(GateError, match="pins nothing"):
        security_safety.lock_requirements(tmp_path / "empty.txt")


# --- the database ---------------------------------------------------------------------------


def test_a_database_folder_that_does_not_exist_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(GateError, match=r"SAFETY_DB_DIR points at .*not a folder"):
        security_safety.check_database(tmp_path / "nowhere")


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
    with pytest.raises(GateError, match=rf"malformed \(insecure.json {detail}"):
        security_safety.check_database(database)


def test_the_built_database_is_well_formed(database: Path) -> None:
    security_safety.check_database(database)


def test_offline_runs_send_safety_through_a_dead_loopback_proxy() -> None:
    env = security_safety.offline_env()
    assert env["HTTPS_PROXY"] == env["https_proxy"] == security_safety.DEAD_PROXY
    assert env["NO_PROXY"] == ""


def test_a_missing_scanner_fails_closed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(security_tools.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(GateError, match="not installed here"):
        security_tools.find_tool("bandit", [str(tmp_path)])


# --- bandit, for real -----------------------------------------------------------------------


def test_bandit_settings_come_from_pyproject() -> None:
    targets, severity = security_bandit.bandit_settings(ROOT / "pyproject.toml")
    assert targets == ["src", "sessions", "experiments", "noxfile.py"]
    assert severity == "medium"


def scan_bandit(project: Path, reports: Path, policy: list[Acceptance]) -> list[Outcome]:
    bandit = security_tools.find_tool("bandit", None)
    return security_bandit.run_bandit(bandit, project, reports, policy=policy, today=TODAY)


@pytest.mark.slow
def test_bandit_fails_on_planted_code_naming_each_rule(tmp_path: Path) -> None:
    project = code_project(tmp_path, PLANTED)
    reports = tmp_path / "reports"
    outcome, nosec = scan_bandit(project, reports, [])
    assert outcome.tool == "bandit" and outcome.verdict == "FAIL"
    assert {finding.id for finding in outcome.findings} == PLANTED_RULES
    assert "bandit found 4 unaccepted finding(s)" in str(outcome.problem)
    lines = security.finding_lines([outcome])
    assert any("pkg/handlers.py:10" in line and "B602" in line for line in lines)  # shell=True
    assert outcome.scanned.startswith("1 files")  # tests/ is excluded
    assert nosec.passed and nosec.scanned == "0 comments in 0 files"
    # The reports hold the low-severity findings too (imports of subprocess and pickle).
    report = json.loads((reports / "bandit.json").read_text(encoding="utf-8"))
    rules = {result["test_id"] for result in report["results"]}
    assert PLANTED_RULES | {"B404", "B403"} <= rules
    assert outcome.severities is not None and outcome.severities["low"] >= 2
    sarif = json.loads((reports / "bandit.sarif").read_text(encoding="utf-8"))
    assert {result["ruleId"] for result in sarif["runs"][0]["results"]} == rules


@pytest.mark.slow
def test_bandit_passes_low_severity_code_and_accepted_findings(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    low, _ = scan_bandit(code_project(tmp_path / "low", LOW_ONLY), reports, [])
    assert low.passed, low.problem
    assert low.severities == {"high": 0, "medium": 0, "low": 3}  # B404, B607, B603
    project = code_project(tmp_path / "planted", PLANTED)
    policy = [
        Acceptance(rule, "test", datetime.date(2026, 12, 31), "pkg/handlers.py")
        for rule in PLANTED_RULES
    ]
    accepted, _ = scan_bandit(project, reports, policy)
    assert accepted.passed and len(accepted.accepted) == 4


@pytest.mark.slow
def test_bandit_cannot_parse_a_file_fails_closed(tmp_path: Path) -> None:
    project = code_project(tmp_path, "def broken(:\n")
    (outcome,) = security.guarded("bandit", lambda: scan_bandit(project, tmp_path / "r", []))
    assert "could not read" in str(outcome.problem) and "handlers.py" in str(outcome.problem)


NOSEC_CODE = """
import subprocess

HINT = "a string that mentions # nosec is no comment"


def run(command):
    subprocess.run(command, shell=True)  # nosec B602 - planted
    subprocess.run(  # nosec
        command, shell=True
    )
    return subprocess.run(command)  # nosec: B603, B607
"""


def test_every_nosec_comment_is_found_with_the_rules_it_names(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text(NOSEC_CODE, encoding="utf-8")
    found = security_bandit.nosec_comments(tmp_path, ["pkg/a.py"])
    assert found == [
        security_bandit.Nosec("pkg/a.py", 8, ("B602",)),
        security_bandit.Nosec("pkg/a.py", 9, ()),
        security_bandit.Nosec("pkg/a.py", 12, ("B603", "B607")),
    ]
    # A bare comment silences what bandit finds on its statement's lines, or nothing.
    report = {"results": [{"filename": "pkg/a.py", "line_number": 9, "line_range": [9, 10],
                           "test_id": "B602"}]}  # fmt: skip
    findings = security_bandit.nosec_findings(
        [*found, security_bandit.Nosec("b.py", 1, ())], report
    )
    assert [str(finding) for finding in findings] == [
        "B602 (# nosec at pkg/a.py:8)",
        "B602 (# nosec at pkg/a.py:9)",
        "B603 (# nosec at pkg/a.py:12)",
        "B607 (# nosec at pkg/a.py:12)",
        "nosec (b.py:1 silences nothing)",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("expires", "passes"), [(None, False), ("2026-12-31", True), ("2026-01-31", False)]
)
def test_a_nosec_comment_needs_a_current_acceptance_of_its_rule_for_its_file(
    tmp_path: Path, expires: str | None, passes: bool
) -> None:
    code = "import subprocess\n\n\ndef run(c):\n    subprocess.run(c, shell=True)  # nosec B602\n"
    project = code_project(tmp_path, code)
    policy = []
    if expires:
        policy.append(
            Acceptance("B602", "t", datetime.date.fromisoformat(expires), "pkg/handlers.py")
        )
    bandit, nosec = scan_bandit(project, tmp_path / "reports", policy)
    # bandit ignores the comment: the finding stands or falls with the policy alone.
    assert bandit.passed is passes and nosec.passed is passes
    assert nosec.scanned == "1 comments in 1 files"
    if not passes:
        (line,) = security.finding_lines([nosec])
        assert line.startswith("nosec: B602 (# nosec at pkg/handlers.py:5)")
        assert ("expired on" in line) is (expires is not None)


# --- safety, for real -----------------------------------------------------------------------


def run_safety(
    tmp_path: Path, lock: Path, database: str | None, policy: list[Acceptance]
) -> Outcome:
    safety = security_tools.find_tool("safety", None)
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    (outcome,) = security.guarded(
        "safety",
        lambda: security_safety.run_safety(
            safety, [lock], reports, policy=policy, today=TODAY, database=database
        ),
    )
    return outcome


@pytest.mark.slow
def test_safety_fails_on_a_vulnerable_pin_naming_the_advisory(
    tmp_path: Path, database: Path, vulnerable_lock: Path
) -> None:
    outcome = run_safety(tmp_path, vulnerable_lock, str(database), [])
    assert outcome.verdict == "FAIL"
    assert [finding.id for finding in outcome.findings] == [REQUESTS_ADVISORY]
    assert security.finding_lines([outcome]) == [
        f"safety: {REQUESTS_ADVISORY} ({REQUESTS_CVE}, requests==2.19.0, fixed in 2.20.0)"
    ]
    assert "nox -s lock" in str(outcome.problem)
    assert outcome.scanned == "2 packages (2 pins)"
    report = json.loads((tmp_path / "reports" / "safety.json").read_text(encoding="utf-8"))
    assert report["report_meta"]["local_database_path"] == str(database.resolve())


@pytest.mark.slow
@pytest.mark.parametrize(("expires", "passes"), [("2026-12-31", True), ("2026-01-31", False)])
def test_safety_accepted_finding_passes_until_it_expires(
    tmp_path: Path, database: Path, vulnerable_lock: Path, expires: str, passes: bool
) -> None:
    policy = [Acceptance(REQUESTS_CVE, "test", datetime.date.fromisoformat(expires))]
    outcome = run_safety(tmp_path, vulnerable_lock, str(database), policy)
    assert outcome.passed is passes, outcome.problem
    if not passes:
        assert outcome.notes[outcome.findings[0]] == f"its acceptance expired on {expires}"


@pytest.mark.slow
def test_safety_with_no_reachable_database_fails_closed(
    tmp_path: Path, vulnerable_lock: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = run_safety(tmp_path, vulnerable_lock, str(tmp_path / "nowhere"), [])
    assert "SAFETY_DB_DIR points at" in str(missing.problem)
    # Online, with the network cut off by a dead proxy: safety reaches no database.
    for name in security_safety.PROXY_VARS:
        monkeypatch.setenv(name, security_safety.DEAD_PROXY)
    for name in security_safety.NO_PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    online = run_safety(tmp_path, vulnerable_lock, None, [])
    assert online.verdict == "FAIL"
    assert "its online database" in str(online.problem)
    assert "set SAFETY_DB_DIR" in str(online.problem)
    assert "\x1b" not in str(online.problem)


def test_a_configured_database_that_fails_does_not_say_set_the_variable() -> None:
    local = str(security_safety.no_database(68, "/db", "unreadable"))
    assert "the database in /db" in local and "set SAFETY_DB_DIR" not in local
    assert "point SAFETY_DB_DIR at a complete" in local


# --- secrets, for real ----------------------------------------------------------------------

# The example keys from AWS's own documentation: fake, and shaped like real ones.
AWS_PLANT = """
import boto3


def client():
    return boto3.client(
        "s3",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
"""


def git_folder(folder: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder


def scan_secrets(project: Path, policy: list[Acceptance]) -> Outcome:
    tool, git = security_tools.find_tool("detect-secrets", None), security_secrets.find_git()
    (outcome,) = security.guarded(
        "secrets",
        lambda: security_secrets.run_secrets(
            tool, git, project, project / "reports", policy=policy, today=TODAY
        ),
    )
    return outcome


@pytest.mark.slow
def test_a_planted_secret_fails_until_accepted_by_its_id_and_path(tmp_path: Path) -> None:
    project = git_folder(tmp_path / "p")
    (project / ".gitignore").write_text("reports/\n", encoding="utf-8")
    (project / "client.py").write_text(AWS_PLANT, encoding="utf-8")
    (project / "allowed.py").write_text(
        'KEY = "AKIAIOSFODNN7EXAMPLE"  # pragma: allowlist secret\n', encoding="utf-8"
    )
    outcome = scan_secrets(project, [])
    assert outcome.verdict == "FAIL" and outcome.scanned == "3 files"
    lines = security.finding_lines([outcome])
    assert any("AWS Access Key, client.py:8" in line for line in lines)
    # An inline allowlist comment is no acceptance: only the policy accepts.
    assert any("allowed.py:1" in line for line in lines)
    policy = [Acceptance(f.id, "t", datetime.date(2026, 12, 31), f.path) for f in outcome.findings]
    assert scan_secrets(project, policy).passed
    wrong_file = [
        Acceptance(f.id, "t", datetime.date(2026, 12, 31), "x.py") for f in outcome.findings
    ]
    assert not scan_secrets(project, wrong_file).passed
    assert (project / "reports" / "secrets.json").is_file()


def test_the_secret_scan_without_git_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(GateError, match="git is not on PATH"):
        security_secrets.find_git()


@pytest.mark.slow
def test_the_secret_scan_outside_a_git_checkout_fails_closed(tmp_path: Path) -> None:
    git = security_secrets.find_git()
    with pytest.raises(GateError, match="run the gate in a git checkout"):
        security_secrets.scanned_files(git, tmp_path)


# --- the session end to end, in a copy of the project ----------------------------------------


def copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("src", "sessions", "experiments"):
        shutil.copytree(ROOT / folder, project / folder, ignore=ignore)
    for name in ("noxfile.py", "pyproject.toml", ".gitignore", policy_module.POLICY_NAME):
        shutil.copy2(ROOT / name, project / name)
    for lock in security.SCANNED_LOCKS:
        shutil.copy2(lock, project / lock.name)
    return git_folder(project)


def run_session(
    project: Path,
    database: Path,
    nox_cmd: list[str],
    env: dict[str, str],
    *,
    venv: bool = False,
) -> tuple[int, str]:
    env = measured_in(project, env) | {security.DB_ENV: str(database)}
    if venv:  # a venv for one run: compiling every scanner's bytecode first would not pay off
        env["UV_COMPILE_BYTECODE"] = "0"
    where = [] if venv else ["--no-venv"]
    result = subprocess.run(
        [*nox_cmd, *where, "-s", "security"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def plant(project: Path, name: str, code: str, *acceptances: str) -> None:
    (project / "experiments" / name).write_text(code, encoding="utf-8")
    policy = project / policy_module.POLICY_NAME
    policy.write_text(policy.read_text(encoding="utf-8") + "\n" + "\n".join(acceptances))


def verdicts(output: str) -> dict[str, str]:
    rows = [line.split() for line in output.splitlines()]
    tools = ("bandit", "nosec", "safety", "secrets")
    return {
        row[0]: row[-1] for row in rows if row and row[0] in tools and row[-1] in ("pass", "FAIL")
    }


@pytest.mark.slow
def test_the_project_as_it_stands_passes(
    tmp_path: Path, database: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    project = copy_project(tmp_path)
    code, output = run_session(project, database, nox_cmd, child_env)
    assert code == 0, output
    assert verdicts(output) == dict.fromkeys(("bandit", "nosec", "safety", "secrets"), "pass")
    assert f"safety database from SAFETY_DB_DIR: {database} (advisories as of" in output
    for report in ("bandit.json", "bandit.sarif", "safety.json", "safety-requirements.txt"):
        assert (project / "reports" / report).is_file()
    assert (project / "reports" / "secrets.json").is_file()
    assert "\x1b" not in output


@pytest.mark.slow
def test_a_vulnerable_pin_is_scanned_however_it_conflicts_with_the_scanners(
    tmp_path: Path,
    database: Path,
    nox_cmd: list[str],
    child_env: dict[str, str],
    package_index: None,
) -> None:
    """In a real session venv: jinja2 2.10 is older than safety itself accepts."""
    project = copy_project(tmp_path)
    lock = project / LOCK.name
    lock.write_text(
        lock.read_text(encoding="utf-8") + "requests==2.19.0\njinja2==2.10\n", encoding="utf-8"
    )
    code, output = run_session(project, database, nox_cmd, child_env, venv=True)
    assert code != 0
    assert "ResolutionImpossible" not in output
    assert (
        f"safety: {REQUESTS_ADVISORY} ({REQUESTS_CVE}, requests==2.19.0, fixed in 2.20.0)" in output
    )
    assert verdicts(output) == {
        "bandit": "pass",
        "nosec": "pass",
        "safety": "FAIL",
        "secrets": "pass",
    }
    assert "safety found 1 unaccepted finding(s)" in output


NOSEC_PLANT = "import subprocess\n\n\ndef run(c):\n    subprocess.run(c, shell=True)  # nosec\n"

PASSWORD_PLANT = """
def connect(host, password="admin"):
    return host, password


def login(given):
    return given == "swordfish"


DB_PASSWORD = "swordfish"
"""


def secret_hashes(reports: Path, path: str) -> set[str]:
    """The hashes detect-secrets gave the findings in `path` (keyed as it prints paths: with
    the host's separator)."""
    secrets = json.loads((reports / "secrets.json").read_text(encoding="utf-8"))
    found = {tool_path(name): results for name, results in secrets["results"].items()}
    return {result["hashed_secret"] for result in found[path]}


@pytest.mark.slow
def test_planted_findings_fail_their_scans_until_each_is_accepted(
    tmp_path: Path, database: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    """One copy of the project with a finding for each scan's rule, run twice: first as
    planted, then with every finding accepted. (A merge of five session runs that each planted
    one finding: each plant is in a file of its own and the scans report by file, so no finding
    hides or changes another.)

    - `# nosec` needs a current acceptance of its rule for its file: none, an expired one and
      a current one (only the first two are reported, by the audit and by bandit, which
      runs ignoring `# nosec`);
    - AWS keys fail the secret scan, named by file and line;
    - hard-coded passwords are bandit findings of low severity, below the gate's threshold:
      in bandit's reports (JSON and SARIF) but not failing it (bandit passes once the shell=True
      plants are accepted); the secret scan sees them too.
    """
    project = copy_project(tmp_path)
    nosec = {name: f"experiments/{name}.py" for name in ("no_entry", "expired", "current")}
    plant(project, "no_entry.py", NOSEC_PLANT)
    plant(project, "expired.py", NOSEC_PLANT, acceptance("B602", "2020-01-31", nosec["expired"]))
    plant(project, "current.py", NOSEC_PLANT, acceptance("B602", "2099-12-31", nosec["current"]))
    plant(project, "storage.py", AWS_PLANT)
    plant(project, "login.py", PASSWORD_PLANT)

    code, output = run_session(project, database, nox_cmd, child_env)
    assert code != 0
    # bandit runs with `# nosec` ignored: the shell=True plants are its only open findings.
    assert verdicts(output) == {"bandit": "FAIL", "nosec": "FAIL", "safety": "pass",
                                "secrets": "FAIL"}  # fmt: skip
    opened = [line for line in output.splitlines() if line.startswith("bandit: ")]
    assert sorted(line.split(" (", 1)[0] for line in opened) == ["bandit: B602", "bandit: B602"]
    reported = {
        name: [line for line in output.splitlines() if f"# nosec at {path}:5" in line]
        for name, path in nosec.items()
    }
    assert [line.split("nosec: ", 1)[1] for line in reported["no_entry"]] == [
        f"B602 (# nosec at {nosec['no_entry']}:5)"
    ]
    assert [line.split("nosec: ", 1)[1] for line in reported["expired"]] == [
        f"B602 (# nosec at {nosec['expired']}:5); its acceptance expired on 2020-01-31"
    ]
    assert reported["current"] == []
    assert "AWS Access Key, experiments/storage.py:8" in output
    assert "AWS Access Key, experiments/storage.py:9" in output
    assert re.search(r"secrets found \d+ unaccepted finding\(s\)", output)
    reports = project / "reports"
    report = json.loads((reports / "bandit.json").read_text(encoding="utf-8"))
    planted = {
        (result["test_id"], result["issue_severity"])
        for result in report["results"]
        if result["filename"].endswith("login.py")
    }
    assert planted == {("B107", "LOW"), ("B105", "LOW")}
    sarif = json.loads((reports / "bandit.sarif").read_text(encoding="utf-8"))
    in_sarif = {
        result["ruleId"]
        for result in sarif["runs"][0]["results"]
        if result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith(
            "login.py"
        )
    }
    assert in_sarif == {"B105", "B107"}

    accepted = [acceptance("B602", "2099-12-31", nosec[name]) for name in ("no_entry", "expired")]
    for path in ("experiments/storage.py", "experiments/login.py"):
        accepted += [acceptance(h, "2099-12-31", path) for h in secret_hashes(reports, path)]
    plant(project, "login.py", PASSWORD_PLANT, *accepted)
    code, output = run_session(project, database, nox_cmd, child_env)
    assert code == 0, output
    assert verdicts(output) == dict.fromkeys(("bandit", "nosec", "safety", "secrets"), "pass")
    report = json.loads((reports / "bandit.json").read_text(encoding="utf-8"))
    assert any(result["filename"].endswith("login.py") for result in report["results"])
