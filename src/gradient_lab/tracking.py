"""The front door: wrap a training loop in `track(...)` and tick `tracker.step(...)` once per step.

    with track("my-experiment", config, model) as tracker:
        start = tracker.restore(model=model, optimizer=optimizer)
        for step in tracker.steps(range(start, total)):
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            tracker.step(step, loss=loss, lr=lr)   # once per step, after the optimizer's
        tracker.save_checkpoint("models/my.ckpt", model=model, optimizer=optimizer)
        tracker.save_weights()

What it records: the config plus provenance (git commit and dirty flag, data version, device,
library versions); loss and other scalars averaged over each logging interval; per layer, the
gradient norm each optimizer applied (`grad_norm/<layer>`), the update ratio and non-finite
counts; gradient histograms (`gradients/<parameter>`, as `wandb.watch` draws them) every
`watch_every` steps; images; the weights, under models/ and as an artifact; and a verdict on
gradient health. Several models (`{"netG": netG, "netD": netD}`) put the model's name before
each layer's: `grad_norm/netD/main.2`.

Behind it: the gradient monitor (`gradients`, torch only: measures at each optimizer's step),
the interval accumulator (`intervals`, every rank), the health verdict (`health`), the W&B
sink (`sink`, rank 0 only), checkpoints (`checkpoints`) and stops (`interrupt`).
Cost: nothing leaves the device between logging steps; a logging step's numbers reach the
host in one transfer and W&B on a background thread.
"""

from __future__ import annotations

import math
import signal
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradient_lab import checkpoints, distributed
from gradient_lab.errors import TrackingError
from gradient_lab.files import atomic_save
from gradient_lab.gradients import GradientMonitor, Measured
from gradient_lab.health import Verdict
from gradient_lab.interrupt import StopRequest, describe, end_as, should_stop, stop_on_signals
from gradient_lab.intervals import Interval, check_replicas
from gradient_lab.layout import MODELS_DIR
from gradient_lab.provenance import provenance
from gradient_lab.sink import Sink, resolve_mode, resolve_run_dir, warn
from gradient_lab.values import config_dict, scalars

DEFAULT_LOG_EVERY = 10
OPEN: list[Tracker] = []  # the track() blocks open in this process (one, or none)
# Histograms cost far more than norms: every 100 steps keeps them near free.
DEFAULT_WATCH_EVERY = 100


