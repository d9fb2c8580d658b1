"""Read finished offline W&B runs back from disk with W&B's own reader (`wandb leet inspect`).

Each run is read once per test process (runs are read only after they finish). `RecordingRun`
stands in for a run where a test looks at what a Tracker hands to W&B, not at the files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

from tests.conftest import without_coverage


def wandb_cli() -> str:
    found = shutil.which("wandb", path=str(Path(sys.executable).parent))
    assert found, "the wandb CLI is not installed next to this Python"
    return found


def run_dirs(root: Path) -> list[Path]:
    """Offline runs under `root/wandb/`, oldest first (globbing: Windows has no symlinks)."""
    return sorted((root / "wandb").glob("offline-run-*"))


def run_id(run_dir: Path) -> str:
    """A run's id, from its log's name (`run-<id>.wandb`): the folder's name ends with it only
    until a resumed run starts in the same second as the one before, when W&B adds `-1`."""
    (run_file,) = run_dir.glob("run-*.wandb")
    return run_file.stem.removeprefix("run-")


def leet_inspect(*options: str, run_dir: Path) -> str:
    """`wandb leet inspect --json`'s output, from the reader it runs: W&B's `wandb-core` binary,
    started directly with the arguments the CLI gives it (the CLI's own Python start-up was
    half the cost of each read). It runs beside the run, where a debug log it writes does not
    land in the checkout, and without coverage: it is not Python."""
    from wandb.util import get_core_path

    (run_file,) = run_dir.glob("*.wandb")
    return subprocess.run(
        [get_core_path(), "leet", "inspect", "--no-observability", *options, "--json",
         "--run-file", str(run_file), str(run_dir.parent)],
        cwd=run_dir.parent, env=without_coverage(os.environ), capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip


@cache
def inspect(run_dir: Path) -> dict[str, Any]:
    """Config, summary, state and exit code of a run."""
    out = leet_inspect("--summary", run_dir=run_dir)
    result: dict[str, Any] = json.loads(out)
    return result


@cache
def records(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of a run's .wandb file."""
    out = leet_inspect(run_dir=run_dir)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def history(run_dir: Path) -> list[dict[str, Any]]:
    """The logged rows, each with its step under "_step"."""
    return [r["history"]["item"] for r in records(run_dir) if r["type"] == "history"]


def artifacts(run_dir: Path) -> list[dict[str, Any]]:
    return [r["artifact"] for r in records(run_dir) if r["type"] == "artifact"]


class RecordingRun:
    """Records what a Tracker hands to `run.log` (rows and their steps)."""

    def __init__(self) -> None:
        self.summary: dict[str, Any] = {}
        self.logged: list[tuple[int, dict[str, Any]]] = []

    def log(self, row: dict[str, Any], step: int) -> None:
        self.logged.append((step, row))


def tracker_on(run: Any, model: Any, mode: str = "offline", **options: Any) -> Any:
    """A Tracker whose W&B calls go to `run` (a RecordingRun or another stand-in), made now."""
    from torch import nn

    from gradient_lab.sink import Sink
    from gradient_lab.tracking import Tracker

    models = {"": model} if isinstance(model, nn.Module) else model
    options.setdefault("models_dir", Path("unused"))
    return Tracker(models, Sink(run, mode), name="test", **options)
