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
needed). Tests that do not test tracking pass `mode="disabled"`.
"""

from __future__ import annotations

import io
import math
import os
import platform
import queue
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

import numpy
import torch
import wandb
from PIL import Image
from torch import nn
from tqdm import tqdm

from experiments.paths import DATA_DVC, DEFAULT_RUN_DIR, MODELS_DIR, ROOT

PROJECT = "gradient-lab"
MODES = ("online", "offline", "disabled")
DEFAULT_LOG_EVERY = 10
# Histograms cost far more than norms: every 100 steps keeps them near free.
DEFAULT_WATCH_EVERY = 100
HISTOGRAM_BINS = 64  # as wandb.watch draws them
# First layer's gradient norm over the last layer's: below VANISHING the input layers barely
# learn (the 100x the demo teaches), above EXPLODING they swamp the rest.
VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2


class TrackingError(Exception):
    """A tracked run cannot start; the message is one sentence saying why and what to do."""


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


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(  # fixed git arguments, no shell
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def data_version(dvc_file: Path = DATA_DVC) -> str:
    """The data set's content hash from its DVC file, or "untracked" before DVC versions it."""
    if not dvc_file.is_file():
        return "untracked"
    found = re.search(r"^\s*-?\s*md5:\s*(\S+)", dvc_file.read_text(encoding="utf-8"), re.MULTILINE)
    return found.group(1) if found else "unknown"


def provenance(device: str, dvc_file: Path = DATA_DVC) -> dict[str, Any]:
    """Where a run came from: code version, data version, device and library versions."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit or "unknown",
        "git_dirty": bool(status) if status is not None else None,
        "data_version": data_version(dvc_file),
        "device": device,
        "cuda_device": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "wandb": wandb.__version__,
        "numpy": numpy.__version__,
    }


class LayerGradNorms:
    """Per-layer gradient norms of a model, all computed on its device in a few kernel calls.

    A layer is a module that owns parameters directly (a Linear, a norm layer), in the order
    the model registers them, so the first layer is the input side and the last the output.
    """

    def __init__(self, model: nn.Module) -> None:
        self.names: list[str] = []
        self.params: list[torch.Tensor] = []
        self.param_names: list[str] = []  # as model.named_parameters() calls them
        owners: list[int] = []
        for name, module in model.named_modules():
            own = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]
            if own:
                owners += [len(self.names)] * len(own)
                self.names.append(name or type(module).__name__)
                self.params += [p for _, p in own]
                self.param_names += [f"{name}.{n}" if name else n for n, _ in own]
        if not self.names:
            raise TrackingError("The model has no trainable parameters to track.")
        self._owners = owners

    def compute(self) -> torch.Tensor:
        """Norms per layer as one tensor on the model's device; no host synchronisation."""
        present = [i for i, p in enumerate(self.params) if p.grad is not None]
        grads = [self.params[i].grad for i in present]
        device = self.params[0].device
        if not grads:
            return torch.zeros(len(self.names), device=device)
        squares = torch.stack(torch._foreach_norm(grads)).float() ** 2  # type: ignore[arg-type]
        index = torch.tensor([self._owners[i] for i in present], device=device)
        sums = torch.zeros(len(self.names), device=device).index_add_(0, index, squares)
        return sums.sqrt()

    def histograms(self, bins: int = HISTOGRAM_BINS) -> dict[str, wandb.Histogram]:
        """`gradients/<parameter>` histograms of the gradients, drawn as `wandb.watch` draws
        them (over min..max, non-finite values left out, one bin for a constant tensor)."""
        named = [(n, p.grad.detach().flatten().float())
                 for n, p in zip(self.param_names, self.params, strict=True)
                 if p.grad is not None]  # fmt: skip
        if not named:
            return {}
        # Every range in one transfer; the counts in a second.
        ranges = torch.stack([torch.stack(torch.aminmax(g)) for _, g in named]).tolist()
        spans = [(name, *span) for (name, grad), (low, high) in zip(named, ranges, strict=True)
                 if (span := _finite_span(grad, low, high))]  # fmt: skip
        if not spans:
            return {}
        counts = torch.stack([g.histc(bins, lo, hi) for _, g, lo, hi in spans]).tolist()
        result = {}
        for (name, grad, low, high), count in zip(spans, counts, strict=True):
            if low == high:
                histogram = (numpy.array([float(grad.numel())]), numpy.array([low, high]))
            else:
                histogram = (numpy.array(count), numpy.linspace(low, high, bins + 1))
            result[f"gradients/{name}"] = wandb.Histogram(np_histogram=histogram)
        return result


