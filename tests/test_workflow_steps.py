"""The workflow's `run:` steps, run here as GitHub runs them: each is run by `.ci/run` or a test
below, or listed in sessions/ci.py's NOT_RUN_LOCALLY with the reason. Scripts come from ci.yml
itself (`sessions.ci.run_steps`), never from a copy, and run under `bash --noprofile --norc
-eo pipefail`, GitHub's bash."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import yaml

from sessions import ci
from tests.conftest import ROOT, measured_in, without_coverage
from tests.support.github_api import FakeGitHub
from tests.support.platforms import skip_on

pytestmark = skip_on("win32", reason="the steps run on Linux runners (`shell: bash`)")

PLAN = ("plan", "The sessions of each CI tag, from the noxfile")
TODAY = ("gate", "Today (the advisory database is fetched once a day)")
GATE = ("gate", "nox -s ${{ matrix.session }}")
DATA_CHECK = ("coverage", "Coverage data from every system")
COMBINE = ("coverage", "Combine Linux, Windows and macOS coverage; gate the total")
OK = ("ok", "Every required job succeeded")
REPORT = ("report", "nox -s ${{ matrix.session }} -- REF")
SUMMARY = ("report", "The report in the job summary")
COMMENT = ("report", "The report as the pull request's one comment")

# The steps .ci/run does not run, and the test here that does.
RUN_BY_TESTS = {
    PLAN: "test_the_plan_step_writes_one_output_per_ci_tag",
    TODAY: "test_the_today_step_writes_the_date",
    GATE: "test_a_failed_advisory_clone_is_the_security_jobs_last_error",
    OK: "test_the_ok_step_passes_only_when_every_required_job_did",
    REPORT: "test_the_report_step_compares_with_the_base_as_merged_or_the_commit_before",
    SUMMARY: "test_the_summary_and_comment_steps_publish_the_report",
    COMMENT: "test_the_summary_and_comment_steps_publish_the_report",
}


def run_by_ci_run() -> set[tuple[str, str]]:
    """The steps `.ci/run` runs, as its `ci_step JOB "NAME"` lines name them."""
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    return set(re.findall(r'ci_step (\S+) "([^"$]+)"', text))


def run_step(
    step: tuple[str, str], cwd: Path, env: Mapping[str, str], **variables: str
) -> subprocess.CompletedProcess[str]:
    """One step's script, as the runner runs it (stderr folded into stdout, in order)."""
    script = ci.run_steps()[step]
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd, env={**env, **variables}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=900,
    )  # fmt: skip


# --- which steps run where ---------------------------------------------------------------------


def test_every_run_step_is_run_here_or_says_why_not() -> None:
    steps = set(ci.run_steps())
    by_ci_run, by_tests, not_run = run_by_ci_run(), set(RUN_BY_TESTS), set(ci.NOT_RUN_LOCALLY)
    assert by_ci_run, ".ci/run runs no workflow step"
    assert by_ci_run <= steps, f".ci/run names steps the workflow lacks: {by_ci_run - steps}"
    assert not_run <= steps, f"NOT_RUN_LOCALLY names steps the workflow lacks: {not_run - steps}"
    assert not (not_run & (by_ci_run | by_tests)), "a step listed as not run is run"
    missing = steps - by_ci_run - by_tests - not_run
    assert not missing, f"run steps that nothing here runs, and no reason why: {sorted(missing)}"
    for step, test in RUN_BY_TESTS.items():
        assert callable(globals().get(test)), f"{step} is said to be run by {test}, which is gone"
    assert all(len(reason) > 40 for reason in ci.NOT_RUN_LOCALLY.values())


def test_run_steps_refuse_an_unnamed_or_repeated_step(tmp_path: Path) -> None:
    (tmp_path / "actions").mkdir()
    workflow = tmp_path / "ci.yml"
    for steps in ([{"run": "true"}], [{"name": "a", "run": "true"}, {"name": "a", "run": "x"}]):
        workflow.write_text(yaml.safe_dump({"jobs": {"job": {"steps": steps}}}), encoding="utf-8")
        with pytest.raises(ci.WorkflowEnvError, match="give each its own"):
            ci.run_steps(workflow, tmp_path / "actions")


