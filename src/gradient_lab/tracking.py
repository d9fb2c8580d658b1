"""The W&B logging layer: wrap a training loop in `track(...)` and call `tracker.step(...)`.

    with track("my-experiment", config, model, device=device) as tracker:
        for step, (x, y) in enumerate(batches):
            loss = loss_fn(model(x), y)
            loss.backward()
            tracker.step(step, loss=loss, lr=lr)   # after backward, before zero_grad
            optimizer.step()
            optimizer.zero_grad()
        tracker.save_weights(model)

What it records: the config plus provenance (git commit and dirty flag, data version, device,
library versions); loss and other scalars averaged over each logging interval; the gradient
norm of every layer (`grad_norm/<layer>`); gradient histograms of every parameter under the
keys and bins `wandb.watch` uses (`gradients/<parameter>`, 64 bins over min..max); images; the
weights, saved under models/ and logged as an artifact; and a vanishing/exploding-gradient check.

Cost: nothing leaves the device between logging steps. Every `log_every` steps all per-layer
norms are computed with one `torch._foreach_norm`, reach the host in one transfer and go to W&B
as one row, which a background thread hands to `run.log` (each call waits for a round trip to
W&B's service); every `watch_every` steps that same row carries the histograms. (They are drawn
here rather than by `wandb.watch`: its hooks run in every backward pass and send one message
per parameter, which cost the demo more than all the rest together.)

Mode: `WANDB_MODE` when set, online when `WANDB_API_KEY` is set, else offline (no account
needed). Tests that do not test tracking pass `mode="disabled"`. How online failures are
reported: `wandb_start`.

Distributed (torchrun): one run per job. Rank 0 logs and saves; `track()` gives every other
rank an `IdleTracker`, whose calls do nothing. World size and backend go into the config.
"""

from __future__ import annotations

import io
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, Literal, cast

import torch
import wandb
from PIL import Image
from torch import nn
from tqdm import tqdm

from gradient_lab import distributed
from gradient_lab.errors import TrackingError
from gradient_lab.files import atomic_save, link_or_copy
from gradient_lab.gradients import LayerGradNorms, gradient_health
from gradient_lab.layout import DEFAULT_RUN_DIR, MODELS_DIR
from gradient_lab.provenance import provenance
from gradient_lab.values import config_dict, scalars
from gradient_lab.wandb_start import start_run

PROJECT = "gradient-lab"
MODES = ("online", "offline", "disabled")
DEFAULT_LOG_EVERY = 10
# Histograms cost far more than norms: every 100 steps keeps them near free.
DEFAULT_WATCH_EVERY = 100


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


def _warn(message: str) -> None:
    # tqdm.write keeps a running progress bar intact.
    tqdm.write(f"WARNING: {message}", file=sys.stderr)