def _finite_span(
    grad: torch.Tensor, low: float, high: float
) -> tuple[torch.Tensor, float, float] | None:
    """The gradient without inf and nan, and its range; None when nothing finite is left."""
    if math.isfinite(low) and math.isfinite(high):
        return grad, low, high
    finite = grad[grad.isfinite()]
    if not finite.numel():
        return None
    low, high = torch.stack(torch.aminmax(finite)).tolist()
    return finite, low, high


def gradient_health(ratio: float) -> str:
    """ "vanishing", "exploding" or "healthy" for a first-to-last layer gradient-norm ratio."""
    if ratio < VANISHING_RATIO:
        return "vanishing"
    if ratio > EXPLODING_RATIO:
        return "exploding"
    return "healthy"


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

    def step(self, step: int, **metrics: torch.Tensor | float) -> None:
        """Record one optimisation step; call after backward() while the gradients exist.

        Tensor metrics are averaged over the logging interval on their device; plain numbers
        (a learning rate) are logged as they are at the logging step.
        """
        for key, value in metrics.items():
            if not isinstance(value, int | float):
                # Kept, not added up: a list append costs less than a kernel call per step.
                self._values.setdefault(key, []).append(value.detach())
        self._count += 1
        if (step + 1) % self.log_every == 0:
            self._log(step, metrics)

    def _log(self, step: int, metrics: Mapping[str, torch.Tensor | float]) -> None:
        norms = self.norms.compute()
        means = [torch.stack(values).float().mean() for values in self._values.values()]
        # The one device-to-host transfer of the interval.
        parts = [torch.stack(means).to(norms.device)] if means else []
        values: list[float] = torch.cat([*parts, norms]).tolist()
        row: dict[str, Any] = dict(zip(self._values, values[: len(means)], strict=True))
        row |= {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        layer_norms = values[len(means) :]
        self.last_norms = dict(zip(self.norms.names, layer_norms, strict=True))
        row |= {f"grad_norm/{name}": norm for name, norm in self.last_norms.items()}
        ratio = layer_norms[0] / layer_norms[-1] if layer_norms[-1] > 0 else float("inf")
        row["grad_norm/first_to_last"] = ratio
        # When this logging interval crossed a multiple of watch_every, so any log_every works.
        if (step + 1) // self.watch_every > (step + 1 - self._count) // self.watch_every:
            row |= self.norms.histograms()
        self._call(self.run.log, row, step=step)
        self._values.clear()
        self._count = 0
        self._check(step, ratio)

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

    def _check(self, step: int, ratio: float) -> None:
        # The summary is written when a flag flips and at the end: each write is a message.
        self.last_ratio = ratio
        health = gradient_health(ratio)
        if health == "healthy" or health in self.flags:
            return
        self.flags.add(health)
        self._call(self.run.summary.update, {f"gradients/{health}": True})
        first, last = self.norms.names[0], self.norms.names[-1]
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
        """Save the weights to models/<name>.pt and log them as a W&B model artifact."""
        name = name or str(self.run.name)
        path = self.models_dir / f"{name}.pt"
        atomic_save(model.state_dict(), path)
        artifact = wandb.Artifact(
            re.sub(r"[^\w.-]", "-", f"{name}-weights"), type="model",
            metadata={"file": path.name, "torch": torch.__version__},
        )  # fmt: skip
        artifact.add_file(str(path))
        self._call(self.run.log_artifact, artifact)
        self._call(self.run.summary.update, {"weights": str(path)})
        return path


def atomic_save(obj: object, path: Path) -> Path:
    """torch.save through a temporary file, so an interruption never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    torch.save(obj, partial)
    partial.replace(path)
    return path


@contextmanager
def track(
    experiment: str,
    config: Mapping[str, Any],
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

    An exception (or KeyboardInterrupt) marks the run failed with exit code 1; a loop that
    stops itself early (a signal) sets `tracker.exit_code` before leaving the block.
    """
    if not experiment.strip():
        raise TrackingError("The experiment name is empty: give the run a name.")
    if log_every < 1 or watch_every < 1:
        raise TrackingError("Logging intervals must be at least one step.")
    chosen_mode = resolve_mode(mode)
    folder = resolve_run_dir(run_dir)
    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", PROJECT),
        job_type=experiment,
        name=name or experiment,
        group=group,
        dir=folder,
        mode=chosen_mode,  # type: ignore[arg-type]
        config={**config, "provenance": provenance(device)},
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
        final: dict[str, Any] = {"gradients/health": ", ".join(sorted(tracker.flags)) or "healthy"}
        if tracker.last_ratio is not None:
            final["gradients/first_to_last"] = tracker.last_ratio
        run.summary.update(final)
        run.finish(exit_code=exit_code if tracker.exit_code is None else tracker.exit_code)
