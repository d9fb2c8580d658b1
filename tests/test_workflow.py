"""The CI workflow: valid against GitHub's schema, hardened, and derived from the noxfile."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sessions import ci
from tests.conftest import ROOT

GITHUB = ROOT / ".github"
WORKFLOW = GITHUB / "workflows" / "ci.yml"
PINNED = re.compile(r"^[\w.\-]+/[\w.\-/]+@[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def check_schema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True, text=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("vendor.github-workflows", WORKFLOW),
        ("vendor.github-actions", GITHUB / "actions" / "setup-nox" / "action.yml"),
        ("vendor.dependabot", GITHUB / "dependabot.yml"),
    ],
)
@pytest.mark.slow
def test_files_match_githubs_schemas(schema: str, path: Path) -> None:
    result = check_schema(schema, path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    shutil.copy2(WORKFLOW, broken)
    text = broken.read_text(encoding="utf-8").replace("runs-on: ubuntu-latest", "runs_on: x", 1)
    broken.write_text(text, encoding="utf-8")
    assert check_schema("vendor.github-workflows", broken).returncode != 0


def all_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_every_action_is_pinned_to_a_commit_with_its_version() -> None:
    files = [WORKFLOW, *GITHUB.glob("actions/*/action.yml")]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"uses:\s*(\S+)(.*)", text):
            action, comment = match[1], match[2]
            if action.startswith("./"):
                continue  # this repository's own composite action
            assert PINNED.match(action), f"{path.name}: {action} is not pinned to a SHA"
            assert re.search(r"#\s*v\d", comment), f"{path.name}: {action} lacks a version comment"


def test_hardening() -> None:
    workflow = load(WORKFLOW)
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    for name, job in workflow["jobs"].items():
        assert "timeout-minutes" in job, f"job {name} has no timeout"
        assert "continue-on-error" not in job, f"job {name} may fail silently"
    for step in all_steps(workflow):
        assert "continue-on-error" not in step, f"step {step} may fail silently"


@pytest.mark.slow
def test_matrix_is_derived_from_the_noxfile_on_both_oses() -> None:
    workflow = load(WORKFLOW)
    gate = workflow["jobs"]["gate"]
    assert gate["strategy"]["matrix"]["os"] == ["ubuntu-latest", "windows-latest"]
    assert gate["strategy"]["matrix"]["session"] == "${{ fromJSON(needs.plan.outputs.gates) }}"
    assert "python -m sessions.ci" in json.dumps(workflow["jobs"]["plan"])
    gates = ci.sessions_tagged("ci")
    assert {"tests", "security", "lint"} <= set(gates)


@pytest.mark.slow
def test_every_session_named_in_github_files_exists() -> None:
    names = set(ci.sessions_tagged("ci")) | set(ci.sessions_tagged("ci-linux"))
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "-k", "True"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    every = {entry["name"] for entry in json.loads(listed)}
    assert names <= every
    for path in GITHUB.rglob("*.y*ml"):
        text = path.read_text(encoding="utf-8")
        for named in re.findall(r"reports-([a-z][\w-]*?)-", text):
            assert named in every, f"{path.name} names a session {named!r} that nox does not have"
    pre_commit = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    for entry in re.findall(r"--session ([\w -]+)", pre_commit):
        assert set(entry.split()) <= every


def test_ruleset_requires_the_aggregate_check() -> None:
    ruleset = json.loads((GITHUB / "rulesets" / "main.json").read_text(encoding="utf-8"))
    (checks,) = [r for r in ruleset["rules"] if r["type"] == "required_status_checks"]
    contexts = {c["context"] for c in checks["parameters"]["required_status_checks"]}
    job_names = {job.get("name") for job in load(WORKFLOW)["jobs"].values()}
    assert contexts <= job_names
    assert "CI OK" in contexts


def test_ci_script_runs_the_linux_leg_in_workflow_order() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    positions = [script.find(f"--tags {tag}\n") for tag in ci.CI_TAGS]
    assert all(p >= 0 for p in positions), "every CI tag must be run by .ci/run"
    assert positions == sorted(positions)


@pytest.mark.slow
def test_ci_module_prints_step_outputs(capsys: pytest.CaptureFixture[str]) -> None:
    ci.main()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == list(ci.CI_TAGS)
    assert "tests" in json.loads(lines[0].split("=", 1)[1])