def test_the_step_command_prints_a_script_or_says_why_not(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ci.main(["step", *COMBINE])
    assert capsys.readouterr().out.rstrip("\n") == ci.run_steps()[COMBINE].rstrip("\n")
    with pytest.raises(SystemExit, match=r"no run step named 'Combine' in coverage \(its run"):
        ci.main(["step", "coverage", "Combine"])
    with pytest.raises(SystemExit, match=r"usage: python -m sessions.ci \[env \| readme \| step"):
        ci.main(["step", "coverage"])
    monkeypatch.setattr(ci, "run_steps", lambda: {("job", "s"): "echo ${{ matrix.os }}\n"})
    with pytest.raises(SystemExit, match="uses a GitHub expression in its script"):
        ci.main(["step", "job", "s"])


# --- the steps the tests run -------------------------------------------------------------------


@pytest.mark.slow
def test_the_plan_step_writes_one_output_per_ci_tag(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    output = tmp_path / "github-output"
    result = run_step(PLAN, ROOT, child_env, GITHUB_OUTPUT=str(output))
    assert result.returncode == 0, result.stdout
    lines = output.read_text(encoding="utf-8").splitlines()
    assert [line.split("=", 1)[0] for line in lines] == list(ci.CI_TAGS)
    assert lines[0] == f"ci={json.dumps(ci.sessions_tagged('ci'))}"
    assert "tests" in lines[0] and "security" in lines[0]


@pytest.mark.slow
def test_the_today_step_writes_the_date(tmp_path: Path) -> None:
    output = tmp_path / "github-output"
    result = run_step(TODAY, tmp_path, os.environ, GITHUB_OUTPUT=str(output))
    assert result.returncode == 0, result.stdout
    assert re.fullmatch(r"date=\d{4}-\d{2}-\d{2}\n", output.read_text(encoding="utf-8"))


JOBS = ("PLAN", "GATE", "LINUX", "COVERAGE", "REPORT", "README")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("results", "passes"),
    [
        (("success", "success", "success", "success", "success", "success"), True),
        (("success", "success", "skipped", "success", "success", "success"), True),
        (("success", "success", "success", "success", "skipped", "success"), True),
        (("success", "failure", "success", "success", "success", "success"), False),
        (("success", "success", "success", "failure", "success", "success"), False),
        (("success", "success", "failure", "success", "success", "success"), False),
        (("success", "success", "success", "success", "failure", "success"), False),
        (("success", "success", "success", "success", "cancelled", "success"), False),
        (("success", "success", "success", "success", "success", "failure"), False),
        (("success", "success", "success", "success", "success", "skipped"), False),
        (("skipped", "skipped", "skipped", "skipped", "skipped", "skipped"), False),
    ],
)
def test_the_ok_step_passes_only_when_every_required_job_did(
    tmp_path: Path, results: tuple[str, ...], passes: bool
) -> None:
    names = dict(zip(JOBS, results, strict=True))
    result = run_step(OK, tmp_path, os.environ, **names)
    assert (result.returncode == 0) is passes, result.stdout
    said = " ".join(f"{job.lower()}={{{job}}}" for job in JOBS).format(**names)
    assert result.stdout.startswith(said)


def git(cwd: Path, *args: str) -> str:
    env = os.environ | {
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "commit", "--allow-empty", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.mark.slow
def test_the_report_step_compares_with_the_base_as_merged_or_the_commit_before(
    tmp_path: Path,
) -> None:
    # The repository on GitHub: main at B, a pull request's branch off B, then main moves on
    # (C), GitHub merges the pull request into C for its run (M), and main moves on again (D)
    # before the job clones it with fetch-depth 0.
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    commit(upstream, "A")
    before = commit(upstream, "B")
    git(upstream, "checkout", "-q", "-b", "feature")
    commit(upstream, "F")
    git(upstream, "checkout", "-q", "main")
    base_as_merged = commit(upstream, "C")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    git(clone, "checkout", "-q", "--detach", base_as_merged)
    git(clone, "merge", "-q", "--no-ff", "origin/feature", "-m", "Merge F into C")
    commit(upstream, "D")
    git(clone, "fetch", "-q", "origin")
    # nox, as the step runs it: records its arguments.
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "nox").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$NOX_ARGS"\n', "utf-8")
    (shims / "nox").chmod(0o755)
    env = os.environ | {"PATH": os.pathsep.join([str(shims), os.environ["PATH"]])}
    cases = [
        ({"EVENT_NAME": "pull_request", "BASE_REF": "main"}, base_as_merged, False),
        ({"EVENT_NAME": "push", "BEFORE": before}, before, False),
        ({"EVENT_NAME": "push", "BEFORE": "0" * 40}, base_as_merged, True),
        ({"EVENT_NAME": "workflow_dispatch"}, base_as_merged, False),
    ]
    for variables, ref, noticed in cases:
        args = tmp_path / "nox-args"
        result = run_step(REPORT, clone, env, SESSION="report", NOX_ARGS=str(args), **variables)
        assert result.returncode == 0, result.stdout
        said = args.read_text(encoding="utf-8").splitlines()
        assert said == ["--reuse-venv=never", "--session", "report", "--", ref], variables
        assert ("::notice::" in result.stdout) is noticed, result.stdout


@pytest.mark.slow
def test_the_summary_and_comment_steps_publish_the_report(tmp_path: Path) -> None:
    report = tmp_path / "build" / "report" / "REPORT.md"
    report.parent.mkdir(parents=True)
    report.write_text("# Run report\n\n![Loss](figures/loss.png)\n", encoding="utf-8")
    event = tmp_path / "event.json"
    pr = {"number": 3, "head": {"repo": {"full_name": "o/r"}}}
    event.write_text(json.dumps({"pull_request": pr}), encoding="utf-8")
    summary = tmp_path / "step-summary.md"
    # The runner's Python, which finds the checkout's sessions/ from the working directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")} | {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PYTHONPATH": str(ROOT),
        "NO_PROXY": "127.0.0.1",
        "REPORT_ARTIFACT_URL": "https://github.com/o/r/actions/runs/1/artifacts/2",
    }
    result = run_step(SUMMARY, tmp_path, env, GITHUB_STEP_SUMMARY=str(summary))
    assert result.returncode == 0, result.stdout
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("# Run report\n") and "](figures/" not in text
    assert "[`report` artifact](https://github.com/o/r/actions/runs/1/artifacts/2)" in text
    with FakeGitHub("o/r", "ghs_step").serving() as api:
        github = {"GITHUB_API_URL": api.url, "GITHUB_REPOSITORY": "o/r", "GITHUB_ACTOR": "me",
                  "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event),
                  "GITHUB_TOKEN": "ghs_step"}  # fmt: skip
        result = run_step(COMMENT, tmp_path, env, **github)
    assert result.returncode == 0, result.stdout
    assert "ghs_step" not in result.stdout
    (posted,) = api.comments[3]
    assert posted["body"].startswith("<!-- gradient-lab run report -->\n# Run report\n")


