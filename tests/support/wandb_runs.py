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


def leet_inspect(*options: str, run_dir: Path) -> str:
    """`wandb leet inspect --json`'s output. It runs beside the run: the CLI writes its own
    debug log under `./wandb/` of its working directory, which must not be the checkout. W&B's
    reader runs none of the project's code, so coverage does not follow it there."""
    return subprocess.run(
        [wandb_cli(), "leet", "inspect", *options, "--json", str(run_dir)],
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
