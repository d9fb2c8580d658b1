"""`nox -s data -- push|pull|status`: DVC's commands, reported by what the records name.

The records are the .dvc files at the repository root (data sets: what training needs) and
dvc.lock (outputs of `dvc.yaml` stages: trained weights, nice to have, each rebuilt by its
stage). Every report says, output by output, where each one is (workspace, cache, remote),
names the remote and its URL, and gives the command that fixes what is missing. DVC's own
warnings are read, never shown raw after a claim of success.
"""

from __future__ import annotations

import re
import signal
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
    is_connection_failure,
    json_report,
    remote_flag,
    resolve_remote,
)
from sessions.files import tool_path

# The data set that training reads, tracked by DATA_DIR.dvc at the repository root.
DATA_DIR = "data"
# Present while a push runs: a push that never removed it was interrupted.
PUSH_MARKER = Path(".dvc") / "tmp" / "push-in-progress"
# Options of `dvc push/pull/status` that take a value (the rest of the words are targets).
VALUE_OPTIONS = ("-r", "--remote", "-j", "--jobs", "--glob-from")
MISSING = r"Missing cache files|Checkout failed|failed to download|missing-files"


@dataclass(frozen=True)
class Output:
    """One output that a record names: its path, content hash and where it is recorded."""

    path: str
    md5: str
    record: str  # "data.dvc" or "dvc.lock"
    stage: str | None = None  # the dvc.yaml stage that builds it

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
            if self.owns(name) or name.startswith(f"{self.path}/"):
                return True
        return False


def split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(options, targets) of a DVC push/pull/status command line."""
    options: list[str] = []
    targets: list[str] = []
    words = iter(args)
    for word in words:
        if word in VALUE_OPTIONS:
            options += [word, next(words, "")]
        elif word.startswith("-"):
            options.append(word)
        else:
            targets.append(word)
    return options, targets


def _yaml(path: Path) -> Any:
    from ruamel.yaml import YAML  # noqa: PLC0415 - DVC's own YAML library, in the data venv

    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}


def uncached_patterns(root: Path) -> dict[str, list[re.Pattern[str]]]:
    """dvc.yaml stage -> path patterns of its outputs marked `cache: false` (kept in git)."""
    dvc_yaml = root / "dvc.yaml"
    stages = (_yaml(dvc_yaml).get("stages") or {}) if dvc_yaml.is_file() else {}
    patterns: dict[str, list[re.Pattern[str]]] = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind) or []:
                if not isinstance(entry, dict):
                    continue
                for path, options in entry.items():
                    if isinstance(options, dict) and options.get("cache") is False:
                        parts = re.split(r"\$\{[^}]*\}", path)
                        regex = "[^/]+".join(re.escape(part) for part in parts)
                        patterns.setdefault(name, []).append(re.compile(f"^{regex}$"))
    return patterns


def load_outputs(root: Path) -> list[Output]:
    """Every output that the root's .dvc files and dvc.lock record and DVC caches."""
    outputs = [
        Output(str(out["path"]), str(out.get("md5", "")), dvc_file.name)
        for dvc_file in sorted(root.glob("*.dvc"))
        if dvc_file.is_file()
        for out in _yaml(dvc_file).get("outs") or []
    ]
    lock = root / "dvc.lock"
    if lock.is_file():
        uncached = uncached_patterns(root)
        for stage, body in (_yaml(lock).get("stages") or {}).items():
            skip = uncached.get(stage.split("@")[0], [])
            outputs += [
                Output(str(out["path"]), str(out.get("md5", "")), lock.name, stage)
                for out in body.get("outs") or []
                if not any(pattern.match(str(out["path"])) for pattern in skip)
            ]
    return outputs


def listing(outputs: Iterable[Output]) -> str:
    labels = [output.label for output in outputs]
    return ", ".join(labels) if labels else "none"


def require_remote(args: Sequence[str], root: Path, action: str) -> Remote:
    remote = resolve_remote(args, root, action)
    if remote is not None:
        return remote
    name = remote_flag(args)
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
    root: Path, remote: Remote, outputs: Sequence[Output], args: Sequence[str], action: str
) -> CloudState:
    """Compare the local cache with the remote (`dvc status --cloud`), output by output."""
    _, targets = split_args(args)
    result = dvc("status", "--cloud", "--json", "-r", remote.name, *targets, root=root)
    if result.returncode != 0:
        raise DataError(explain(action, result.output, args, remote))
    report: dict[str, str] = json_report(result)
    state = CloudState()
    missing: set[Output] = set()
    new: set[Output] = set()
    for path, status in report.items():
        owner = next((output for output in outputs if output.owns(tool_path(path))), None)
        if owner is None:
            continue
        if status == "missing":
            missing.add(owner)
        elif status == "new":
            new.add(owner)
    # A directory whose listing is nowhere shows only as a hash in DVC's warning.
    for md5 in re.findall(r"md5: (\S+)", result.stderr):
        missing.update(output for output in outputs if output.md5 == md5)
    state.missing = [output for output in outputs if output in missing]
    state.new = [output for output in outputs if output in new and output not in missing]
    return state


