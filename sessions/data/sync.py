"""`nox -s data -- push|pull|status`: DVC's push, pull and status, reported by what the records
name.

The records are the .dvc files (data sets: what training needs) and dvc.lock (outputs of
`dvc.yaml` stages: trained weights, nice to have, each rebuilt by its stage). Every report
says, output by output, where each one is (workspace, cache, remote), names the remote and its
URL, and gives the command that fixes what is missing. What it says comes from DVC's Python
API: the records as DVC reads them, the objects the remote holds before and after, the number
of files a push uploaded, the exceptions DVC raised or logged. DVC's log is not shown (`-v`
shows it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessions.data.dvc import (
    DataError,
    Remote,
    command,
    dvc,
    explain,
    failure_kind,
    options,
    repo_path,
    repository,
    resolve_remote,
    workspace_states,
)

# The data set that training reads, tracked by DATA_DIR.dvc at the repository root.
DATA_DIR = "data"
# Present while a push runs: a push that never removed it was interrupted.
PUSH_MARKER = Path(".dvc") / "tmp" / "push-in-progress"


@dataclass(frozen=True)
class Output:
    """One output that a record names: its path, content hash and where it is recorded."""

    path: str
    md5: str  # the content hash (`<md5>.dir` for a folder's listing)
    record: str  # "data.dvc" or "dvc.lock"
    stage: str | None = None  # the dvc.yaml stage that builds it
    hash_name: str = "md5"  # DVC 3's; "md5-dos2unix" in a record that DVC 2 wrote

    @property
    def label(self) -> str:
        return f"{self.path}/" if self.md5.endswith(".dir") else self.path

    @property
    def needed(self) -> bool:
        """Data sets (.dvc files) are what training needs; stage outputs can be rebuilt."""
        return self.stage is None

    @property
    def recorded_in(self) -> str:
        return f"{self.record} by stage {self.stage}" if self.stage else self.record

    def rebuild(self) -> str:
        """What makes this output exist again, as a clause with a runnable command."""
        if self.stage:
            return f"rebuild it with `{command('dvc', ['repro', self.stage])}`"
        if self.path == DATA_DIR:
            return f"regenerate it with `{command('ensure')}`"
        return "push it from a clone that has it"

    def owns(self, path: str) -> bool:
        """Whether a repository path (see tool_path) is this output or inside it."""
        return path == self.path or path.startswith(f"{self.path}/")

    def named_by(self, targets: Sequence[str]) -> bool:
        """Whether a DVC target list (paths, .dvc files, stage names) covers this output."""
        if not targets:
            return True
        for target in targets:
            name = target.replace("\\", "/").removeprefix("./").rstrip("/")
            if name in (self.record, self.stage, self.stage and self.stage.split("@")[0]):
                return True
            if self.owns(name):
                return True
        return False


def load_outputs(repo: Any, targets: Sequence[str] = ()) -> list[Output]:
    """Every output that the records name and DVC caches (`cache: false` ones live in git), as
    DVC reads the records: data sets first, then stage outputs, each by path."""
    outputs = []
    for out in repo.index.outs:
        if not out.use_cache or not out.hash_info:
            continue
        stage = out.stage
        lock = Path(stage.path_in_repo).with_name("dvc.lock")
        outputs.append(
            Output(
                path=repo_path(repo, out),
                md5=str(out.hash_info.value),
                record=(Path(stage.path_in_repo) if stage.is_data_source else lock).as_posix(),
                stage=None if stage.is_data_source else stage.addressing,
                hash_name=out.hash_info.name,
            )
        )
    outputs.sort(key=lambda output: (not output.needed, output.path))
    return [output for output in outputs if output.named_by(targets)]


def listing(outputs: Iterable[Output]) -> str:
    labels = [output.label for output in outputs]
    return ", ".join(labels) if labels else "none"


def require_remote(name: str | None, root: Path, action: str) -> Remote:
    remote = resolve_remote(name, root, action)
    if remote is not None:
        return remote
    if name:
        raise DataError(
            f"dvc {action} failed: no remote named '{name}' is configured; "
            f"`{command('dvc', ['remote', 'list'])}` shows the ones that are."
        )
    raise DataError(
        f"dvc {action} failed: no DVC remote is configured; the committed .dvc/config names "
        "the local one, or add one as the README's data section shows."
    )


@dataclass
class CloudState:
    """Recorded outputs that are not on the remote: in the cache only, or nowhere."""

    new: list[Output] = field(default_factory=list)
    missing: list[Output] = field(default_factory=list)

    def absent(self) -> list[Output]:
        return [*self.missing, *self.new]


def cloud_state(
    repo: Any, remote: Remote, outputs: Sequence[Output], args: Sequence[str], action: str
) -> CloudState:
    """Where each output's object is (`dvc status --cloud` for the objects the records name):
    a folder's is its listing, which a push uploads only after every file in it."""
    from dvc_data.hashfile.hash_info import HashInfo  # noqa: PLC0415 - the data venv only

    objects = [HashInfo(output.hash_name, output.md5) for output in outputs]
    try:
        status = repo.cloud.status(objects, remote=remote.name)
    except Exception as error:  # whatever reaching the remote raised
        raise DataError(explain(action, error, args, remote)) from None
    missing = {info.value for info in status.missing}
    new = {info.value for info in status.new}
    return CloudState(
        new=[output for output in outputs if output.md5 in new],
        missing=[output for output in outputs if output.md5 in missing],
    )


