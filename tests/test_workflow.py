"""The CI workflow: valid against GitHub's schema, hardened, and derived from the noxfile."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sessions import ci
from sessions.project import CI_PLATFORMS
from tests.conftest import ROOT, measured_in
from tests.support.platforms import skip_on

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


def test_every_gate_leg_has_its_own_time_limit() -> None:
    # `${{ matrix.minutes }}` is empty for an OS without an `include` entry, and GitHub then
    # lets the job run for six hours.
    gate = load(WORKFLOW)["jobs"]["gate"]
    assert gate["timeout-minutes"] == "${{ matrix.minutes }}"
    limits = {entry["os"]: entry["minutes"] for entry in gate["strategy"]["matrix"]["include"]}
    assert sorted(limits) == sorted(CI_PLATFORMS)
    assert all(isinstance(minutes, int) and 10 <= minutes <= 120 for minutes in limits.values())


def test_hardening() -> None:
    workflow = load(WORKFLOW)
    assert workflow["permissions"] == {"contents": "read"}
    # Only a pull request's older run is cancelled: every push to main keeps its verdict.
    cancel = workflow["concurrency"]["cancel-in-progress"]
    assert cancel == "${{ github.event_name == 'pull_request' }}"
    for name, job in workflow["jobs"].items():
        assert "timeout-minutes" in job, f"job {name} has no timeout"
        assert "continue-on-error" not in job, f"job {name} may fail silently"
    for step in all_steps(workflow):
        assert "continue-on-error" not in step, f"step {step} may fail silently"


@pytest.mark.slow
def test_matrix_is_derived_from_the_noxfile_on_every_os() -> None:
    workflow = load(WORKFLOW)
    gate = workflow["jobs"]["gate"]
    assert gate["strategy"]["matrix"]["os"] == list(CI_PLATFORMS)
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
        for named in re.findall(r"(?:--session|matrix\.session ==) '?([a-z][\w-]*)", text):
            assert named in every, f"{path.name} runs a session {named!r} that nox does not have"
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
    ci.main([])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == list(ci.CI_TAGS)
    assert "tests" in json.loads(lines[0].split("=", 1)[1])


# --- one environment for the workflow and .ci/run -------------------------------------------


def source_workflow_env(root: Path) -> subprocess.CompletedProcess[str]:
    """`.ci/run`'s own step: source .ci/workflow-env, then print the environment as JSON."""
    script = (
        "set -euo pipefail; source .ci/workflow-env; "
        'python -c "import json, os; print(json.dumps(dict(os.environ)))"'
    )
    python_dir = root / ".test-python"
    python_dir.mkdir(exist_ok=True)
    # A wrapper, not a symlink: through a link to a venv's python (itself a link to the base
    # interpreter, as in the Docker image) Python may not find the venv and its pyyaml.
    wrapper = python_dir / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    bare = {name: value for name, value in measured_in(root, os.environ).items()
            if name not in ci.workflow_env()}  # fmt: skip
    env = {**bare, "PATH": os.pathsep.join([str(python_dir), bare.get("PATH", "")])}
    return subprocess.run(
        ["bash", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )


def copy_ci_files(tmp_path: Path) -> Path:
    """The files the environment step reads, in a throw-away project."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "sessions", project / "sessions",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in (".ci/workflow-env", ".github/workflows/ci.yml"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, project / name)
    return project


ci_run_is_bash = skip_on("win32", reason=".ci/run is the Linux leg of the workflow")


@pytest.mark.slow
@ci_run_is_bash
def test_ci_run_applies_every_variable_the_workflow_sets(tmp_path: Path) -> None:
    project = copy_ci_files(tmp_path)
    result = source_workflow_env(project)
    assert result.returncode == 0, result.stderr
    applied = json.loads(result.stdout.splitlines()[-1])
    for name, value in ci.workflow_env().items():
        if name in ci.NOT_APPLIED_LOCALLY:
            assert name not in applied, f"{name} is listed as not applied, yet it was"
            assert f"not applied: {name}, because" in result.stderr
            continue
        assert applied.get(name) == value, f"ci.yml sets {name}={value}; .ci/run does not apply it"
        assert f"workflow env: {name}={value}" in result.stdout


def test_every_exception_says_why_and_only_index_variables_are_excepted() -> None:
    for name, reason in ci.NOT_APPLIED_LOCALLY.items():
        assert name in ci.workflow_env(), f"{name} is excepted but ci.yml does not set it"
        assert "index" in reason and ".ci/run" in reason


@pytest.mark.slow
@ci_run_is_bash
def test_a_variable_added_to_the_workflow_reaches_ci_run(tmp_path: Path) -> None:
    project = copy_ci_files(tmp_path)
    workflow = project / ".github" / "workflows" / "ci.yml"
    text = workflow.read_text(encoding="utf-8")
    workflow.write_text(text.replace("env:\n", 'env:\n  NEW_SETTING: "on"\n', 1), "utf-8")
    result = source_workflow_env(project)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["NEW_SETTING"] == "on"


@ci_run_is_bash
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("  UV_TORCH_BACKEND: cpu\n", ""),
            "NOT_APPLIED_LOCALLY in sessions/ci.py names UV_TORCH_BACKEND",
        ),
        (
            ("env:\n", "env:\n  RUNNER_HINT: ${{ runner.os }}\n"),
            "sets RUNNER_HINT to an expression",
        ),
    ],
)
@pytest.mark.slow
def test_an_environment_ci_run_cannot_reproduce_stops_it(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    project = copy_ci_files(tmp_path)
    workflow = project / ".github" / "workflows" / "ci.yml"
    text = workflow.read_text(encoding="utf-8")
    assert edit[0] in text
    workflow.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    result = source_workflow_env(project)
    assert result.returncode != 0
    assert message in result.stderr


def test_ci_run_loads_the_environment_before_any_session() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    loaded = script.find("\nsource .ci/workflow-env\n")
    assert 0 <= loaded < script.find("\ngate ")
    assert loaded > script.find("pyyaml"), "the environment step needs pyyaml installed first"


def test_variables_live_only_in_the_top_level_env() -> None:
    """Jobs and steps set no configuration of their own, which .ci/run would not see; a step
    may only pass values GitHub computes (matrix, outputs, results) to its script."""
    workflow = load(WORKFLOW)
    for name, job in workflow["jobs"].items():
        assert "env" not in job, f"job {name} sets env: move it to the workflow's env"
        for step in job.get("steps", []):
            for variable, value in (step.get("env") or {}).items():
                assert str(value).startswith("${{"), f"{name}: {variable} belongs in the top env"


def test_no_extra_package_index() -> None:
    for path in GITHUB.rglob("*.y*ml"):
        text = path.read_text(encoding="utf-8")
        for name in ("PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "UV_EXTRA_INDEX_URL", "--extra-index"):
            assert name not in text, f"{path.name} adds a package index ({name})"


# --- jobs in their place ------------------------------------------------------------------


def step_scripts(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


@pytest.mark.slow
def test_engine_tests_run_with_build_image_and_not_in_the_gate() -> None:
    jobs = load(WORKFLOW)["jobs"]
    assert 'tests) args=(-- -m "not docker")' in step_scripts(jobs["gate"])
    (engine,) = [s for s in jobs["linux"]["steps"] if "-m docker" in s.get("run", "")]
    assert engine["if"] == "matrix.session == 'build-image'"
    assert engine["run"].startswith("nox --reuse-venv=never --session tests -- -m docker")
    assert "build-image" in ci.sessions_tagged("ci-linux")
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "PYTEST_ADDOPTS='-m \"not docker\"' gate --tags ci\n" in script
    assert script.rfind("-m docker") > script.find("--tags ci-linux")


def test_security_gate_scans_against_a_database_built_from_pypas_advisories() -> None:
    gate = load(WORKFLOW)["jobs"]["gate"]
    script = step_scripts(gate)
    assert '--update-db "$RUNNER_TEMP/safety-db"' in script
    assert '--advisories "$RUNNER_TEMP/advisory-database"' in script
    (cache,) = [s for s in gate["steps"] if s.get("name", "").startswith("PyPA advisory")]
    assert cache["with"]["path"] == "${{ runner.temp }}/advisory-database"
    assert "steps.today.outputs.date" in cache["with"]["key"]
    assert "SAFETY_DB_DIR" not in WORKFLOW.read_text(encoding="utf-8")


def test_uv_cache_is_kept_per_session_and_os_and_tools_install_under_the_lock() -> None:
    action = load(GITHUB / "actions" / "setup-nox" / "action.yml")
    (cache,) = [s for s in action["runs"]["steps"] if s.get("uses", "").startswith("actions/cache")]
    assert "${{ runner.os }}-${{ inputs.cache-key }}-" in cache["with"]["key"]
    # A job without a key (the plan, which installs nothing with uv) keeps no cache.
    assert cache["if"] == "inputs.cache-key != ''"
    assert action["inputs"]["cache-key"]["default"] == ""
    install = step_scripts(action["runs"])
    assert "pip install --constraint requirements.lock.txt nox uv" in install
    for name, job in load(WORKFLOW)["jobs"].items():
        for step in job.get("steps", []):
            if step.get("uses") == "./.github/actions/setup-nox":
                key = (step.get("with") or {}).get("cache-key")
                assert key == (None if name == "plan" else "${{ matrix.session }}"), name
    assert load(WORKFLOW)["env"]["UV_COMPILE_BYTECODE"] == "1"


def test_uploads_fail_without_their_reports_and_replace_on_rerun() -> None:
    for name, job in load(WORKFLOW)["jobs"].items():
        for step in job.get("steps", []):
            if not step.get("uses", "").startswith("actions/upload-artifact"):
                continue
            assert step["with"].get("overwrite") is True, f"{name}: a re-run would collide"
            assert step["with"]["if-no-files-found"] != "ignore", f"{name} uploads silently"
    gate_upload = next(
        s for s in load(WORKFLOW)["jobs"]["gate"]["steps"] if "upload-artifact" in s.get("uses", "")
    )
    rule = gate_upload["with"]["if-no-files-found"]
    assert "'tests'" in rule and "'security'" in rule and "'error'" in rule
    combine = step_scripts(load(WORKFLOW)["jobs"]["coverage"])
    assert f"for platform in {' '.join(CI_PLATFORMS.values())}" in combine
    assert 'exit "$missing"' in combine


def test_sarif_upload_is_skipped_where_the_token_cannot_write() -> None:
    condition = load(WORKFLOW)["jobs"]["code-scanning"]["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    assert "dependabot[bot]" in condition


def test_pytest_has_a_per_test_timeout() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["tool"]["pytest"]["ini_options"]["timeout"] > 0
    lock = (ROOT / "requirements.lock.txt").read_text(encoding="utf-8")
    assert re.search(r"^pytest-timeout==", lock, re.MULTILINE)


# --- the report job: the one that writes ------------------------------------------------------


def test_only_the_report_job_may_write_to_pull_requests() -> None:
    jobs = load(WORKFLOW)["jobs"]
    report = jobs["report"]
    assert report["permissions"] == {"contents": "read", "pull-requests": "write"}
    for name, job in jobs.items():
        if name != "report":
            assert "pull-requests" not in (job.get("permissions") or {}), name
    assert jobs["plan"]["outputs"]["report"] == "${{ steps.sessions.outputs.ci-report }}"
    assert report["needs"] == "plan"
    assert report["if"] == "needs.plan.outputs.report != '[]'"
    assert report["strategy"]["matrix"]["session"] == "${{ fromJSON(needs.plan.outputs.report) }}"
    assert report["runs-on"] == "ubuntu-latest"


def test_the_report_job_clones_the_history_its_merge_base_needs_without_credentials() -> None:
    (checkout,) = [
        s for s in load(WORKFLOW)["jobs"]["report"]["steps"]
        if s.get("uses", "").startswith("actions/checkout@")
    ]  # fmt: skip
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}


def test_only_the_comment_step_gets_the_token_and_only_through_its_env() -> None:
    workflow = load(WORKFLOW)
    text = WORKFLOW.read_text(encoding="utf-8")
    assert text.count("github.token") == 1 and "secrets." not in text
    holders = [
        (name, step.get("name"))
        for name, job in workflow["jobs"].items()
        for step in job.get("steps", [])
        if "github.token" in json.dumps(step)
    ]
    assert holders == [("report", "The report as the pull request's one comment")]
    steps = workflow["jobs"]["report"]["steps"]
    (comment,) = [s for s in steps if s.get("name") == holders[0][1]]
    assert comment["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    assert comment["run"] == "python -m sessions.report.github comment build/report/REPORT.md"
    assert all("with" not in s or "token" not in s["with"] for s in steps)


def test_the_report_is_published_in_the_summary_and_one_artifact() -> None:
    workflow = load(WORKFLOW)
    steps = workflow["jobs"]["report"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert "python -m sessions.report.github summary build/report/REPORT.md" in runs
    session = next(s for s in steps if s.get("id") == "session")
    assert 'exec nox --reuse-venv=never --session "$SESSION" -- "$ref"' in session["run"]
    assert session["env"]["BASE_REF"] == "${{ github.base_ref }}"
    assert session["env"]["BEFORE"] == "${{ github.event.before }}"
    (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    pinned = {
        s["uses"] for s in all_steps(workflow) if s.get("uses", "").startswith("actions/upload-")
    }
    assert len(pinned) == 1, "every upload uses the same pinned commit"
    from sessions.report import github

    assert upload["with"]["name"] == github.ARTIFACT
    assert upload["with"]["path"] == "build/report/"
    assert upload["if"] == "${{ !cancelled() }}"


def test_ci_ok_requires_the_report() -> None:
    ok = load(WORKFLOW)["jobs"]["ok"]
    assert "report" in ok["needs"]
    assert ok["steps"][0]["env"]["REPORT"] == "${{ needs.report.result }}"
