"""The `data` session: DVC-versioned data and weights, pulled, pushed, checked or regenerated.

`nox -s data -- pull|push|status [dvc options]` runs DVC's command line in the session's venv
through `python -m sessions.data`, which turns DVC's failures into one sentence saying what
happened and what to do. `ensure_data` is what training calls first: the data set it gets is
the one `data.dvc` records, pulled or regenerated, and never a stale copy used silently.

DVC itself is only ever run as a child process, so importing this module costs nothing.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sessions.files import remove_tree
from sessions.project import ROOT
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

ACTIONS = ("pull", "push", "status", "ensure")
USAGE = "usage: nox -s data -- pull|push|status|ensure [dvc options, e.g. -r s3 or a target]"
# The data set that training reads, tracked by DATA_DIR.dvc at the repository root.
DATA_DIR = "data"

# DVC failure text -> what happened and what to do. The first pattern that matches wins.
FAILURES: tuple[tuple[str, str], ...] = (
    (
        r"Could not connect to the endpoint URL|Connection refused|Cannot connect to host"
        r"|ConnectTimeout|Name or service not known",
        "the remote {remote} is unreachable; start it or fix its endpoint "
        "(`dvc remote modify --local {remote} endpointurl URL` or AWS_ENDPOINT_URL_S3), "
        "then rerun `nox -s data -- {action}`",
    ),
    (
        r"InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|Forbidden|\(403\)",
        "the remote {remote} rejected the credentials; set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (or `dvc remote modify --local {remote} access_key_id ...`) "
        "and rerun `nox -s data -- {action}`",
    ),
    (
        r"Unable to locate credentials|NoCredentialsError",
        "no S3 credentials were found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(or AWS_PROFILE) and rerun `nox -s data -- {action}`",
    ),
    (
        r"NoSuchBucket|bucket does not exist",
        "the bucket of remote {remote} does not exist and DVC does not create buckets; "
        "create it (for example `aws s3 mb s3://BUCKET`) or fix the remote's url, then rerun "
        "`nox -s data -- {action}`",
    ),
    (
        r"Missing cache files|missing-files|Checkout failed",
        "the remote {remote} does not hold the data that the .dvc files record; run "
        "`nox -s data -- push` where that data exists, or regenerate it",
    ),
    (
        r"No remote provided and no default remote set",
        "no DVC remote is configured; add one, for example `dvc remote add --local -d s3 s3://BUCKET/dvc`",
    ),
    (
        r"remote '[^']*' doesn't exist",
        "that DVC remote is not configured; `dvc remote list` shows the ones that are",
    ),
    (
        r"not a DVC repository|you are not inside of a DVC repository",
        "this folder is not a DVC repository; run the command from the repository root",
    ),
)


class DataError(RuntimeError):
    """A DVC operation failed; the message is one sentence saying what to do."""


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str


def dvc_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment DVC runs in: ours, with DVC's usage analytics off (offline first)."""
    return {**environ, "DVC_NO_ANALYTICS": "1"}