def interrupted(remote: Remote, how: str, args: Sequence[str]) -> str:
    return (
        f"the push to the remote {remote} was interrupted ({how}) before it finished, and "
        f"nothing in your workspace or cache was lost: rerun the push with "
        f"`{command('push', args)}`"
    )


def push(args: Sequence[str], root: Path) -> None:
    parsed = options("push", args)
    remote = require_remote(parsed.remote, root, "push")
    marker = root / PUSH_MARKER
    if marker.is_file():
        print(f"The last push to the remote {remote} was interrupted; this push completes it.")
    with repository(root, verbose=parsed.verbose > 0) as (repo, log):
        outputs = load_outputs(repo, parsed.targets)
        # Reachable before the push: a connection lost during it means an interrupted push.
        cloud_state(repo, remote, outputs, args, "push")
        if remote.folder is not None:
            (root / remote.folder).mkdir(parents=True, exist_ok=True)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{remote}\n", encoding="utf-8")
        try:
            pushed = repo.push(
                targets=parsed.targets,
                jobs=parsed.jobs,
                remote=parsed.remote,
                all_branches=parsed.all_branches,
                all_tags=parsed.all_tags,
                all_commits=parsed.all_commits,
                with_deps=parsed.with_deps,
                recursive=parsed.recursive,
                run_cache=parsed.run_cache,
                glob=parsed.glob,
            )
        except KeyboardInterrupt:
            raise DataError(interrupted(remote, "stopped with Ctrl-C", args)) from None
        except Exception as error:  # DVC's, or what its transfer raised
            if failure_kind([error, *log.errors()]) == "unreachable":
                how = "the connection to the remote dropped"
                raise DataError(interrupted(remote, how, args)) from None
            raise DataError(explain("push", error, args, remote, log.errors())) from None
        marker.unlink(missing_ok=True)
        after = cloud_state(repo, remote, outputs, args, "push")
    held = [output for output in outputs if output not in after.absent()]
    print(f"Pushed {pushed} file(s) to the remote {remote}; it now holds {listing(held)}.")
    for output in after.missing:
        print(
            f"{output.label} is recorded in {output.recorded_in} but neither in your cache "
            f"nor on the remote {remote}: {output.rebuild()}, then push.",
            file=sys.stderr,
        )
    for output in after.new:
        print(
            f"{output.label} is in your cache but the remote {remote} still lacks it after "
            f"the push: rerun the push with `{command('push', args)}`.",
            file=sys.stderr,
        )
    if after.absent():
        raise DataError(
            f"the push is incomplete: the remote {remote} lacks {listing(after.absent())}, "
            "recorded but not pushed (see above)"
        )
    print(f"The remote {remote} now holds every output that the .dvc files and dvc.lock record.")


