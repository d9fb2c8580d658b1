"""What CI runs, derived from the noxfile's tags so the workflow never lists sessions by hand.

`python -m sessions.ci` prints GitHub step outputs, one JSON list of session names per tag:

    ci=["tests", "security", "lint"]        gates, on Linux, Windows and macOS
    ci-linux=["export-summary", ...]        tasks that run on Linux only

`python -m sessions.ci env` prints the workflow's environment as NAME=value lines, for
`.ci/workflow-env` to export: the local leg runs under the variables the workflow sets.

`python -m sessions.ci readme` runs the README's two commands, word for word, as a new user
does (the workflow's `readme` job, on a clean container, and `.ci/run`, in a fresh clone with a
bare venv).

`python -m sessions.ci step JOB NAME` prints the script of one `run:` step, for `.ci/run` (and
the tests) to run as GitHub would: the coverage job's steps run locally from the workflow
itself, not from a copy. A local action's steps go under its folder's name (`setup-nox`).
Every `run:` step is run by `.ci/run` or a test, or listed in NOT_RUN_LOCALLY with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sessions.project import ROOT

# Tag -> where CI runs the sessions that carry it.
CI_TAGS = {
    "ci": "Linux, Windows and macOS",
    "ci-linux": "Linux",
    "ci-report": "Linux, for pull requests and pushes to main, with the report published",
}

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
README = ROOT / "README.md"
README_SECTION = "## Two commands"
ACTIONS = ROOT / ".github" / "actions"

# The workflow's variables that `.ci/run` leaves out, each with the reason. Only a variable that
# points an installer at a package index a local machine may not reach belongs here.
NOT_APPLIED_LOCALLY = {
    "UV_TORCH_BACKEND": "it sends uv to PyTorch's CPU wheel index (download.pytorch.org); "
    ".ci/run gives uv the local wheel folder instead (UV_FIND_LINKS from PIP_FIND_LINKS)",
}


# The workflow's `run:` steps (job or action, step name) that neither .ci/run nor a test runs,
# each with the reason; tests/test_workflow_steps.py checks that every other one is run.
NOT_RUN_LOCALLY = {
    ("setup-nox", "Fonts the PDF tests check for (emoji; Windows ships its own)"): "it needs "
    "sudo, which a CI container has not; .ci/run installs the same Debian package as root",
    ("setup-nox", "A host name the runner resolves (macOS)"): "it renames a macOS runner, "
    "whose own name does not resolve; this machine's does",
    ("setup-nox", "Install nox and uv with the lock as constraint"): "it installs into the "
    "runner's Python; .ci/run installs the same packages, under the same lock, into its own venv",
    ("readme", "git, the one thing a fresh machine adds to Python"): "it installs git with apt "
    "into the job's container, as root; the machines .ci/run runs on have git",
    ("linux", "nox -s ${{ matrix.session }}"): "it runs one session of the matrix; .ci/run runs "
    "them all with the same command, as `nox --tags ci-linux`",
    ("linux", "nox -s tests -- -m docker (the engine tests, on the layers just built)"): ".ci/run "
    "runs the same tests in the venv its gate made (--reuse-venv=yes) instead of a second one",
}


class WorkflowEnvError(Exception):
    """The workflow's environment cannot be reproduced locally; the message says why."""