def dvc(
    *args: str, root: Path = ROOT, env: Mapping[str, str] | None = None, echo: bool = False
) -> Result:
    """Run `dvc ARGS` with this interpreter's DVC in `root`; never raises on a DVC failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=dvc_env(os.environ if env is None else env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    output = proc.stdout + proc.stderr
    if echo and proc.stdout.strip():
        print(proc.stdout.rstrip())
    return Result(proc.returncode, output)


def remote_name(args: Sequence[str]) -> str:
    """The remote a DVC command line names with -r/--remote, else the default one."""
    for flag, value in itertools.pairwise(args):
        if flag in ("-r", "--remote"):
            return f"'{value}'"
    return "(the default remote)"


def explain(action: str, output: str, args: Sequence[str] = ()) -> str:
    """One sentence for a failed `dvc ACTION`: what happened and what to do."""
    remote = remote_name(args)
    for pattern, advice in FAILURES:
        if re.search(pattern, output, re.IGNORECASE):
            text = advice.format(remote=remote, action=action)
            return f"dvc {action} failed: {text}."
    detail = next(
        (line.strip() for line in output.splitlines() if line.startswith("ERROR")),
        output.strip().splitlines()[-1] if output.strip() else "no output",
    )
    return f"dvc {action} failed ({detail}); rerun with `-v` after `--` for DVC's full log."


def run_action(action: str, args: Sequence[str] = (), *, root: Path = ROOT) -> None:
    """Run one `nox -s data` action; raise DataError with one sentence when it fails."""
    if action not in ACTIONS:
        raise DataError(f"unknown action {action!r}; {USAGE}")
    if action == "ensure":
        ensure_training_data(root, allow_modified="--allow-modified" in args)
        return
    steps: list[list[str]] = [[action, *args]]
    if action == "status":
        # Workspace vs cache first, then cache vs remote (needs the remote).
        steps = [["status", *args], ["status", "--cloud", *args]]
    for step in steps:
        result = dvc(*step, root=root, echo=True)
        if result.returncode != 0:
            raise DataError(explain(action, result.output, args))
    if action == "push":
        print("Pushed: the remote now holds every version the .dvc files and dvc.lock record.")
    elif action == "pull":
        print("Pulled: the workspace matches the .dvc files and dvc.lock.")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        # Like DVC itself, act on the repository that holds the current directory.
        run_action(args[0], args[1:], root=Path.cwd())
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def run(session: nox.Session) -> None:
    if not session.posargs or session.posargs[0] not in ACTIONS:
        session.error(USAGE)
    install_groups(session, "data")
    session.run("python", "-m", "sessions.data", *session.posargs)


# --- what training calls before it reads the data --------------------------------------------


def recorded_hash(dvc_file: Path) -> str | None:
    """The content hash that a .dvc file records for its output, if any."""
    match = re.search(r"^\s*-?\s*md5:\s*(\S+)", dvc_file.read_text(encoding="utf-8"), re.M)
    return match.group(1) if match else None


def workspace_state(root: Path, target: str = DATA_DIR) -> str:
    """How `target` in the workspace compares with the version its .dvc file records.

    "current" (same content, whether or not the cache holds it), "modified", "deleted", or
    "untracked" when there is no .dvc file.
    """
    if not (root / f"{target}.dvc").is_file():
        return "untracked"
    result = dvc("data", "status", "--json", root=root)
    if result.returncode != 0:
        raise DataError(explain("status", result.output))
    # DVC may print warnings before the JSON document.
    start = result.output.find("{")
    report = json.loads(result.output[start:]) if start >= 0 else {}
    changes = report.get("uncommitted", {})
    for state in ("modified", "deleted"):
        if any(entry.rstrip("/") == target for entry in changes.get(state, [])):
            return state
    return "current"


def ensure_data(
    generate: Callable[[Path], object],
    *,
    root: Path = ROOT,
    target: str = DATA_DIR,
    allow_modified: bool = False,
    notice: Callable[[str], object] = print,
) -> str:
    """Make `root/target` hold the data set that `target.dvc` records, before training.

    In order: use it when it already matches; restore it from the local cache or pull it from
    the remote when it is missing; else call `generate(root/target)` with a notice. Data that
    differ from the recorded version stop here (DataError) unless `allow_modified`, so a stale
    or edited data set is never used silently. Returns what was done: "current", "restored",
    "pulled", "regenerated", "modified" or "untracked".
    """
    path = root / target
    state = workspace_state(root, target)
    if state == "untracked":
        if not path.exists():
            generate(path)
            notice(f"Generated {target}/; it is not versioned yet: `dvc add {target}` records it.")
        else:
            notice(f"Using {target}/ as it is: no {target}.dvc records a version of it.")
        return "untracked"
    recorded = recorded_hash(root / f"{target}.dvc")
    if state == "current":
        return "current"
    if state == "modified":
        message = (
            f"{target}/ differs from the version {target}.dvc records ({recorded}): "
            f"run `nox -s data -- pull` to get that version back, or `dvc add {target}` "
            "to record yours"
        )
        if not allow_modified:
            raise DataError(message + ".")
        notice(f"Notice: training on modified data; {message}.")
        return "modified"
    # Missing from the workspace: the local cache or else the remote may have it.
    if dvc("checkout", f"{target}.dvc", root=root).returncode == 0:
        notice(f"Restored {target}/ ({recorded}) from the local DVC cache.")
        return "restored"
    pulled = dvc("pull", f"{target}.dvc", root=root)
    if pulled.returncode == 0:
        notice(f"Pulled {target}/ ({recorded}) from the DVC remote.")
        return "pulled"
    reason = explain("pull", pulled.output).rstrip(".")
    notice(f"Notice: could not get {target}/ from DVC ({reason}) - regenerating it.")
    # It was absent before the pull: whatever a failed pull left there is not the user's.
    remove_tree(path, missing_ok=True)
    generate(path)
    if workspace_state(root, target) != "current":
        notice(
            f"Notice: the regenerated {target}/ differs from the version {target}.dvc records "
            f"({recorded}); `dvc add {target}` records the new one, `nox -s data -- pull` "
            "fetches the recorded one once a remote is reachable."
        )
    return "regenerated"


def ensure_training_data(root: Path = ROOT, *, allow_modified: bool = False) -> str:
    """`ensure_data` for the data set the training scripts read, with its real generator."""
    from gradient_lab.synthetic_data import generate  # noqa: PLC0415 - needs numpy/matplotlib

    state = ensure_data(generate, root=root, allow_modified=allow_modified)
    if state == "current":
        print(f"{DATA_DIR}/ matches {DATA_DIR}.dvc.")
    return state


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Ctrl-C (e.g. during `train-tracked`'s data check): one line, not a traceback.
        print("Stopped by Ctrl-C (SIGINT); run the same command again to finish.", file=sys.stderr)
        sys.exit(130)