def pull(args: Sequence[str], root: Path) -> None:
    """Pull all that the remote has; fail only when the data set is incomplete (or, with
    --all, when weights are missing too)."""
    want_all = "--all" in args
    dvc_args = [arg for arg in args if arg != "--all"]
    parsed = options("pull", dvc_args)
    remote = require_remote(parsed.remote, root, "pull")
    with repository(root, verbose=parsed.verbose > 0) as (repo, log):
        outputs = load_outputs(repo, parsed.targets)
        try:
            repo.pull(
                targets=parsed.targets,
                jobs=parsed.jobs,
                remote=parsed.remote,
                all_branches=parsed.all_branches,
                all_tags=parsed.all_tags,
                all_commits=parsed.all_commits,
                with_deps=parsed.with_deps,
                force=parsed.force,
                recursive=parsed.recursive,
                run_cache=parsed.run_cache,
                glob=parsed.glob,
                allow_missing=parsed.allow_missing,
            )
            failed: Exception | None = None
        except Exception as error:  # DVC's, or what reaching the remote raised
            failed = error
        if failed is not None and failure_kind([failed, *log.errors()]) is not None:
            raise DataError(explain("pull", failed, args, remote, log.errors()))
        # A pull that succeeded checked every output out; only a failed one needs asking which.
        states = workspace_states(repo, {o.path for o in outputs}) if failed else {}
    edited = [output for output in outputs if states.get(output.path) == "modified"]
    if edited and not parsed.force:
        raise DataError(
            "dvc pull failed: your workspace has edits that the pull would overwrite; "
            f"`{command('pull', ['--force', *dvc_args])}` replaces them with the recorded "
            f"versions, `{command('status')}` shows them"
        )
    absent = [o for o in outputs if states.get(o.path) in ("deleted", "modified")]
    if failed is not None and not absent:
        raise DataError(explain("pull", failed, args, remote))  # never a claim of success
    present = [output for output in outputs if output not in absent]
    where = f"the remote {remote}" + (", which does not exist yet" if remote.missing(root) else "")
    print(f"Pulled from the remote {remote}: the workspace has {listing(present)}.")
    weights = [output for output in absent if not output.needed]
    for output in weights:
        print(
            f"Not available: {output.label} (recorded in {output.recorded_in}) is neither in "
            f"your cache nor on {where}; {output.rebuild()}.",
            file=sys.stderr if want_all else sys.stdout,
        )
    data = [output for output in absent if output.needed]
    if data:
        output = data[0]
        raise DataError(
            f"{output.label} is recorded in {output.recorded_in} but neither in your cache nor "
            f"on {where}: {output.rebuild()}"
        )
    if weights and want_all:
        raise DataError(f"--all: {listing(weights)} could not be pulled (see above)")
    if weights:
        print("The data set is complete; training can run. `--all` makes missing weights an error.")


def status(args: Sequence[str], root: Path) -> None:
    """Workspace vs records (DVC's own words), then cache vs the remote (named, with its URL)."""
    parsed = options("status", args)
    remote = require_remote(parsed.remote, root, "status")
    workspace = dvc("status", *parsed.targets, root=root)
    print("Workspace vs records (the .dvc files and dvc.lock):")
    text = workspace.stdout if workspace.returncode == 0 else workspace.output
    print(_indent(text.strip() or "no output"))
    with repository(root) as (repo, _):
        outputs = load_outputs(repo, parsed.targets)
        cloud = cloud_state(repo, remote, outputs, args, "status")
    print(f"Cache vs remote {remote}:")
    if remote.missing(root):
        print(f"  the remote does not exist yet; `{command('push')}` creates it.")
    for output in cloud.new:
        print(
            f"  {output.label}: in your cache, not on the remote; `{command('push')}` uploads it."
        )
    for output in cloud.missing:
        print(f"  {output.label}: neither in your cache nor on the remote; {output.rebuild()}.")
    if not cloud.absent():
        print("  in sync: the remote holds every recorded output.")
    if (root / PUSH_MARKER).is_file() and cloud.new:
        print(
            f"The last push to the remote {remote} was interrupted before it finished: rerun "
            f"the push with `{command('push')}`."
        )


def _indent(text: str) -> str:
    return "\n".join(f"  {line.expandtabs(4).rstrip()}" for line in text.splitlines())
