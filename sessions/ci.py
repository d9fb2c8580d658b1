"""What CI runs, derived from the noxfile's tags so the workflow never lists sessions by hand.

`python -m sessions.ci` prints GitHub step outputs, one JSON list of session names per tag:

    ci=["tests", "security", "lint"]        gates, on Linux and Windows
    ci-linux=["export-summary", ...]        tasks that run on Linux only

`python -m sessions.ci env` prints the workflow's environment as NAME=value lines, for
`.ci/workflow-env` to export: the local leg runs under the variables the workflow sets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sessions.project import ROOT

# Tag -> where CI runs the sessions that carry it.
CI_TAGS = {"ci": "Linux and Windows", "ci-linux": "Linux"}

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"

# The workflow's variables that `.ci/run` leaves out, each with the reason. Only a variable that
# points an installer at a package index a local machine may not reach belongs here.
NOT_APPLIED_LOCALLY = {
    "UV_TORCH_BACKEND": "it sends uv to PyTorch's CPU wheel index (download.pytorch.org); "
    ".ci/run gives uv the local wheel folder instead (UV_FIND_LINKS from PIP_FIND_LINKS)",
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
    if args:
        sys.exit(f"usage: python -m sessions.ci [env] (got {' '.join(args)})")
    for tag in CI_TAGS:
        print(f"{tag}={json.dumps(sessions_tagged(tag))}")


if __name__ == "__main__":
    main()