def workflow_env(workflow: Path = WORKFLOW) -> dict[str, str]:
    """The variables the workflow gives every job: its top-level `env:`, as GitHub sets them."""
    import yaml  # noqa: PLC0415 - only `env` needs it; the plan job's Python has no pyyaml

    data = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    env: dict[str, str] = {}
    for name, value in (data.get("env") or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "${{" in text or "\n" in text:
            raise WorkflowEnvError(
                f"{workflow.name} sets {name} to an expression or several lines, which a "
                "local run cannot reproduce: give it one literal value."
            )
        env[str(name)] = text
    return env


def local_env(workflow: Path = WORKFLOW) -> dict[str, str]:
    """The workflow's variables less NOT_APPLIED_LOCALLY, which must all still be set there."""
    env = workflow_env(workflow)
    if stale := sorted(set(NOT_APPLIED_LOCALLY) - set(env)):
        raise WorkflowEnvError(
            f"NOT_APPLIED_LOCALLY in sessions/ci.py names {', '.join(stale)}, which "
            f"{workflow.name} does not set: remove it from that list."
        )
    return {name: value for name, value in env.items() if name not in NOT_APPLIED_LOCALLY}


def run_steps(workflow: Path = WORKFLOW, actions: Path = ACTIONS) -> dict[tuple[str, str], str]:
    """Every `run:` step's script by (job, step name), the local actions' under their folder's
    name. A step without a name, or a name used twice in one job, is an error."""
    import yaml  # noqa: PLC0415 - as in workflow_env

    groups = [
        (job, spec.get("steps") or [])
        for job, spec in yaml.safe_load(workflow.read_text(encoding="utf-8"))["jobs"].items()
    ]
    for action in sorted(actions.glob("*/action.yml")):
        spec = yaml.safe_load(action.read_text(encoding="utf-8"))
        groups.append((action.parent.name, spec["runs"].get("steps") or []))
    scripts: dict[tuple[str, str], str] = {}
    for job, steps in groups:
        for step in steps:
            if "run" not in step:
                continue
            if "name" not in step or (job, step["name"]) in scripts:
                raise WorkflowEnvError(
                    f"a run step of {job} has no name, or one another step has: give each its "
                    "own, by which .ci/run and the tests find it."
                )
            scripts[(job, step["name"])] = step["run"]
    return scripts


def print_step(job: str, name: str) -> None:
    scripts = run_steps()
    script = scripts.get((job, name))
    if script is None:
        known = "; ".join(repr(step) for group, step in scripts if group == job) or "none"
        sys.exit(
            f"{WORKFLOW.name} has no run step named {name!r} in {job} (its run steps: {known})."
        )
    if "${{" in script:
        sys.exit(
            f"The step {name!r} of {job} uses a GitHub expression in its script, which a local "
            "run cannot evaluate: pass the value in through the step's env:."
        )
    print(script.rstrip("\n"))


def readme_commands(readme: Path = README) -> list[str]:
    """The lines of the first ```bash block under the README's README_SECTION heading."""
    text = readme.read_text(encoding="utf-8")
    _, found, section = text.partition(f"\n{README_SECTION}\n")
    _, fence, block = section.partition("```bash\n")
    if not (found and fence):
        raise WorkflowEnvError(f"{readme.name} has no ```bash block under {README_SECTION!r}.")
    return [line for line in block.partition("```")[0].splitlines() if line.strip()]


def run_readme(readme: Path = README) -> int:
    """Run the README's commands in its folder, one line at a time through bash, as a new user
    types them, and stop at the first that fails, saying which. Without CI=true: a user's
    machine has none, and under it a test that needs an optional part fails instead of
    skipping."""
    env = {name: value for name, value in os.environ.items() if name != "CI"}
    for line in readme_commands(readme):
        print(f"$ {line}", flush=True)
        code = subprocess.run(["bash", "-c", line], cwd=readme.parent, env=env).returncode
        if code != 0:
            print(f"The README's command `{line}` failed (exit {code}).", file=sys.stderr)
            return 1
    return 0


def sessions_tagged(tag: str) -> list[str]:
    """Names of the sessions with this tag, in noxfile order, as `nox --list --json` says."""
    listing = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "--tags", tag],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [entry["name"] for entry in json.loads(listing)]


def print_local_env() -> None:
    try:
        env = local_env()
    except WorkflowEnvError as error:
        sys.exit(str(error))
    for name, value in env.items():
        print(f"{name}={value}")
    for name, reason in NOT_APPLIED_LOCALLY.items():
        print(f"not applied: {name}, because {reason}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["env"]:
        print_local_env()
        return
    if args == ["readme"]:
        sys.exit(run_readme())
    if len(args) == 3 and args[0] == "step":
        print_step(args[1], args[2])
        return
    if args:
        usage = "usage: python -m sessions.ci [env | readme | step JOB NAME]"
        sys.exit(f"{usage} (got {' '.join(args)})")
    for tag in CI_TAGS:
        print(f"{tag}={json.dumps(sessions_tagged(tag))}")


if __name__ == "__main__":
    main()
