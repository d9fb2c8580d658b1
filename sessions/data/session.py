"""The `data` session: DVC-versioned data and weights, pulled, pushed, checked or regenerated.

`nox -s data -- pull|push|status|ensure|dvc [options]` runs in the session's venv through
`python -m sessions.data`. `push`, `pull` and `status` report output by output what the
records name (sessions/data/sync.py); `dvc ARGS` is DVC itself in this venv (e.g.
`dvc repro train@NAME`, which trains, so the venv holds the project and torch too).
`ensure_data` is what training calls first: the data set it gets is the one `data.dvc`
records, pulled or regenerated, and never a stale copy used silently.

Exit codes: 0 done; 1 failed, with one sentence on stderr (push: a recorded output is not on
the remote; pull: the data set is incomplete, or with `--all` any weights are missing);
2 usage. `dvc` exits with DVC's own code.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sessions.data import sync
from sessions.data.dvc import (
    DataError,
    command,
    dvc_env,
    explain,
    failure_kind,
    repository,
    resolve_remote,
    workspace_states,
)
from sessions.data.sync import DATA_DIR
from sessions.files import remove_tree
from sessions.project import ROOT
from sessions.stops import run_until_stopped
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

__all__ = ["DATA_DIR", "DataError", "ensure_data", "explain", "main", "run", "run_action"]

ACTIONS = ("pull", "push", "status", "ensure", "dvc")
USAGE = (
    "usage: nox -s data -- pull|push|status|ensure|dvc [options]: pull --all also fails on "
    "missing weights, ensure --allow-modified accepts edited data, dvc ARGS runs DVC itself "
    "(e.g. dvc repro train@sigmoid_deep); others go to DVC (e.g. -r s3, -j 8, a target)"
)


def run_action(action: str, args: Sequence[str] = (), *, root: Path = ROOT) -> int:
    """Run one `nox -s data` action; raise DataError with one sentence when it fails."""
    if action not in ACTIONS:
        raise DataError(f"unknown action {action!r}; {USAGE}")
    if action == "ensure":
        ensure_training_data(root, allow_modified="--allow-modified" in args)
    elif action == "dvc":
        return subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=root, env=dvc_env()
        ).returncode
    else:
        {"push": sync.push, "pull": sync.pull, "status": sync.status}[action](args, root)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        # Like DVC itself, act on the repository that holds the current directory.
        return run_action(args[0], args[1:], root=Path.cwd())
    except DataError as error:
        print(f"error: {str(error).rstrip('.')}.", file=sys.stderr)
        return 1


def run(session: nox.Session) -> None:
    if not session.posargs or session.posargs[0] not in ACTIONS:
        session.error(USAGE)
    # The project too: `ensure` runs its data generator and `dvc repro` its training.
    install_groups(session, "data", project=True)
    run_until_stopped(session, "python", "-m", "sessions.data", *session.posargs)


# --- what training calls before it reads the data --------------------------------------------


def workspace_state(root: Path, target: str = DATA_DIR) -> str:
    """How `target` in the workspace compares with the version its .dvc file records, as
    DVC compares them: "current" (same content, whether or not the cache holds it),
    "modified", "deleted", or "untracked" when there is no .dvc file."""
    if not (root / f"{target}.dvc").is_file():
        return "untracked"
    folder = root / target
    if folder.is_dir() and not any(folder.iterdir()):
        # An empty folder holds no version: a container's bind mount of a fresh clone's data/.
        return "deleted"
    with repository(root) as (repo, _):
        state = workspace_states(repo, {target}).get(target)
    return state if state in ("modified", "deleted") else "current"


def recorded_version(root: Path, target: str) -> str:
    """The content hash that target.dvc records (DVC's `<md5>.dir` for a folder)."""
    with repository(root) as (repo, _):
        found = [o.md5 for o in sync.load_outputs(repo) if o.record == f"{target}.dvc"]
    return found[0] if found else "no version"


def clear(path: Path) -> None:
    """Empty a folder, keeping the folder itself (a container's bind mount cannot be removed);
    remove anything else there."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    for entry in path.iterdir() if path.is_dir() else []:
        if entry.is_dir() and not entry.is_symlink():
            remove_tree(entry)
        else:
            entry.unlink()


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
            notice(
                f"Generated {target}/; it is not versioned yet: "
                f"`{command('dvc', ['add', target])}` records it."
            )
        else:
            notice(f"Using {target}/ as it is: no {target}.dvc records a version of it.")
        return "untracked"
    if state == "current":
        return "current"
    recorded = recorded_version(root, target)
    if state == "modified":
        message = (
            f"{target}/ differs from the version {target}.dvc records ({recorded}): "
            f"`{command('pull', ['--force', f'{target}.dvc'])}` puts that version back over "
            f"your edits, `{command('dvc', ['add', target])}` records yours instead"
        )
        if not allow_modified:
            raise DataError(message + ".")
        notice(f"Notice: training on modified data; {message}.")
        return "modified"
    # Missing from the workspace: the local cache or else the remote may have it.
    done, why = fetch(root, target)
    if done:
        source = "the local DVC cache" if done == "restored" else "the DVC remote"
        notice(f"{done.capitalize()} {target}/ ({recorded}) from {source}.")
        return done
    notice(f"Notice: could not get {target}/ from DVC ({why}) - regenerating it.")
    # It was absent (or empty) before the pull: whatever a failed pull left there is not the
    # user's.
    clear(path)
    generate(path)
    if workspace_state(root, target) != "current":
        notice(
            f"Notice: the regenerated {target}/ differs from the version {target}.dvc records "
            f"({recorded}); `{command('dvc', ['add', target])}` records the new one, "
            f"`{command('pull', ['--force', f'{target}.dvc'])}` fetches the recorded one once "
            "a remote holds it."
        )
        return "regenerated"
    # Into the cache, so that `push` can share it; the record is unchanged.
    try:
        with repository(root) as (repo, _):
            repo.commit(f"{target}.dvc", force=True)
    except Exception as error:  # whatever stopped DVC: said, and training goes on
        # Training needs only the data, which is right; sharing it needs the cache (a
        # container user may not write the record or the cache: not a reason to stop).
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        notice(
            f"Notice: the regenerated {target}/ is the version {target}.dvc records "
            f"({recorded}), but DVC could not add it to the cache ({reason}), so a push "
            "from this checkout cannot share it."
        )
    else:
        notice(f"The regenerated {target}/ is the version {target}.dvc records ({recorded}).")
    return "regenerated"


def fetch(root: Path, target: str) -> tuple[str | None, str]:
    """Put the recorded `target` back from the local cache ("restored") or the remote
    ("pulled"); else (None, why not, as a clause naming the remote)."""
    record = f"{target}.dvc"
    with repository(root) as (repo, log):
        try:
            repo.checkout(targets=[record])
        except Exception:  # DVC's CheckoutError: the cache does not hold it
            pass
        else:
            return "restored", ""
        try:
            repo.pull(targets=[record])
        except Exception as error:  # the cache and the remote lack it, or the remote failed
            return None, why_not_pulled(root, error, log.errors())
        return "pulled", ""


def why_not_pulled(root: Path, error: BaseException, logged: Sequence[BaseException]) -> str:
    """Why `dvc pull` could not get the data, naming the remote, as a clause."""
    try:
        remote = resolve_remote(None, root, "pull")
    except DataError as failure:
        return str(failure).rstrip(".")
    if remote is None:
        return "no DVC remote is configured"
    if failure_kind([error, *logged]) is not None:
        return explain("pull", error, [], remote, logged).rstrip(".")
    if remote.missing(root):
        return f"the remote {remote} does not exist yet"
    return f"neither your cache nor the remote {remote} holds it"


def ensure_training_data(root: Path = ROOT, *, allow_modified: bool = False) -> str:
    """`ensure_data` for the data set the training scripts read, with its real generator."""

    def generate(path: Path) -> None:
        # Imported only when needed: the library needs numpy and matplotlib.
        from gradient_lab import synthetic_data  # noqa: PLC0415

        synthetic_data.generate(path)

    state = ensure_data(generate, root=root, allow_modified=allow_modified)
    if state == "current":
        print(f"{DATA_DIR}/ matches {DATA_DIR}.dvc.")
    return state
