"""What CI runs: the plan from the noxfile's tags, the files GitHub reads, the README's two
commands as a new user types them. The workflow's own checks are actionlint and zizmor, in
`nox -s lint` (tests/test_lint.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sessions import ci
from sessions.project import PYTHON, TESTS_PYTHONS
from tests.conftest import ROOT

GITHUB = ROOT / ".github"
WORKFLOW = GITHUB / "workflows" / "ci.yml"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


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
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_every_session_and_tag_named_in_github_files_exists() -> None:
    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "nox", "--list", "--json", "-k", "True"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    sessions = {entry[key] for entry in listed for key in ("name", "session")}
    tags = {tag for entry in listed for tag in entry["tags"]}
    assert set(ci.CI_TAGS) <= tags
    files = [*GITHUB.rglob("*.y*ml"), ROOT / ".pre-commit-config.yaml", ROOT / ".ci" / "run"]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for named in re.findall(r"(?:--session|matrix\.session ==) '?([a-z][\w.-]*)", text):
            assert named in sessions, f"{path.name} runs a session {named!r} nox does not have"
        for named in re.findall(r"--tags ([a-z][\w-]*)", text):
            assert named in tags, f"{path.name} runs a tag {named!r} no session has"


def test_ruleset_requires_the_aggregate_check() -> None:
    ruleset = json.loads((GITHUB / "rulesets" / "main.json").read_text(encoding="utf-8"))
    (checks,) = [r for r in ruleset["rules"] if r["type"] == "required_status_checks"]
    contexts = {c["context"] for c in checks["parameters"]["required_status_checks"]}
    job_names = {job.get("name") for job in load(WORKFLOW)["jobs"].values()}
    assert contexts <= job_names
    assert "CI OK" in contexts


def test_no_extra_package_index() -> None:
    for path in GITHUB.rglob("*.y*ml"):
        text = path.read_text(encoding="utf-8")
        for name in ("PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "UV_EXTRA_INDEX_URL", "--extra-index"):
            assert name not in text, f"{path.name} adds a package index ({name})"


def test_pytest_has_a_per_test_timeout() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["tool"]["pytest"]["ini_options"]["timeout"] > 0
    lock = (ROOT / "requirements.lock.txt").read_text(encoding="utf-8")
    assert re.search(r"^pytest-timeout==", lock, re.MULTILINE)


@pytest.mark.slow
def test_the_plan_runs_the_gates_on_one_python_and_the_tests_on_every_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ci.main([])
    outputs = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert list(outputs) == ["ci", "pythons", "ci-linux", "ci-report"]
    gates = json.loads(outputs["ci"])
    assert gates[0] == f"tests-{PYTHON}" and {"security", "lint"} <= set(gates)
    assert json.loads(outputs["pythons"]) == TESTS_PYTHONS[1:]
    assert "build-image" in json.loads(outputs["ci-linux"])
    assert json.loads(outputs["ci-report"]) == ["report"]


@pytest.mark.slow
def test_the_local_leg_is_every_linux_session_then_coverage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ci.main(["leg"])
    leg = capsys.readouterr().out.splitlines()
    assert leg[0] == f"tests-{PYTHON}" and leg[-1] == "coverage"
    assert {"security", "lint", "build-image", "export-summary", "report"} <= set(leg)
    assert not any(name.startswith("tests-") and name != leg[0] for name in leg)
    with pytest.raises(SystemExit, match=r"usage: python -m sessions.ci \[leg \| readme\]"):
        ci.main(["step", "coverage"])


PLANTED_README = """\
# A project

## Two commands

```bash
echo "CI=${CI-unset}" > said.txt   # a comment, as the README has
exit 3
touch not-reached
```
"""


@pytest.mark.slow
def test_the_readme_runs_each_command_as_typed_without_ci_and_stops_at_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(PLANTED_README, encoding="utf-8")
    monkeypatch.setenv("CI", "true")
    assert ci.run_readme(readme) == 1
    assert (tmp_path / "said.txt").read_text(encoding="utf-8") == "CI=unset\n"
    assert not (tmp_path / "not-reached").exists()
    assert capsys.readouterr().err == "The README's command `exit 3` failed (exit 3).\n"
    readme.write_text("# A project\n\n## Two commands\n\nnox\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"README.md has no ```bash block under '## Two commands'"):
        ci.run_readme(readme)