def interrupted(remote: Remote, how: str, args: Sequence[str]) -> str:
    return (
        f"the push to the remote {remote} was interrupted ({how}) before it finished, and "
        f"nothing in your workspace or cache was lost: rerun the push with "
        f"`{command('push', args)}`"
    )


def stopped_by(returncode: int) -> str | None:
    """How a DVC process that ended with `returncode` was stopped, if it was stopped."""
    if returncode < 0:
        try:
            return f"DVC was stopped by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"DVC was stopped by signal {-returncode}"
    return None


def push(args: Sequence[str], root: Path) -> None:
    remote = require_remote(args, root, "push")
    marker = root / PUSH_MARKER
    if marker.is_file():
        print(f"The last push to the remote {remote} was interrupted; this push completes it.")
    outputs = [output for output in load_outputs(root) if output.named_by(split_args(args)[1])]
    # Reachable before the push: a connection lost during it means an interrupted push.
    cloud_state(root, remote, outputs, args, "push")
    if remote.folder is not None:
        (root / remote.folder).mkdir(parents=True, exist_ok=True)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{remote}\n", encoding="utf-8")
    try:
        result = dvc("push", *args, root=root)
    except KeyboardInterrupt:
        raise DataError(interrupted(remote, "stopped with Ctrl-C", args)) from None
    if result.returncode != 0:
        how = stopped_by(result.returncode)
        if how is None and re.search(r"interrupted by the user", result.output, re.I):
            how = "stopped with Ctrl-C"
        if how is None and is_connection_failure(result.output):
            how = "the connection to the remote dropped"
        if how is not None:
            raise DataError(interrupted(remote, how, args))
        raise DataError(explain("push", result.output, args, remote))
    marker.unlink(missing_ok=True)
    after = cloud_state(root, remote, outputs, args, "push")
    counted = re.search(r"(\d+) files? pushed", result.output)
    held = [output for output in outputs if output not in after.absent()]
    print(
        f"Pushed {counted.group(1) if counted else 0} file(s) to the remote {remote}; "
        f"it now holds {listing(held)}."
    )
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


def workspace_changes(root: Path, action: str, args: Sequence[str]) -> dict[str, set[str]]:
    """`dvc data status`: paths deleted or modified in the workspace, and not in the cache."""
    result = dvc("data", "status", "--json", root=root)
    if result.returncode != 0:
        raise DataError(explain(action, result.output, args))
    changes = json_report(result).get("uncommitted", {})
    return {
        state: {tool_path(path) for path in changes.get(state, [])}
        for state in ("deleted", "modified")
    }


def pull(args: Sequence[str], root: Path) -> None:
    """Pull all that the remote has; fail only when the data set is incomplete (or, with
    --all, when weights are missing too)."""
    want_all = "--all" in args
    dvc_args = [arg for arg in args if arg != "--all"]
    remote = require_remote(dvc_args, root, "pull")
    outputs = [output for output in load_outputs(root) if output.named_by(split_args(args)[1])]
    result = dvc("pull", *dvc_args, root=root)
    if result.returncode != 0:
        if "Use `--force`" in result.output:
            raise DataError(
                "dvc pull failed: your workspace has edits that the pull would overwrite; "
                f"`{command('pull', ['--force', *dvc_args])}` replaces them with the recorded "
                f"versions, `{command('status')}` shows them"
            )
        if not re.search(MISSING, result.output, re.IGNORECASE):
            raise DataError(explain("pull", result.output, args, remote))
    # A pull that succeeded checked every output out; only a partial one needs asking which.
    deleted = workspace_changes(root, "pull", args)["deleted"] if result.returncode else set()
    absent = [output for output in outputs if output.path in deleted]
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
    """Workspace vs records, then cache vs the remote (named, with its URL)."""
    _, targets = split_args(args)
    remote = require_remote(args, root, "status")
    workspace = dvc("status", *targets, root=root)
    if workspace.returncode != 0:
        raise DataError(explain("status", workspace.output, args, remote))
    print("Workspace vs records (the .dvc files and dvc.lock):")
    print(_indent(workspace.stdout.strip() or "no output"))
    print(f"Cache vs remote {remote}:")
    if remote.missing(root):
        print(f"  the remote does not exist yet; `{command('push')}` creates it.")
    outputs = [output for output in load_outputs(root) if output.named_by(targets)]
    cloud = cloud_state(root, remote, outputs, args, "status")
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