class Tracker:
    """One tracked run. Made by `track()`; its methods are all a training loop needs.

    On every rank it measures and averages (the collectives of a distributed job); only rank
    0 has a `sink`, the W&B run, and writes files (`logs` says which).
    """

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        sink: Sink | None,
        *,
        name: str,
        models_dir: Path = MODELS_DIR,
        log_every: int = DEFAULT_LOG_EVERY,
        watch_every: int = DEFAULT_WATCH_EVERY,
        resume: Path | None = None,
        resume_command: str | None = None,
    ) -> None:
        self.models = dict(models)  # "" names the one model of `track(..., model)`
        self.sink = sink
        self.logs = sink is not None
        self.mode = sink.mode if sink else "disabled"
        self.name = name
        self.models_dir = models_dir
        self.log_every = log_every
        self.watch_every = watch_every
        self.resume = resume
        self.resume_command = resume_command
        self.monitor = GradientMonitor(self.models)
        self.interval = Interval()
        ddp = any(distributed.is_ddp(model) for model in self.models.values())
        self._replicated = self.interval.ranks > 1 and ddp
        self.verdicts = {key: Verdict() for key in self.models}
        self.last_norms: dict[str, float] = {}
        # The numbers of the last row `step()` logged (scalars, norms, ratios; no histograms)
        # and its step: what a script keeps of each logging step for its own files.
        self.last_row: dict[str, float] = {}
        self.last_row_step: int | None = None
        self.restored: dict[str, Any] = {}  # what `restore` loaded, plain values too
        self.checkpoint: Path | None = None  # the last one `save_checkpoint` wrote
        self.stop: StopRequest | None = None  # set by `steps()`
        self.stopped_at: int | None = None
        self._stop_handling = ExitStack()

    # --- The run's folders (rank 0) ------------------------------------------------------

    def _run(self) -> Sink:
        if self.sink is None:
            raise TrackingError(
                f"Rank {distributed.rank()} keeps no W&B run: rank 0 logs the job's run."
            )
        return self.sink

    @property
    def run_dir(self) -> Path:
        """The run's folder (`.../wandb/offline-run-...`); what `wandb sync` takes."""
        return self._run().run_dir

    @property
    def run_id(self) -> str:
        return self._run().run_id

    @property
    def run_dirs(self) -> list[Path]:
        """Every folder of this run, oldest first (a resumed offline run adds one)."""
        return self._run().run_dirs

    def sync_command(self) -> str:
        """The command that uploads this offline run (all of its folders)."""
        return self._run().sync_command()

    # --- The training loop ---------------------------------------------------------------

    def steps(self, steps: Iterable[int]) -> Iterator[int]:
        """The loop's steps, ending early and cleanly on Ctrl-C or SIGTERM.

        From this call to the end of the `track` block the first signal only asks the loop to
        stop; the loop ends after the step under way (under torchrun every rank after
        the same step), and the block's remaining lines run (save a checkpoint there). Then
        the run closes with `stopped_by` in its summary and exit code 128 + the signal's
        number, and the block ends as the signal would have ended the program (see `track`).
        A second Ctrl-C aborts at once.
        """
        if self.stop is None:  # from this call on, not from the first step
            self.stop = self._stop_handling.enter_context(stop_on_signals())
        return self._until_stopped(self.stop, steps)

    def _until_stopped(self, stop: StopRequest, steps: Iterable[int]) -> Iterator[int]:
        for step in steps:
            if should_stop(stop, step):
                self.stopped_at = step
                self.summary(stopped_by=stop.reason, stopped_at_step=step)
                return
            yield step

    def step(self, step: int, **metrics: Any) -> None:
        """The clock: call once per training step, after its optimizer steps.

        Gradients are measured when each optimizer steps (as it applies them) or, for a model
        updated by hand, here. Values: numbers, one-element tensors (averaged over the logging
        interval on their device; under DDP over the ranks too), numpy scalars, sequences of
        them (`key/group0`, ...) or dicts of them (`key/<name>`). Plain numbers (a learning
        rate) are logged as they are at the logging step.
        """
        self.monitor.tick()
        self.interval.add(step, metrics)
        if (step + 1) % self.log_every == 0:
            self._log(step)
        else:
            self.monitor.take_nothing()
        # What the next step measures: only a step that will be logged.
        upcoming, watch = step + 2, self.watch_every  # the next step's number + 1
        # Histograms when the next row's interval reaches a multiple of watch_every.
        crossed = upcoming // watch > (upcoming - self.interval.count - 1) // watch
        self.monitor.plan(measure=upcoming % self.log_every == 0, watch=crossed)

    def log(self, step: int, **metrics: Any) -> None:
        """Record these values at exactly this step (evaluation, epoch summaries), at any
        cadence, beside the interval averages of `step()`. Values as for `step()`; under DDP
        the calling rank's values are logged as given (no collective: call it on rank 0 alone
        if only rank 0 evaluates). Steps must not go back: W&B drops rows logged out of order.
        """
        last = self.interval.last_step
        if self.interval.ranks == 1 and self.interval.count and last is not None and last < step:
            self.flush()  # the training steps before this one keep their interval
        row: dict[str, Any] = {}
        tensors: dict[str, torch.Tensor] = {}
        for key, value in metrics.items():
            for name, scalar in scalars(key, value).items():
                if isinstance(scalar, torch.Tensor):
                    tensors[name] = scalar
                else:
                    row[name] = scalar
        by_device: dict[torch.device, list[str]] = {}
        for name, tensor in tensors.items():
            by_device.setdefault(tensor.device, []).append(name)
        for names in by_device.values():  # one transfer per device
            values = torch.stack([tensors[n].float() for n in names]).tolist()
            row |= dict(zip(names, values, strict=True))
        if self.sink:
            self.sink.log(row, step)

    def flush(self) -> None:
        """Log the last, partial logging interval (what `track` does when the block ends):
        nothing `step()` was given is dropped. Scalars only: the gradients may be gone."""
        if self.interval.count and self.interval.last_step is not None:
            self._log(self.interval.last_step, measure=False)

    def _log(self, step: int, *, measure: bool = True) -> None:
        """One row: the interval's scalars and, when `measure`, each model's gradients."""
        taken = {key: self.monitor.take(key) for key in self.models} if measure else {}
        measured = {key: m for key, m in taken.items() if m is not None}
        shared = [m.layers.norms for m in measured.values()]
        local = [m.updates.norms for m in measured.values() if m.updates is not None]
        row, norms, spreads, ratios = self.interval.collect(shared, self._replicated, local)
        if self._replicated and spreads:
            names = [
                f"{key}/{n}" if key else n for key, m in measured.items() for n in m.layers.names
            ]
            check_replicas(step, names, norms, spreads)
        self.last_norms = {}
        for key, one in measured.items():
            count = len(one.layers.names)
            ours, norms = norms[:count], norms[count:]
            if one.updates is not None:
                updates, ratios = ratios[: len(one.updates.names)], ratios[len(one.updates.names) :]
                row |= _keyed(
                    "update_ratio", key, dict(zip(one.updates.names, updates, strict=True))
                )
            row |= self._gradients(step, key, one, ours)
        self.last_row = {k: float(v) for k, v in row.items() if isinstance(v, int | float)}
        self.last_row_step = step
        if self.sink:
            self.sink.log(row, step)

    def _gradients(self, step: int, key: str, one: Measured, norms: list[float]) -> dict[str, Any]:
        """One model's part of a row, and its health check."""
        layer_norms = dict(zip(one.layers.names, norms, strict=True))
        self.last_norms |= _keyed("", key, layer_norms)
        row = _keyed("grad_norm", key, layer_norms)
        row |= _keyed("gradients", key, one.histograms)
        if not layer_norms:
            return row
        nonfinite: dict[str, int] = {}
        if not all(map(math.isfinite, norms)):  # rare: a second transfer, to count
            nonfinite = self.monitor.models[key].nonfinite(one.present, one.grads)
        row |= _keyed("nonfinite", key, {**nonfinite, "total": sum(nonfinite.values())})
        if nonfinite:
            self._nonfinite(step, key, nonfinite, one.layers.names)
        elif one.layers.ends:
            first, last = one.layers.ends
            ratio = norms[first] / norms[last] if norms[last] > 0 else float("inf")
            row |= _keyed("grad_norm", key, {"first_to_last": ratio})
            problem = self.verdicts[key].check(step, ratio)
            if problem:
                names = one.layers.names
                self._warn(
                    key,
                    problem,
                    step,
                    f"{problem} gradients at step {step}: layer "
                    f"{names[first]} gets {ratio:.1e} times the gradient norm of layer "
                    f"{names[last]}.",
                )
        return row

    def _nonfinite(self, step: int, key: str, counts: dict[str, int], layers: list[str]) -> None:
        """Name the layers with a non-finite gradient. When every layer has one at once, the
        first layer says nothing of where it began: say "every layer" instead."""
        everywhere = len(layers) > 1 and len(counts) == len(layers)
        cause = (
            " in every layer (a NaN loss, or clip_grad_norm_ spreading one layer's non-finite "
            "values to all through the total norm: clip_grad_norm_(..., "
            "error_if_nonfinite=True) stops there)"
            if everywhere
            else ""
        )
        if self.verdicts[key].check(step, math.nan, nonfinite=True):
            layers_said = ", ".join(
                f"layer {name} has {count} NaN or infinite values" for name, count in counts.items()
            )
            message = f"non-finite gradients at step {step}{cause}: {layers_said}."
            where = "every layer" if everywhere else next(iter(counts))
            self.summary(**_keyed("gradients", key, {"nonfinite/first_layer": where}))
            self._warn(key, "nonfinite", step, message)

    def _warn(self, key: str, problem: str, step: int, message: str) -> None:
        """The first time a problem shows: a warning, the summary's first step, online an alert."""
        if not self.sink:
            return
        said = f"{key}: {message}" if key else message
        warn(said)
        self.sink.summary(_keyed("gradients", key, {f"{problem}/first_step": step}))
        self.sink.alert(f"{problem.capitalize()} gradients", said)

    def log_image(
        self, key: str, image: Path | Any, caption: str | None = None, step: int | None = None
    ) -> None:
        """Log a picture: a file path or a matplotlib Figure (rendered without pyplot); at
        `step`, else with the next row."""
        if self.sink:
            self.sink.image(key, image, caption, step)

    def summary(self, **values: Any) -> None:
        if self.sink:
            self.sink.summary(values)

    # --- Weights and checkpoints ---------------------------------------------------------

    def save_weights(
        self, model: nn.Module | Mapping[str, nn.Module] | None = None, name: str | None = None
    ) -> Path:
        """Save the weights and log them as a W&B model artifact; the path, on every rank.

        One model: models/<name>.pt. Several (the tracked mapping when no model is given):
        models/<name>/<model>.pt, one file each, and the folder is returned. `name`: the
        run's name by default. State dicts carry the model's own names (no `module.` or
        `_orig_mod.`), so they load into the unwrapped model.
        """
        name = name or self.name
        chosen = model if model is not None else self.models
        if isinstance(chosen, Mapping) and list(chosen) == [""]:
            chosen = chosen[""]
        if isinstance(chosen, nn.Module):
            path = self.models_dir / f"{name}.pt"
            files = {path: chosen}
        else:
            path = self.models_dir / name
            files = {path / f"{key}.pt": one for key, one in chosen.items()}
        # Every rank reads the state dict: for FSDP that is a collective.
        states = {file: distributed.state_dict(one) for file, one in files.items()}
        if not self.sink:
            return path
        for file, state in states.items():
            atomic_save(state, file)
        if self.mode != "disabled":
            self.sink.weights(name, list(files))
            self.sink.summary({"weights": str(path)})
        return path

    def save_checkpoint(self, path: Path | str, **objects: Any) -> Path:
        """Save what resuming needs to `path`, whole or not at all: the state dict of each
        object given (model, optimizer, scheduler, GradScaler), any other value as it is
        (numbers, strings, lists, dicts), torch's random state, the next step and this
        run's id. `track(..., resume=path)` continues this run from it and
        `tracker.restore(...)` loads it back."""
        path = self.checkpoint = Path(path)
        if not self.sink:
            return path
        last = self.interval.last_step
        checkpoints.save(
            path, objects, run_id=self.run_id, next_step=0 if last is None else last + 1
        )
        self.summary(checkpoint=str(path))
        return path

    def restore(self, **objects: Any) -> int:
        """Load the checkpoint `track(..., resume=...)` was given into these objects (by the
        names they were saved under) and torch's random state; the step to continue from.
        Objects with `load_state_dict` are loaded in place; a plain value saved under a name
        (`save_checkpoint(..., lr=lr)`) comes back in `tracker.restored[name]` (give any
        placeholder: `restore(model=model, lr=None)`). Without a checkpoint to resume: 0, and
        nothing loaded."""
        if self.resume is None:
            return 0
        step, self.restored = checkpoints.restore(self.resume, objects)
        return step

    # --- The end -------------------------------------------------------------------------

    def close(self, exit_code: int) -> None:
        """Close the run: the queued calls, the health verdicts, the exit code."""
        self.monitor.close()
        stop = self.stop
        if stop is not None and stop.requested and exit_code == 0:
            self.summary(stopped_by=stop.reason)
            exit_code = stop.exit_code
        if not self.sink:
            return
        failed: TrackingError | None = None
        try:
            self.sink.close()  # waits for the queued W&B calls: a failed one fails the run
        except TrackingError as error:
            failed = error
        final: dict[str, Any] = {}
        for key, verdict in self.verdicts.items():
            final |= verdict.summary(f"gradients/{key}/" if key else "gradients/")
        run = self.sink.run
        run.summary.update(final)
        run.finish(exit_code=exit_code or (1 if failed else 0))
        if self.mode == "offline" and len(self.run_dirs) > 1:
            warn(
                f"this run's records are in {len(self.run_dirs)} folders (it was resumed); "
                f"upload them all with: {self.sync_command()}"
            )
        if (
            failed is not None and not exit_code
        ):  # after a failure in the block, that one is reported
            raise failed

    def stopped_line(self) -> str:
        """What a stop saved and how to go on, in one line."""
        assert self.stop is not None
        closed = (
            f", W&B run closed ({self.mode}: {self.run_dir})" if self.mode != "disabled" else ""
        )
        said = f"Stopped by {self.stop.reason} at step {self.stopped_at}: "
        if self.checkpoint is None:
            return f"{said}no checkpoint was saved{closed}."
        how = self.resume_command or f"open track() with resume={str(self.checkpoint)!r}"
        return f"{said}checkpoint saved to {self.checkpoint}{closed}. Resume: {how}"