@pytest.mark.slow
def test_the_data_check_fails_naming_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / ".coverage.linux").write_bytes(b"")
    result = run_step(DATA_CHECK, tmp_path, os.environ)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"::error::No coverage data from {system} (reports/.coverage.{system}): its tests leg "
        "did not finish."
        for system in ("win32", "darwin")
    ]
    (tmp_path / "reports" / ".coverage.win32").write_bytes(b"")
    result = run_step(DATA_CHECK, tmp_path, os.environ)
    assert result.returncode == 1 and "win32" not in result.stdout and "darwin" in result.stdout
    (tmp_path / "reports" / ".coverage.darwin").write_bytes(b"")
    assert run_step(DATA_CHECK, tmp_path, os.environ).returncode == 0


@pytest.mark.slow
def test_the_readme_runs_a_step_as_it_says(child_env: dict[str, str]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    (command,) = [line for line in readme if "python -m sessions.ci step" in line]
    result = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=child_env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=120,
    )  # fmt: skip
    # Linux has no Windows data: the step names what is missing, and fails.
    assert result.returncode == 1, result.stdout
    assert result.stdout.startswith("::error::No coverage data from "), result.stdout


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
def test_the_readme_step_runs_each_command_as_typed_without_ci_and_stops_at_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(PLANTED_README, encoding="utf-8")
    monkeypatch.setenv("CI", "true")
    assert ci.run_readme(readme) == 1
    assert (tmp_path / "said.txt").read_text(encoding="utf-8") == "CI=unset\n"
    assert not (tmp_path / "not-reached").exists()
    assert capsys.readouterr().err == "The README's command `exit 3` failed (exit 3).\n"


