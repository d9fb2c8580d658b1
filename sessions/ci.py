"""What CI runs, derived from the noxfile's tags so the workflow never lists sessions by hand.

`python -m sessions.ci` prints GitHub step outputs, one JSON list per tag:

    ci=["tests-3.11", "security", "lint"]   gates, on Linux, Windows and macOS
    pythons=["3.12", "3.13", "3.14"]        the other Pythons `tests` runs on (Linux)
    ci-linux=["train-smoke", ...]           tasks that run on Linux only
    ci-report=["report"]                    the run report, published on the pull request

`python -m sessions.ci leg` prints the sessions `.ci/run` runs, one per line: the Linux leg on
this machine's one Python, then `coverage` on its data.

`python -m sessions.ci readme` runs the README's two commands, word for word, as a new user
does (the workflow's `readme` job, on a clean container, and `.ci/run`, in a fresh clone with a
bare venv).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sessions.project import PYTHON, ROOT

# Tag -> where CI runs the sessions that carry it; `ci-coverage` runs after the tests legs.
CI_TAGS = {
    "ci": "Linux, Windows and macOS",
    "ci-linux": "Linux",
    "ci-report": "Linux, for pull requests and pushes to main, with the report published",
    "ci-coverage": "Linux, on the data of every tests leg",
}

README = ROOT / "README.md"
README_SECTION = "## Two commands"


def listed(tag: str) -> list[dict[str, str]]:
    """The sessions with this tag, in noxfile order, as `nox --list --json` gives them."""
    command = [sys.executable, "-m", "nox", "--list", "--json", "--tags", tag]
    listing = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    entries: list[dict[str, str]] = json.loads(listing)
    return entries


def sessions_tagged(tag: str) -> list[str]:
    """The names to run (`tests-3.11`, `lint`) of the sessions with this tag, on PYTHON."""
    return [entry["session"] for entry in listed(tag) if entry["python"] in (PYTHON, None)]


def outputs() -> dict[str, list[str]]:
    """The plan job's outputs: the sessions of each tag, and the tests' other Pythons."""
    found = {tag: sessions_tagged(tag) for tag in CI_TAGS if tag != "ci-coverage"}
    others = [entry["python"] for entry in listed("ci") if entry["python"] not in (PYTHON, None)]
    return {"ci": found.pop("ci"), "pythons": others, **found}


def readme_commands(readme: Path = README) -> list[str]:
    """The lines of the first ```bash block under the README's README_SECTION heading."""
    text = readme.read_text(encoding="utf-8")
    _, found, section = text.partition(f"\n{README_SECTION}\n")
    _, fence, block = section.partition("```bash\n")
    if not (found and fence):
        sys.exit(f"{readme.name} has no ```bash block under {README_SECTION!r}.")
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


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["readme"]:
        sys.exit(run_readme())
    if args == ["leg"]:
        for tag in CI_TAGS:
            for session in sessions_tagged(tag):
                print(session)
        return
    if args:
        sys.exit(f"usage: python -m sessions.ci [leg | readme] (got {' '.join(args)})")
    for name, sessions in outputs().items():
        print(f"{name}={json.dumps(sessions)}")


if __name__ == "__main__":
    main()