def _keyed(kind: str, model: str, values: dict[str, Any]) -> dict[str, Any]:
    """`<kind>/<model>/<name>` keys (`<kind>/<name>` for the one model of a plain `track`)."""
    prefix = "/".join(part for part in (kind, model) if part)
    return {f"{prefix}/{name}" if prefix else name: value for name, value in values.items()}


@contextmanager
def track(
    experiment: str,
    config: Mapping[str, Any] | Any,
    model: nn.Module | Mapping[str, nn.Module],
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
    resume_command: str | None = None,
    exit_on_stop: bool = True,
) -> Iterator[Tracker]:
    """Open a W&B run around a training loop; close it cleanly however the loop ends.

    - `experiment`: the run's job type, and its name unless `name` is given.
    - `config`: a Mapping, an argparse.Namespace or a dataclass instance; provenance is added.
    - `model`: a module, or a mapping of names to modules for several in one run
      (`{"netG": netG, "netD": netD}`: keys `grad_norm/netD/<layer>`, one verdict each). A
      model may be wrapped (DDP, torch.compile): keys and weights use the names inside.
    - `device`: the device named in the provenance. `name`, `group`: the W&B run's.
    - `mode`: "online", "offline" or "disabled"; by default WANDB_MODE, else online with
      WANDB_API_KEY, else offline. `run_dir`: where `wandb/` goes (default: WANDB_DIR, else
      the working directory). `models_dir`: where `save_weights` writes (models/).
    - `log_every`: steps per logged row (interval averages); `watch_every`: steps between
      gradient histograms and update ratios.
    - `resume`: a checkpoint `tracker.save_checkpoint` wrote; the run it names continues
      (`resume_id`: continue a run by its id instead). `resume_command`: the command a stop
      message gives to resume.
    - `exit_on_stop`: after a loop `tracker.steps()` stopped, the block ends as the signal
      would have ended the program (Ctrl-C: KeyboardInterrupt, exit 130; SIGTERM: exit 143);
      False lets the script go on after the block (`tracker.stop` says why it stopped).

    When the block ends the last partial logging interval is logged. An exception marks the
    run failed with exit code 1, Ctrl-C (KeyboardInterrupt) with 130. One run at a time: a
    second `track()` inside the first is refused (track several models with a mapping).
    Under torchrun ranks other than 0 measure with the rest but open no run.
    """
    if not experiment.strip():
        raise TrackingError("The experiment name is empty: give the run a name.")
    if log_every < 1 or watch_every < 1:
        raise TrackingError("Logging intervals must be at least one step.")
    models = {"": model} if isinstance(model, nn.Module) else dict(model)
    named = all(isinstance(k, str) and k for k in models) or list(models) == [""]
    if not models or not named or not all(isinstance(m, nn.Module) for m in models.values()):
        raise TrackingError(
            "track() takes a model, or a mapping of names to models: "
            'track(experiment, config, {"netG": netG, "netD": netD}).'
        )
    settings = config_dict(config)
    chosen_mode = resolve_mode(mode)
    checkpoint = Path(resume) if resume is not None else None
    if checkpoint is not None:
        resume_id = str(checkpoints.read(checkpoint)[checkpoints.KEY]["run_id"])
    sink = None
    if distributed.rank() == 0:
        jobs = {"world_size": distributed.world_size(), "backend": distributed.backend()}
        sink = Sink.start(
            chosen_mode,
            resolve_run_dir(run_dir),
            job_type=experiment,
            name=name or experiment,
            group=group,
            config={**settings, "distributed": jobs, "provenance": provenance(device)},
            id=resume_id,
            resume="allow" if resume_id else None,
        )
    tracker = Tracker(
        models,
        sink,
        name=name or experiment,
        models_dir=models_dir,
        log_every=log_every,
        watch_every=watch_every,
        resume=checkpoint,
        resume_command=resume_command,
    )
    exit_code = 0
    OPEN.append(tracker)
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
            if (
                tracker.interval.ranks == 1
            ):  # no collective after a failure: other ranks may not come
                with suppress(Exception):
                    tracker.flush()
            raise
        finally:
            OPEN.remove(tracker)
            tracker.close(exit_code)
    stop = tracker.stop
    if stop is not None and stop.requested and stop.signum is not None:
        if tracker.logs:
            sys.stderr.write(tracker.stopped_line() + "\n")
        if exit_on_stop:
            end_as(stop.signum)
