"""The W&B sink: one run on rank 0, its calls made on a background thread, its artifacts and
the command that uploads it. The only module of the tracker that calls W&B's run.

Each W&B call waits for a round trip to W&B's service (over a millisecond on a busy machine,
tens for a process's first row); queued, none of it waits in the training loop.

Mode: `WANDB_MODE` when set, online when `WANDB_API_KEY` is set, else offline (no account
needed). How online failures are reported: `wandb_start`.
"""

from __future__ import annotations

import io
import os
import queue
import re
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, Literal, cast

import torch
import wandb
from PIL import Image
from tqdm import tqdm

from gradient_lab.errors import TrackingError
from gradient_lab.files import link_or_copy
from gradient_lab.layout import DEFAULT_RUN_DIR
from gradient_lab.wandb_start import start_run

PROJECT = "gradient-lab"
MODES = ("online", "offline", "disabled")


def resolve_mode(mode: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """The W&B mode: the argument, else WANDB_MODE, else online with an API key, else offline."""
    chosen = mode or environ.get("WANDB_MODE") or ("online" if environ.get("WANDB_API_KEY") else "")
    chosen = {"dryrun": "offline", "run": "online"}.get(chosen, chosen) or "offline"
    if chosen not in MODES:
        raise TrackingError(f"Unknown W&B mode {chosen!r}: use one of {', '.join(MODES)}.")
    return chosen


def resolve_run_dir(run_dir: Path | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The folder W&B writes runs under (`<dir>/wandb/`), created and checked writable."""
    chosen = run_dir or Path(environ.get("WANDB_DIR") or DEFAULT_RUN_DIR)
    try:
        chosen.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=chosen):
            pass
    except OSError as error:
        raise TrackingError(
            f"The run folder {chosen} is not writable ({error.strerror}): "
            "pass a writable --run-dir or set WANDB_DIR."
        ) from error
    return chosen


def warn(message: str) -> None:
    # tqdm.write keeps a running progress bar intact.
    tqdm.write(f"WARNING: {message}", file=sys.stderr)


class BackgroundCalls:
    """Makes a run's W&B calls on one background thread, in the order they were queued.
    After a call fails the rest are dropped; `close()` waits for the queue and raises that failure.
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._work, name="wandb-calls", daemon=True)
        self._thread.start()

    def put(self, call: Callable[[], object]) -> None:
        self._calls.put(call)

    def close(self) -> None:
        self._calls.put(None)
        self._thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise TrackingError(f"A W&B call failed: {error}") from error

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            if self._error is None:
                try:
                    call()
                except Exception as error:  # raised in the training thread by close()
                    self._error = error


def offline_run_folders(wandb_dir: Path, run_id: str) -> list[Path]:
    """The folders under `wandb_dir` that hold the offline run `run_id` (each its own
    `run-<id>.wandb`), oldest first. W&B names them `offline-run-<time>-<id>`, and adds `-1`,
    `-2`, ... when a resumed run starts in the same second as the folder before it."""

    def order(folder: Path) -> tuple[str, int]:
        stem, _, number = folder.name.rpartition("-")
        again = number.isdigit() and stem.endswith(run_id)  # `<id>-1`: after `<id>`
        return (stem, int(number)) if again else (folder.name, 0)

    runs = wandb_dir.glob(f"offline-run-*/run-{run_id}.wandb")
    return sorted((run.parent for run in runs), key=order)


def wandb_cli() -> str:
    """How to call the `wandb` command that belongs to this Python: the script beside the
    interpreter (relative to the working directory when under it), else `wandb` on PATH."""
    found = shutil.which("wandb", path=str(Path(sys.executable).parent))
    if not found:
        return "wandb"
    path = Path(found)
    with suppress(ValueError):
        path = path.relative_to(Path.cwd())
    return str(path) if path.is_absolute() or path.parent != Path() else f"./{path}"


class Sink:
    """One W&B run. `background`: its calls go to a `BackgroundCalls` thread; `close()` ends it."""

    def __init__(self, run: Any, mode: str, *, background: bool = False) -> None:
        self.run = run
        self.mode = mode
        self._background = BackgroundCalls() if background else None
        self._logged_step = -1  # W&B keeps a run's steps increasing
        self._dropped_warned = False

    @classmethod
    def start(cls, mode: str, folder: Path, **init: Any) -> Sink:
        """Open the run; one open at a time in a process, so no two blocks share one."""
        if wandb.run is not None:
            raise TrackingError(
                f"A W&B run ({wandb.run.name}) is already open in this process, and a second "
                "track() would write into it: track several models in one run with "
                'track(experiment, config, {"netG": netG, "netD": netD}), or close the first '
                "block before opening the next."
            )
        os.environ.setdefault("WANDB_SILENT", "true")
        kind = cast(Literal["online", "offline", "disabled"], mode)
        run = start_run(kind, project=os.environ.get("WANDB_PROJECT", PROJECT), dir=folder, **init)
        return cls(run, mode, background=True)

    @property
    def run_dir(self) -> Path:
        """The run's folder (`.../wandb/offline-run-...`); what `wandb sync` takes."""
        return Path(self.run.dir).parent

    @property
    def run_id(self) -> str:
        return str(self.run.id)

    @property
    def run_dirs(self) -> list[Path]:
        """Every folder holding this run's records, oldest first: an offline run resumed
        after a stop writes one more folder each time, and `wandb sync` needs them all."""
        if self.mode != "offline":
            return [self.run_dir]
        return offline_run_folders(self.run_dir.parent, self.run_id) or [self.run_dir]

    def sync_command(self) -> str:
        """The command that uploads this offline run (all of its folders)."""
        return shlex.join([wandb_cli(), "sync", *(str(d) for d in self.run_dirs)])

    def call(self, method: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """A W&B call: queued when the sink has a background thread, else made now."""
        if self._background:
            self._background.put(partial(method, *args, **kwargs))
        else:
            method(*args, **kwargs)

    def log(self, row: dict[str, Any], step: int) -> None:
        """One row; histograms given as (counts, edges) become W&B histograms."""
        if step < self._logged_step:
            if not self._dropped_warned:
                self._dropped_warned = True
                warn(
                    f"Values for step {step} came after step {self._logged_step} was logged "
                    f"and were dropped ({', '.join(sorted(row))}): W&B keeps steps increasing, "
                    "so log each step's values before a later step's."
                )
            return
        self._logged_step = step
        for key, value in row.items():
            if isinstance(value, tuple):
                row[key] = wandb.Histogram(np_histogram=value)
        self.call(self.run.log, row, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        self.call(self.run.summary.update, values)

    def config(self, values: dict[str, Any]) -> None:
        self.call(self.run.config.update, values, allow_val_change=True)

    def alert(self, title: str, text: str) -> None:
        if self.mode == "online":
            self.call(self.run.alert, title=title, text=text, level="WARN")

    def image(
        self, key: str, image: Path | Any, caption: str | None = None, step: int | None = None
    ) -> None:
        """A picture (a file path or a matplotlib Figure, rendered without pyplot) at `step`,
        else with the next row."""
        if isinstance(image, Path):
            image = str(image)
        elif hasattr(image, "savefig"):
            png = io.BytesIO()
            image.savefig(png, format="png")
            image = Image.open(png)
        row = {key: wandb.Image(image, caption=caption)}
        if step is None:
            self.call(self.run.log, row, commit=False)
        else:
            self.log(row, step)

    def weights(self, name: str, paths: list[Path]) -> None:
        """The weight files as one model artifact. Each is kept in the run folder, so the
        folder alone is what `wandb sync` needs."""
        artifact = wandb.Artifact(
            re.sub(r"[^\w.-]", "-", f"{name}-weights"),
            type="model",
            metadata={"files": [path.name for path in paths], "torch": torch.__version__},
        )
        for path in paths:
            staged = link_or_copy(path, self.run_dir.resolve() / "artifacts" / path.name)
            # immutable: W&B uploads the file where it is instead of copying it.
            artifact.add_file(str(staged), name=path.name, policy="immutable")
        self.call(self.run.log_artifact, artifact)

    def close(self) -> None:
        """Wait for the queued W&B calls and end the background thread; raise a failed one."""
        if self._background:
            self._background.close()
            self._background = None