class BackgroundCalls:
    """Makes a run's W&B calls on one background thread, in the order they were queued.

    Each W&B call waits for a round trip to W&B's service: over a millisecond on a busy
    machine, tens for a process's first row. Queued, none of it waits in the training loop.
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


class Tracker:
    """One tracked run. Made by `track()`; its methods are all a training loop needs."""

    logs = True  # False in an IdleTracker (the ranks of a distributed job other than 0)

    def __init__(
        self,
        run: Any,
        model: nn.Module,
        mode: str,
        log_every: int,
        models_dir: Path,
        *,
        watch_every: int = DEFAULT_WATCH_EVERY,
        background: bool = False,
    ) -> None:
        """`background`: make W&B calls on a `BackgroundCalls` thread; `close()` ends it."""
        self.run = run
        self.mode = mode
        self.log_every = log_every
        self.watch_every = watch_every
        self.models_dir = models_dir
        self.norms = LayerGradNorms(model)
        self._background = BackgroundCalls() if background else None
        self._values: dict[str, list[torch.Tensor]] = {}
        self._numbers: dict[str, float] = {}
        self._count = 0
        self.last_norms: dict[str, float] = {}
        self.last_ratio: float | None = None
        self.flags: set[str] = set()
        # A loop that stops itself (a signal) sets this; None means "as the block ended".
        self.exit_code: int | None = None

    @property
    def run_dir(self) -> Path:
        """The run's folder (`.../wandb/offline-run-...`); what `wandb sync` takes."""
        return Path(self.run.dir).parent

    @property
    def run_id(self) -> str:
        return str(self.run.id)

    def step(self, step: int, **metrics: Any) -> None:
        """Record one optimisation step; call after backward() while the gradients exist
        (with gradient accumulation: once per optimizer step; with a GradScaler: after
        `scaler.unscale_(optimizer)`).

        Values: numbers, one-element tensors (averaged over the logging interval on their
        device), numpy scalars, or sequences of them, logged as `key/group0`, `key/group1`...
        Plain numbers (a learning rate) are logged as they are at the logging step.
        """
        for key, value in metrics.items():
            if isinstance(value, torch.Tensor) and value.dim() == 0:  # the common case first
                # Kept, not added up: a list append costs less than a kernel call per step.
                self._values.setdefault(key, []).append(value.detach())
            elif isinstance(value, float | int):
                self._numbers[key] = float(value)
            else:
                for name, scalar in scalars(key, value).items():
                    if isinstance(scalar, torch.Tensor):
                        self._values.setdefault(name, []).append(scalar)
                    else:
                        self._numbers[name] = scalar
        self._count += 1
        if (step + 1) % self.log_every == 0:
            self._log(step)

    def _log(self, step: int) -> None:
        layers = self.norms.compute()
        means = [torch.stack(values).float().mean() for values in self._values.values()]
        # The one device-to-host transfer of the interval.
        device = layers.norms.device
        parts = [torch.stack(means).to(device)] if means else []
        values: list[float] = torch.cat([*parts, layers.norms]).tolist()
        row: dict[str, Any] = dict(zip(self._values, values[: len(means)], strict=True))
        row |= self._numbers
        layer_norms = values[len(means) :]
        # Only layers that have a gradient now: a frozen or unused layer is left out, not 0.
        self.last_norms = dict(zip(layers.names, layer_norms, strict=True))
        row |= {f"grad_norm/{name}": norm for name, norm in self.last_norms.items()}
        ratio = None
        if layer_norms:
            ratio = layer_norms[0] / layer_norms[-1] if layer_norms[-1] > 0 else float("inf")
            row["grad_norm/first_to_last"] = ratio
        # When this logging interval crossed a multiple of watch_every, so any log_every works.
        if (step + 1) // self.watch_every > (step + 1 - self._count) // self.watch_every:
            row |= self.norms.histograms()
        self._call(self.run.log, row, step=step)
        self._values.clear()
        self._numbers = {}
        self._count = 0
        if ratio is not None:
            self._check(step, ratio, layers.names[0], layers.names[-1])

    def _call(self, method: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """A W&B call: queued when the tracker has a background thread, else made now."""
        if self._background:
            self._background.put(partial(method, *args, **kwargs))
        else:
            method(*args, **kwargs)

    def close(self) -> None:
        """Wait for the queued W&B calls and end the background thread; raise a failed one."""
        if self._background:
            self._background.close()
            self._background = None

    def _check(self, step: int, ratio: float, first: str, last: str) -> None:
        # The summary is written when a flag flips and at the end: each write is a message.
        self.last_ratio = ratio
        health = gradient_health(ratio)
        if health == "healthy" or health in self.flags:
            return
        self.flags.add(health)
        self._call(self.run.summary.update, {f"gradients/{health}": True})
        message = (
            f"{health} gradients at step {step}: layer {first} gets {ratio:.1e} times the "
            f"gradient norm of layer {last}."
        )
        _warn(message)
        if self.mode == "online":
            title = f"{health.capitalize()} gradients"
            self._call(self.run.alert, title=title, text=message, level="WARN")

    def log_image(self, key: str, image: Path | Any, caption: str | None = None) -> None:
        """Log a picture: a file path or a matplotlib Figure (rendered without pyplot)."""
        if isinstance(image, Path):
            image = str(image)
        elif hasattr(image, "savefig"):
            png = io.BytesIO()
            image.savefig(png, format="png")
            image = Image.open(png)
        self._call(self.run.log, {key: wandb.Image(image, caption=caption)}, commit=False)

    def summary(self, **values: Any) -> None:
        self._call(self.run.summary.update, values)

    def save_weights(self, model: nn.Module, name: str | None = None) -> Path:
        """Save the weights to models/<name>.pt and log them as a W&B model artifact.

        The state dict carries the model's own names (no `module.` or `_orig_mod.`), so it
        loads into the unwrapped model. The artifact's file is kept in the run folder, so the
        folder alone is what `wandb sync` needs.
        """
        name = name or str(self.run.name)
        path = self.models_dir / f"{name}.pt"
        atomic_save(distributed.state_dict(model), path)
        if self.mode == "disabled":
            return path
        staged = link_or_copy(path, self.run_dir.resolve() / "artifacts" / path.name)
        artifact = wandb.Artifact(
            re.sub(r"[^\w.-]", "-", f"{name}-weights"), type="model",
            metadata={"file": path.name, "torch": torch.__version__},
        )  # fmt: skip
        # immutable: W&B uploads the file where it is instead of copying it to its data folder.
        artifact.add_file(str(staged), name=path.name, policy="immutable")
        self._call(self.run.log_artifact, artifact)
        self._call(self.run.summary.update, {"weights": str(path)})
        return path


class IdleTracker(Tracker):
    """What the ranks of a distributed job other than 0 get: every call does nothing.

    `save_weights` still reads the model's state dict (for FSDP that is a collective every
    rank must join) and returns the path rank 0 writes.
    """

    logs = False

    def __init__(self, rank: int, models_dir: Path) -> None:  # no run, no norms
        self.rank = rank
        self.mode = "disabled"
        self.models_dir = models_dir
        self.last_norms = {}
        self.last_ratio = None
        self.flags = set()
        self.exit_code = None

    @property
    def run_dir(self) -> Path:
        raise TrackingError(f"Rank {self.rank} keeps no W&B run: rank 0 logs the job's run.")

    @property
    def run_id(self) -> str:
        raise TrackingError(f"Rank {self.rank} keeps no W&B run: rank 0 logs the job's run.")

    def step(self, step: int, **metrics: Any) -> None:
        pass

    def log_image(self, key: str, image: Path | Any, caption: str | None = None) -> None:
        pass

    def summary(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def save_weights(self, model: nn.Module, name: str | None = None) -> Path:
        distributed.state_dict(model)
        return self.models_dir / f"{name or 'weights'}.pt"


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


@contextmanager
def track(
    experiment: str,
    config: Mapping[str, Any] | Any,
    model: nn.Module,
    *,
    device: str = "cpu",
    name: str | None = None,
    group: str | None = None,
    mode: str | None = None,
    run_dir: Path | None = None,
    models_dir: Path = MODELS_DIR,
    log_every: int = DEFAULT_LOG_EVERY,
    watch_every: int = DEFAULT_WATCH_EVERY,
    resume_id: str | None = None,
) -> Iterator[Tracker]:
    """Open a W&B run around a training loop; close it cleanly however the loop ends.

    `config`: a Mapping, an argparse.Namespace or a dataclass instance. `model` may be
    wrapped (DDP, torch.compile): keys and weights use the names of the model inside.
    An exception (or KeyboardInterrupt) marks the run failed with exit code 1; a loop that
    stops itself early (a signal) sets `tracker.exit_code` before leaving the block.
    Under torchrun, ranks other than 0 get an `IdleTracker` and open no run.
    """
    if not experiment.strip():
        raise TrackingError("The experiment name is empty: give the run a name.")
    if log_every < 1 or watch_every < 1:
        raise TrackingError("Logging intervals must be at least one step.")
    settings = config_dict(config)
    chosen_mode = resolve_mode(mode)
    rank = distributed.rank()
    if rank != 0:
        yield IdleTracker(rank, models_dir)
        return
    folder = resolve_run_dir(run_dir)
    os.environ.setdefault("WANDB_SILENT", "true")
    jobs = {"world_size": distributed.world_size(), "backend": distributed.backend()}
    run = start_run(
        cast(Literal["online", "offline", "disabled"], chosen_mode),
        project=os.environ.get("WANDB_PROJECT", PROJECT),
        job_type=experiment,
        name=name or experiment,
        group=group,
        dir=folder,
        config={**settings, "distributed": jobs, "provenance": provenance(device)},
        id=resume_id,
        resume="allow" if resume_id else None,
    )
    tracker = Tracker(
        run, model, chosen_mode, log_every, models_dir, watch_every=watch_every, background=True
    )
    exit_code = 0
    try:
        yield tracker
        tracker.close()  # waits for the queued W&B calls: a failed one fails the run
    except BaseException:
        exit_code = 1
        raise
    finally:
        with suppress(TrackingError):  # after a failure in the block, that one is reported
            tracker.close()
        # "unchecked" when no logging step came (a run shorter than log_every): never a
        # "healthy" that no check found.
        health = ", ".join(sorted(tracker.flags)) or (
            "healthy" if tracker.last_ratio is not None else "unchecked"
        )
        final: dict[str, Any] = {"gradients/health": health}
        if tracker.last_ratio is not None:
            final["gradients/first_to_last"] = tracker.last_ratio
        run.summary.update(final)
        run.finish(exit_code=exit_code if tracker.exit_code is None else tracker.exit_code)
