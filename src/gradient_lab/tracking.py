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
import math
import os
import queue
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
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
from gradient_lab.gradients import LayerGradNorms, LayerNorms
from gradient_lab.health import gradient_health
from gradient_lab.interrupt import StopRequest, describe, should_stop, stop_on_signals
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
        resume: Path | None = None,
    ) -> None:
        """`background`: make W&B calls on a `BackgroundCalls` thread; `close()` ends it.
        `resume`: the checkpoint (`save_checkpoint`) this run continues from."""
        self.run = run
        self.mode = mode
        self.log_every = log_every
        self.watch_every = watch_every
        self.models_dir = models_dir
        self.norms = LayerGradNorms(model)
        self.resume = resume
        # Under DDP with more than one process: scalars are averaged over the ranks and a
        # layer whose gradient differs between ranks (one DDP does not synchronise) stops
        # the run. One all_gather per logging step carries both.
        self._ranks = distributed.world_size() if distributed.initialized() else 1
        self._replicated = self._ranks > 1 and distributed.is_ddp(model)
        self._background = BackgroundCalls() if background else None
        self._values: dict[str, list[torch.Tensor]] = {}
        self._numbers: dict[str, float] = {}
        self._count = 0
        self._last_step: int | None = None
        self._logged_step = -1  # W&B keeps a run's steps increasing
        self._dropped_warned = False
        self._snapshot: tuple[list[int], list[torch.Tensor]] | None = None
        self._updates: LayerNorms | None = None
        self.last_norms: dict[str, float] = {}
        self.last_ratio: float | None = None
        # The numbers of the last row `step()` logged (scalars, norms, ratios; no histograms)
        # and its step: what a script keeps of each logging step for its own files.
        self.last_row: dict[str, float] = {}
        self.last_row_step: int | None = None
        self.flags: set[str] = set()
        self.nonfinite_at: str | None = None  # "step S, layer L": the first non-finite gradient
        # A loop that stops itself (a signal) sets this; None means "as the block ended".
        self.exit_code: int | None = None
        self.stop: StopRequest | None = None  # set by `steps()`
        self._stop_handling = ExitStack()

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

    # --- The training loop ---------------------------------------------------------------

    def steps(self, steps: Iterable[int]) -> Iterator[int]:
        """The loop's steps, ending early and cleanly on Ctrl-C or SIGTERM.

        From the first step to the end of the `track` block the first signal only asks the
        loop to stop; the loop ends after the step under way (under torchrun every rank after
        the same step), and the block's remaining lines run (save a checkpoint there). Then
        the run closes with `stopped_by` in its summary and exit code 128 + the signal's
        number, and `track` ends the process with that code. A second Ctrl-C aborts at once.
        """
        if self.stop is None:
            self.stop = self._stop_handling.enter_context(stop_on_signals())
        for step in steps:
            if should_stop(self.stop, step):
                self.summary(stopped_by=self.stop.reason, stopped_at_step=step)
                return
            yield step

    def step(self, step: int, **metrics: Any) -> None:
        """Record one optimisation step; call after backward() while the gradients exist
        (with gradient accumulation: once per optimizer step; with a GradScaler: after
        `scaler.unscale_(optimizer)`; with clipping: after `clip_grad_norm_`, so the norms are
        the ones the optimizer applies).

        Values: numbers, one-element tensors (averaged over the logging interval on their
        device; under DDP, over the ranks too), numpy scalars, sequences of them (logged as
        `key/group0`, ...) or dicts of them (`key/<name>`). Plain numbers (a learning rate)
        are logged as they are at the logging step.
        """
        if self._snapshot is not None:  # the optimizer has stepped since the watch step
            self._updates = self.norms.update_ratios(self._snapshot)
            self._snapshot = None
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
        self._last_step = step
        if (step + 1) % self.log_every == 0:
            self._log(step)

    def log(self, step: int, **metrics: Any) -> None:
        """Record these values at exactly this step (evaluation, epoch summaries), at any
        cadence, beside the interval averages of `step()`. Values as for `step()`; under DDP
        the calling rank's values are logged as given (no collective: call it on rank 0 alone
        if only rank 0 evaluates). Steps must not go back: W&B drops rows logged out of order.
        """
        row: dict[str, Any] = {}
        tensors: dict[str, torch.Tensor] = {}
        for key, value in metrics.items():
            for name, scalar in scalars(key, value).items():
                if isinstance(scalar, torch.Tensor):
                    tensors[name] = scalar
                else:
                    row[name] = scalar
        if tensors:  # one transfer per device
            by_device: dict[torch.device, list[str]] = {}
            for name, tensor in tensors.items():
                by_device.setdefault(tensor.device, []).append(name)
            for names in by_device.values():
                values = torch.stack([tensors[n].float() for n in names]).tolist()
                row |= dict(zip(names, values, strict=True))
        self._emit(row, step)

    def _emit(self, row: dict[str, Any], step: int) -> None:
        if step < self._logged_step:
            if not self._dropped_warned:
                self._dropped_warned = True
                _warn(
                    f"Values for step {step} came after step {self._logged_step} was logged "
                    f"and were dropped ({', '.join(sorted(row))}): W&B keeps steps increasing, "
                    "so log each step's values before a later step's."
                )
            return
        self._logged_step = step
        self._call(self.run.log, row, step=step)

    def _log(self, step: int, *, measure: bool = True) -> None:
        """One row: the interval's scalars and, when `measure`, the gradients as they are now."""
        layers = self.norms.compute() if measure else self.norms.nothing()
        keys = list(self._values)
        scalars_, layer_norms, spreads, ratios = self._transfer(layers)
        row: dict[str, Any] = dict(zip(keys, scalars_, strict=True))
        row |= self._numbers
        if self._replicated:
            self._check_replicas(step, layers.names, layer_norms, spreads)
        if self._updates is not None:
            names = self._updates.names
            row |= {f"update_ratio/{k}": v for k, v in zip(names, ratios, strict=True)}
            self._updates = None
        # Only layers that have a gradient now: a frozen or unused layer is left out, not 0.
        self.last_norms = dict(zip(layers.names, layer_norms, strict=True))
        row |= {f"grad_norm/{name}": norm for name, norm in self.last_norms.items()}
        nonfinite: dict[str, int] = {}
        if not all(map(math.isfinite, layer_norms)):  # rare: a second transfer, to count
            nonfinite = self.norms.nonfinite()
            row |= {f"nonfinite/{name}": count for name, count in nonfinite.items()}
        if layer_norms:
            row["nonfinite/total"] = sum(nonfinite.values())
        ratio = None
        if layers.ends and not nonfinite:
            first, last = (layer_norms[i] for i in layers.ends)
            ratio = first / last if last > 0 else float("inf")
            row["grad_norm/first_to_last"] = ratio
        self.last_row = {k: float(v) for k, v in row.items() if isinstance(v, int | float)}
        self.last_row_step = step
        # When this logging interval crossed a multiple of watch_every, so any log_every works.
        crossed = (step + 1) // self.watch_every > (step + 1 - self._count) // self.watch_every
        if measure and crossed:
            if self.logs:
                row |= self.norms.histograms()
            self._snapshot = self.norms.snapshot()
        if self.logs:
            self._emit(row, step)
        self._values.clear()
        self._numbers = {}
        self._count = 0
        if nonfinite:
            self._nonfinite(step, nonfinite, layers.names)
        elif ratio is not None and layers.ends:
            first_name, last_name = (layers.names[i] for i in layers.ends)
            self._check(step, ratio, first_name, last_name)

    def _transfer(
        self, layers: LayerNorms
    ) -> tuple[list[float], list[float], list[float], list[float]]:
        """The interval's scalar means (over the ranks, too), the layer norms, how far each
        layer's norm differs between DDP's ranks, and the pending update ratios: on the host,
        in the one device-to-host transfer of the interval."""
        means = [torch.stack(values).float().mean() for values in self._values.values()]
        device = layers.norms.device
        local = torch.cat([*([torch.stack(means).to(device)] if means else []), layers.norms])
        parts = [local]
        if self._ranks > 1:
            gathered = distributed.gather_rows(local)
            parts = [gathered.mean(0)]
            if self._replicated:
                norms = gathered[:, len(means) :]
                parts.append(norms.amax(0) - norms.amin(0))
        if self._updates is not None:
            parts.append(self._updates.norms.to(device))
        values: list[float] = torch.cat(parts).tolist()
        n, m = len(means), len(layers.names)
        spreads = values[n + m : n + 2 * m] if self._replicated else []
        return values[:n], values[n : n + m], spreads, values[n + m + len(spreads) :]

    def _check_replicas(
        self, step: int, names: list[str], norms: list[float], spreads: list[float]
    ) -> None:
        """Stop when a layer's gradient differs between ranks: DDP did not synchronise it."""
        apart = [name for name, norm, spread in zip(names, norms, spreads, strict=True)
                 if spread > REPLICA_TOLERANCE * max(abs(norm), 1e-12)]  # fmt: skip
        if apart:
            raise TrackingError(
                f"Layer {', '.join(apart)} has a different gradient on each rank at step {step}: "
                "DistributedDataParallel does not synchronise it (it did not require a "
                "gradient when the model was wrapped), so the ranks' weights drift apart; wrap "
                "the model with every layer trainable and freeze after wrapping "
                "(DistributedDataParallel(model, find_unused_parameters=True)), or keep the "
                "layer trainable and hold it still with a learning rate of 0."
            )

    def _call(self, method: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """A W&B call: queued when the tracker has a background thread, else made now."""
        if self._background:
            self._background.put(partial(method, *args, **kwargs))
        else:
            method(*args, **kwargs)

    def flush(self) -> None:
        """Log the last, partial logging interval (what `track` does when the block ends):
        nothing `step()` was given is dropped."""
        if self._snapshot is not None and self._last_step is not None:
            self._updates = self.norms.update_ratios(self._snapshot)
            self._snapshot = None
        # Scalars and update ratios only: by now the gradients may be zeroed or gone.
        if self._last_step is not None and (self._count or self._updates is not None):
            self._count = max(self._count, 1)
            self._log(self._last_step, measure=False)

    def close(self) -> None:
        """Wait for the queued W&B calls and end the background thread; raise a failed one."""
        if self._background:
            self._background.close()
            self._background = None

    def _nonfinite(self, step: int, counts: dict[str, int], layers: list[str]) -> None:
        """Name the first step and layer with a non-finite gradient. When every layer has one
        at once, the first layer says nothing of where it began: say "every layer" instead."""
        everywhere = len(layers) > 1 and len(counts) == len(layers)
        where = "every layer" if everywhere else f"layer {next(iter(counts))}"
        if self.nonfinite_at is None:
            self.nonfinite_at = f"step {step}, {where}"
        cause = (
            " in every layer (a NaN loss, or clip_grad_norm_ spreading one layer's non-finite "
            "values to all through the total norm: clip_grad_norm_(..., "
            "error_if_nonfinite=True) stops there)"
            if everywhere
            else ""
        )
        self._flag(
            "nonfinite",
            f"non-finite gradients at step {step}{cause}: "
            + ", ".join(f"layer {name} has {count} NaN or infinite values"
                        for name, count in counts.items()) + ".",
            where=self.nonfinite_at,
        )  # fmt: skip

    def _check(self, step: int, ratio: float, first: str, last: str) -> None:
        self.last_ratio = ratio
        health = gradient_health(ratio)
        if health != "healthy":
            self._flag(
                health,
                f"{health} gradients at step {step}: layer {first} gets {ratio:.1e} times the "
                f"gradient norm of layer {last}.",
            )

    def _flag(self, health: str, message: str, where: str | bool = True) -> None:
        """The first time a health problem shows: the summary says where, a warning says it,
        and online an alert. (Each summary write is a message: written when a flag flips.)"""
        if health in self.flags or not self.logs:
            return
        self.flags.add(health)
        self._call(self.run.summary.update, {f"gradients/{health}": where})
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

    # --- Weights and checkpoints ---------------------------------------------------------

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

    def save_checkpoint(self, path: Path | str, **objects: Any) -> Path:
        """Save what resuming needs to `path`, whole or not at all: the state dict of each
        object given (model, optimizer, scheduler, GradScaler; other values as they are),
        torch's random state, the next step and this run's id. `track(..., resume=path)`
        continues this run from it and `tracker.restore(...)` loads it back."""
        path = Path(path)
        if not self.logs:
            return path
        state = {name: _state_of(value) for name, value in objects.items()}
        next_step = 0 if self._last_step is None else self._last_step + 1
        state[CHECKPOINT_KEY] = {"run_id": self.run_id, "next_step": next_step,
                                 "rng": torch.get_rng_state()}  # fmt: skip
        atomic_save(state, path)
        self.summary(checkpoint=str(path))
        return path

    def restore(self, **objects: Any) -> int:
        """Load the checkpoint `track(..., resume=...)` was given into these objects (by the
        names they were saved under) and torch's random state; the step to continue from.
        Without a checkpoint to resume: 0, nothing loaded."""
        if self.resume is None:
            return 0
        state = read_checkpoint(self.resume)
        missing = sorted(set(objects) - set(state))
        if missing:
            raise TrackingError(
                f"The checkpoint {self.resume} holds no {', '.join(missing)}: restore the "
                "names it was saved with ("
                + ", ".join(sorted(set(state) - {CHECKPOINT_KEY}))
                + ")."
            )
        for name, target in objects.items():
            inner = distributed.unwrap(target) if isinstance(target, nn.Module) else target
            inner.load_state_dict(state[name])
        ours = state[CHECKPOINT_KEY]
        torch.set_rng_state(ours["rng"])
        return int(ours["next_step"])


CHECKPOINT_KEY = "gradient_lab"
# Relative difference between ranks' gradient norms of one layer beyond which DDP did not
# synchronise it (synchronised gradients are the same on every rank, bit for bit).
REPLICA_TOLERANCE = 1e-5


def _state_of(value: Any) -> Any:
    if isinstance(value, nn.Module):
        return distributed.state_dict(value)
    return value.state_dict() if hasattr(value, "state_dict") else value


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint `save_checkpoint` wrote; a missing or foreign file is one sentence."""
    if not path.is_file():
        raise TrackingError(f"Nothing to resume: there is no checkpoint at {path}.")
    try:
        state: dict[str, Any] = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:
        raise TrackingError(f"The checkpoint {path} cannot be read ({error}).") from error
    if not isinstance(state, dict) or CHECKPOINT_KEY not in state:
        raise TrackingError(
            f"{path} was not written by tracker.save_checkpoint: it names no run to resume."
        )
    return state


class IdleTracker(Tracker):
    """What the ranks of a distributed job other than 0 get: nothing reaches W&B.

    Under an initialised process group it still measures at each logging step, because the
    mean over ranks and the DDP check are collectives every rank joins; `steps()` and
    `restore()` work as on rank 0. `save_weights` still reads the model's state dict (for
    FSDP that is a collective every rank must join) and returns the path rank 0 writes.
    """

    logs = False

    def __init__(  # no run
        self, rank: int, model: nn.Module, log_every: int, models_dir: Path, *,
        watch_every: int = DEFAULT_WATCH_EVERY, resume: Path | None = None,
    ) -> None:  # fmt: skip
        super().__init__(None, model, "disabled", log_every, models_dir,
                         watch_every=watch_every, resume=resume)  # fmt: skip
        self.rank = rank

    @property
    def run_dir(self) -> Path:
        raise TrackingError(f"Rank {self.rank} keeps no W&B run: rank 0 logs the job's run.")

    @property
    def run_id(self) -> str:
        raise TrackingError(f"Rank {self.rank} keeps no W&B run: rank 0 logs the job's run.")

    def step(self, step: int, **metrics: Any) -> None:
        if self._ranks > 1:  # collectives at the logging steps
            super().step(step, **metrics)

    def log(self, step: int, **metrics: Any) -> None:
        pass

    def flush(self) -> None:
        if self._ranks > 1:
            super().flush()

    def log_image(self, key: str, image: Path | Any, caption: str | None = None) -> None:
        pass

    def summary(self, **values: Any) -> None:
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
    resume: Path | str | None = None,
    resume_id: str | None = None,
) -> Iterator[Tracker]:
    """Open a W&B run around a training loop; close it cleanly however the loop ends.

    `config`: a Mapping, an argparse.Namespace or a dataclass instance. `model` may be
    wrapped (DDP, torch.compile): keys and weights use the names of the model inside.
    `resume`: a checkpoint `tracker.save_checkpoint` wrote (None or a missing file with
    `resume` unset: a new run); the run it names continues (`resume_id`: by id).
    When the block ends the last partial logging interval is logged. An exception marks
    the run failed with exit code 1, Ctrl-C (KeyboardInterrupt) with 130; a loop stopped by
    `tracker.steps()` closes the run with the signal's code and then exits with it.
    Under torchrun, ranks other than 0 get an `IdleTracker` and open no run.
    """
    if not experiment.strip():
        raise TrackingError("The experiment name is empty: give the run a name.")
    if log_every < 1 or watch_every < 1:
        raise TrackingError("Logging intervals must be at least one step.")
    settings = config_dict(config)
    chosen_mode = resolve_mode(mode)
    checkpoint = Path(resume) if resume is not None else None
    if checkpoint is not None:
        resume_id = str(read_checkpoint(checkpoint)[CHECKPOINT_KEY]["run_id"])
    rank = distributed.rank()
    if rank != 0:
        idle = IdleTracker(rank, model, log_every, models_dir, watch_every=watch_every,
                           resume=checkpoint)  # fmt: skip
        with idle._stop_handling:
            yield idle
            idle.flush()
        _exit_if_stopped(idle)
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
    tracker = Tracker(run, model, chosen_mode, log_every, models_dir, watch_every=watch_every,
                      background=True, resume=checkpoint)  # fmt: skip
    exit_code = 0
    try:
        with tracker._stop_handling:  # signals stay with the stop from `steps()` to the close
            try:
                yield tracker
                tracker.flush()
            except KeyboardInterrupt:
                exit_code = 128 + signal.SIGINT
                tracker.summary(stopped_by=describe(signal.SIGINT))
                raise
            except BaseException:
                exit_code = 1
                if tracker._ranks == 1:  # no collective after a failure: other ranks may not come
                    with suppress(Exception):
                        tracker.flush()
                raise
            finally:
                _finish(tracker, run, exit_code)
    finally:
        tracker.close()
    _exit_if_stopped(tracker)


def _finish(tracker: Tracker, run: Any, exit_code: int) -> None:
    """Close the run: the queued calls, the health summary, the exit code."""
    stop = tracker.stop
    if stop is not None and stop.requested and tracker.exit_code is None:
        tracker.exit_code = stop.exit_code
        if exit_code == 0:
            tracker.summary(stopped_by=stop.reason)
    failed: TrackingError | None = None
    try:
        tracker.close()  # waits for the queued W&B calls: a failed one fails the run
    except TrackingError as error:
        failed = error
    # "unchecked" when no logging step compared two layers (a run shorter than log_every,
    # a model of one layer): never a "healthy" that no check found.
    health = ", ".join(sorted(tracker.flags)) or (
        "healthy" if tracker.last_ratio is not None else "unchecked"
    )
    final: dict[str, Any] = {"gradients/health": health}
    if tracker.last_ratio is not None:
        final["gradients/first_to_last"] = tracker.last_ratio
    run.summary.update(final)
    code = exit_code or (1 if failed else 0)
    run.finish(exit_code=code if tracker.exit_code is None else tracker.exit_code)
    if tracker.mode == "offline" and len(tracker.run_dirs) > 1:
        _warn(f"this run's records are in {len(tracker.run_dirs)} folders (it was resumed); "
              f"upload them all with: {tracker.sync_command()}")  # fmt: skip
    if failed is not None and not exit_code:  # after a failure in the block, that one is reported
        raise failed


def _exit_if_stopped(tracker: Tracker) -> None:
    """After a loop `tracker.steps()` stopped: one line, then exit with the signal's code."""
    stop = tracker.stop
    if stop is None or not stop.requested:
        return
    if tracker.logs:
        where = f" ({tracker.mode}: {tracker.run_dir})" if tracker.mode != "disabled" else ""
        sys.stderr.write(
            f"Stopped by {stop.reason} after step {tracker._last_step}: the W&B run is closed "
            f"with exit code {stop.exit_code}{where}.\n"
        )
    raise SystemExit(stop.exit_code)