# A test planted in a copy: its child starts in the folder above the checkout, as the import
# boundary test's does, and runs {child}.
PLANTED = """\
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_a_child_started_above_the_checkout() -> None:
    env = os.environ | {{"PYTHONPATH": str(ROOT / "src")}}
    subprocess.run([sys.executable, *{child!r}], cwd=ROOT.parent, env=env, check=True, timeout=300)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("child", "unreported"),
    [
        # A library module: recorded as project/src/..., folded by [tool.coverage.paths].
        (["-c", "import gradient_lab.tracking"], None),
        # A top-level file cannot be folded: the coverage job names it, and fails.
        (["-m", "nox", "-f", "project/noxfile.py", "--list"], "project/noxfile.py"),
    ],
)
def test_the_combine_step_reads_a_child_started_above_the_checkout(
    project_copy: Path, child_env: dict[str, str], child: list[str], unreported: str | None
) -> None:
    pyproject = project_copy / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace("fail_under = 60", "fail_under = 0"), encoding="utf-8")
    planted = project_copy / "tests" / "test_planted_child.py"
    planted.write_text(PLANTED.format(child=child), encoding="utf-8")
    data = project_copy / "reports" / ".coverage.linux"
    data.parent.mkdir()
    gate = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "--cov",
         "--cov-report=", str(planted.relative_to(project_copy))],
        cwd=project_copy, env=without_coverage(child_env) | {"COVERAGE_FILE": str(data)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert gate.returncode == 0, gate.stdout + gate.stderr  # pytest-cov does not see it
    result = run_step(COMBINE, project_copy, without_coverage(child_env))
    if unreported is None:
        assert result.returncode == 0, result.stdout
        xml = (project_copy / "reports" / "coverage-combined.xml").read_text(encoding="utf-8")
        assert 'filename="src/gradient_lab/tracking.py"' in xml
        assert 'filename="project/' not in xml
    else:
        assert result.returncode == 1
        assert f"No source for code: '{unreported}'" in result.stdout


# --- the gate's upload rule, and a failed advisory update ------------------------------------

Value = str | bool
Parse = Callable[[int], tuple[Value, int]]
TOKEN = re.compile(r"\s*(?:(\|\||&&|==|!=|!|\(|\))|'((?:[^']|'')*)'|([A-Za-z_][\w.\-]*))")


def github_expression(text: str, context: Mapping[str, str]) -> Value:
    """The part of GitHub's expression language the workflow's rules use: names from `context`,
    'strings', ==, !=, !, &&, ||, parentheses. As on GitHub, && and || give one of their
    operands and strings compare ignoring case."""
    body = text.strip().removeprefix("${{").removesuffix("}}").strip()
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(body):
        match = TOKEN.match(body, position)
        if match is None:
            raise ValueError(f"cannot read {body[position:]!r}")
        position = match.end()
        op, string, name = match.groups()
        if op:
            tokens.append(("op", op))
        elif string is not None:
            tokens.append(("str", string.replace("''", "'")))
        else:
            tokens.append(("name", name))
    tokens.append(("end", ""))

    def equal(a: Value, b: Value) -> bool:
        return a.casefold() == b.casefold() if isinstance(a, str) and isinstance(b, str) else a == b

    def unary(i: int) -> tuple[Value, int]:
        kind, value = tokens[i]
        if (kind, value) == ("op", "!"):
            operand, i = unary(i + 1)
            return not operand, i
        if (kind, value) == ("op", "("):
            inner, i = either(i + 1)
            assert tokens[i] == ("op", ")"), body
            return inner, i + 1
        if kind == "str":
            return value, i + 1
        assert kind == "name", body
        return context[value], i + 1

    def comparison(i: int) -> tuple[Value, int]:
        left, i = unary(i)
        while tokens[i] in (("op", "=="), ("op", "!=")):
            negate = tokens[i][1] == "!="
            right, i = unary(i + 1)
            left = equal(left, right) != negate
        return left, i

    def chain(
        i: int, operator: str, operand: Parse, join: Callable[[Value, Value], Value]
    ) -> tuple[Value, int]:
        left, i = operand(i)
        while tokens[i] == ("op", operator):
            right, i = operand(i + 1)
            left = join(left, right)
        return left, i

    def both(i: int) -> tuple[Value, int]:
        return chain(i, "&&", comparison, lambda a, b: a and b)

    def either(i: int) -> tuple[Value, int]:
        return chain(i, "||", both, lambda a, b: a or b)

    value, end = either(0)
    assert tokens[end] == ("end", ""), body
    return value


def upload_rule() -> str:
    gate = yaml.safe_load(ci.WORKFLOW.read_text(encoding="utf-8"))["jobs"]["gate"]
    upload = next(s for s in gate["steps"] if "upload-artifact" in s.get("uses", ""))
    session_step = next(s for s in gate["steps"] if s.get("name") == GATE[1])
    assert session_step["id"] == "session", "the rule reads steps.session.outcome"
    rule: str = upload["with"]["if-no-files-found"]
    return rule


@pytest.mark.parametrize(
    ("outcome", "session", "expected"),
    [
        ("success", "tests", "error"),
        ("success", "security", "error"),
        ("success", "lint", "warn"),
        ("failure", "tests", "warn"),
        ("failure", "security", "warn"),
        ("failure", "lint", "warn"),
    ],
)
def test_reports_are_required_only_once_their_session_passed(
    outcome: str, session: str, expected: str
) -> None:
    context = {"steps.session.outcome": outcome, "matrix.session": session}
    assert github_expression(upload_rule(), context) == expected


def test_the_expression_reader_follows_githubs_rules() -> None:
    context = {"a": "Success", "b": ""}
    assert github_expression("${{ a == 'success' && 'yes' || 'no' }}", context) == "yes"
    assert github_expression("b && 'yes' || 'no'", context) == "no"
    assert github_expression("!(a != 'SUCCESS')", context) is True
    with pytest.raises(ValueError, match="cannot read"):
        github_expression("a === b", context)


@pytest.mark.slow
def test_a_failed_advisory_clone_is_the_security_jobs_last_error(
    project_copy: Path, child_env: dict[str, str], tmp_path: Path
) -> None:
    # GitHub is unreachable: git is sent to a folder that does not exist instead.
    git_config = tmp_path / "gitconfig"
    git_config.write_text(
        f'[url "{(tmp_path / "nowhere").as_uri()}/"]\n\tinsteadOf = https://github.com/\n',
        encoding="utf-8",
    )
    # The step's own command, in this interpreter's environment (the scanners are installed
    # here) rather than a venv of its own.
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "nox").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m nox --no-venv "$@"\n', encoding="utf-8"
    )
    (shims / "nox").chmod(0o755)
    env = {k: v for k, v in measured_in(project_copy, child_env).items() if k != "SAFETY_DB_DIR"}
    env["PATH"] = os.pathsep.join([str(shims), env["PATH"]])
    env |= {"GIT_CONFIG_GLOBAL": str(git_config), "GIT_CONFIG_NOSYSTEM": "1"}
    runner = tmp_path / "runner"
    runner.mkdir()
    result = run_step(GATE, project_copy, env, SESSION="security", RUNNER_TEMP=str(runner))
    assert result.returncode != 0
    lines = result.stdout.rstrip("\n").splitlines()
    (clone,) = [
        i
        for i, line in enumerate(lines)
        if "git could not clone https://github.com/pypa/advisory-database" in line
    ]
    assert all(line.startswith("nox > ") for line in lines[clone + 1 :]), lines[clone:]
    assert lines[-1] == "nox > Session security failed."
    assert not (project_copy / "reports").exists()
    # The upload that follows only warns: the session's sentence stays the last error.
    context = {"steps.session.outcome": "failure", "matrix.session": "security"}
    assert github_expression(upload_rule(), context) == "warn"
