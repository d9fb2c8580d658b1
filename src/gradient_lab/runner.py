"""`gradient-lab run SCRIPT [ARGS...]`: track a training script that was never edited for it.

The script runs as `python SCRIPT ARGS` would run it (`-m MODULE` as `python -m MODULE`): the
same `sys.argv`, `__main__`, working directory, output and exit code. Around it one W&B run
(`track()`'s defaults: offline unless configured, ./wandb/, provenance) records:

- the values of every `argparse` parse and the command line, as the config;
- `loss`: each `backward()` of a one-element tensor, averaged per logging interval on its device
  (with a closure optimizer such as LBFGS, the first value of each optimizer step);
- the gradients of every model an optimizer steps, measured in that optimizer's step (the
  library's monitor), or after each `backward()` when no optimizer exists (a hand-written update);
- matplotlib figures the script shows or saves, as images (no window opens);
- files written with `torch.save`, in the summary and as an artifact at the end.

The clock is the first optimizer to step: each of its steps is a training step (with no
optimizer, each `backward()`). The run opens at the first `backward()`, with the models found
then; a script that opens `track()` itself is tracked its own way and this layer stays out.
Ctrl-C or SIGTERM closes the run with the signal's exit code (130, 143).
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import runpy
import shlex
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from PIL import Image
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook as post_hook
from torch.optim.optimizer import register_optimizer_step_pre_hook as pre_hook

from gradient_lab import tracking
from gradient_lab.interrupt import StopRequest, describe, exit_at_once, handled_signals
from gradient_lab.tracking import Tracker, track

SIGTERM = getattr(signal, "SIGTERM", 15)


class Terminated(BaseException):
    """SIGTERM, raised in the script so that its run closes (Python's default would kill it)."""


class Recorder:
    """What the script does, turned into one tracked run."""

    def __init__(self, experiment: str, command: list[str], options: dict[str, Any]) -> None:
        self.experiment = experiment
        self.config: dict[str, Any] = {"command": shlex.join(command)}
        self.options = options  # track()'s keyword arguments
        self.tracker: Tracker | None = None
        self.passive = False  # the script tracks itself
        self.stack = ExitStack()
        # The clock. A step is one pass over the optimizers: those that stepped before the
        # first one stepped again, in that order. An event belongs to the step that the
        # optimizer steps done so far say; a step is logged once its last optimizer stepped.
        self.order: list[int] = []  # the optimizers of the first step
        self.per_step = 0  # how many optimizer steps one training step takes (0: not known yet)
        self.done = 0  # optimizer steps done
        self.ticked = 0  # training steps logged
        self.by_backward = False  # no optimizer: each backward() is a step
        self.losses: dict[int, list[torch.Tensor]] = {}  # by optimizer steps done before
        self.closure_step = False  # inside an optimizer step that evaluates a closure
        self.closure_taken = False  # ... whose first loss is taken
        self.images: list[tuple[str, Any]] = []  # drawn before the run opened
        self.saved: dict[Path, None] = {}  # files torch.save wrote, in order

    # --- What the script calls -----------------------------------------------------------

    def parsed(self, namespace: argparse.Namespace) -> None:
        values = {k: v for k, v in vars(namespace).items() if not k.startswith("_")}
        self.config |= values
        if self.tracker is not None and self.tracker.sink:
            self.tracker.sink.config(values)

    def backward(self, loss: torch.Tensor) -> None:
        """After a `backward()`: the loss, and the run opened with the models found now."""
        if self.passive or loss.numel() != 1:
            return
        if self.tracker is None and not self.start():
            return
        self.catch_up()
        if not (self.closure_step and self.closure_taken):
            done = self.ticked if self.by_backward else self.done
            self.losses.setdefault(done, []).append(loss.detach().reshape(()))
            self.closure_taken = self.closure_step
        if self.by_backward:
            self.tick()

    def optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Before an optimizer steps (the monitor measures after this): the steps before."""
        self.closure_step = bool(args[1:] or kwargs.get("closure"))
        self.closure_taken = False
        if not self.per_step:
            if id(optimizer) in self.order:  # the first step is over
                self.per_step = len(self.order)
            else:
                self.order.append(id(optimizer))
        self.catch_up()

    def optimizer_stepped(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """After an optimizer stepped (and after the monitor took its numbers: this hook is
        registered after the monitor's): a training step whose optimizers all stepped is logged
        now, while the script's process group, if any, still exists."""
        self.closure_step = False
        self.done += 1
        self.catch_up()

    def catch_up(self) -> None:
        """Log the training steps whose optimizers have all stepped."""
        if self.tracker is None or self.by_backward or not self.per_step:
            return
        while self.ticked < self.done // self.per_step:
            self.tick()

    def tick(self) -> None:
        assert self.tracker is not None
        per_step = 1 if self.by_backward else self.per_step
        done = range(self.ticked * per_step, (self.ticked + 1) * per_step)
        losses = [loss for key in done for loss in self.losses.pop(key, [])]
        metrics = {}
        if losses:
            metrics["loss"] = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
        self.tracker.step(self.ticked, **metrics)
        self.ticked += 1

    def figure(self, key: str, figure: Any) -> None:
        if self.passive:
            return
        if self.tracker is None:
            self.images.append((key, rendered(figure)))
        else:
            self.tracker.log_image(key, figure, step=self.ticked)  # the step under way

    def wrote(self, file: object) -> None:
        if not self.passive and isinstance(file, str | os.PathLike):
            self.saved[Path(file).resolve()] = None

    # --- The run -------------------------------------------------------------------------

    def start(self) -> bool:
        """Open the run around the models found now; False when the script tracks itself."""
        if tracking.OPEN:
            self.passive = True
            return False
        optimizers = live(torch.optim.Optimizer)
        if optimizers:
            stepped = {id(p) for o in optimizers for g in o.param_groups for p in g["params"]}
        else:
            self.by_backward = True
            modules = live(nn.Module)
            stepped = {id(p) for m in modules for p in m.parameters() if p.grad is not None}
        models = find_models(stepped)
        if not models:
            self.passive = True
            return False
        self.tracker = self.stack.enter_context(
            track(self.experiment, self.config, models, **self.options)
        )
        self.stack.callback(post_hook(self.optimizer_stepped).remove)
        for key, image in self.images:
            self.tracker.log_image(key, image)
        self.images.clear()
        return True

    def finish(self, error: BaseException | None) -> None:
        """The last step's values, the saved files, and the run closed as the script ended: a
        signal as a stop (the run's summary and exit code say which), an error as a failure."""
        tracker = self.tracker
        if tracker is None:
            return
        if not self.by_backward:
            self.per_step = self.per_step or len(self.order)
            self.catch_up()
            if self.losses:  # a last step its optimizers did not finish
                self.tick()
        if tracker.sink and tracker.mode != "disabled":
            files = [path for path in self.saved if path.is_file()]
            if files:
                tracker.sink.weights(tracker.name, files)
                tracker.summary(saved_files=[str(path) for path in files])
        signums: dict[type[BaseException], int] = {
            KeyboardInterrupt: signal.SIGINT,
            Terminated: SIGTERM,
        }
        signum = signums.get(type(error)) if error is not None else None
        if error is None or signum is not None or not exit_code(error):
            if signum is not None:
                tracker.stop = StopRequest()
                tracker.stop.signum = signum
                tracker.stopped_at = self.ticked
            self.stack.close()
            return
        try:
            self.stack.__exit__(type(error), error, error.__traceback__)
        except BaseException as again:
            if again is not error:
                raise


def rendered(figure: Any) -> Any:
    """A figure as a PIL image now (it may change or close before the run opens)."""
    png = io.BytesIO()
    figure.savefig(png, format="png")
    return Image.open(png)


def live(kind: type[Any]) -> list[Any]:
    """Every object of this type the program holds (a type check touches deprecated torch
    attributes, which warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [obj for obj in gc.get_objects() if isinstance(obj, kind)]


def find_models(params: set[int]) -> dict[str, nn.Module]:
    """The outermost modules that hold these parameters, named as the script calls them."""
    holders = [m for m in live(nn.Module) if has_any(m, params)]
    inner = {id(sub) for m in holders for sub in m.modules() if sub is not m}
    roots = [m for m in holders if id(m) not in inner]
    if len(roots) == 1:
        return {"": roots[0]}
    names: dict[str, nn.Module] = {}
    for model in roots:
        name = script_name(model) or type(model).__name__
        while name in names:
            name += "_"
        names[name] = model
    return names


def has_any(module: nn.Module, params: set[int]) -> bool:
    return any(id(p) in params for p in module.parameters())


def script_name(model: nn.Module) -> str | None:
    """The name the script binds the model to, in the frames that run it."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if (
            "gradient_lab" not in frame.f_code.co_filename
            and "torch" not in frame.f_code.co_filename
        ):
            for name, value in frame.f_locals.items():
                if value is model and name.isidentifier():
                    return name
        frame = frame.f_back
    return None


@contextmanager
def patched(
    owner: Any, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, wrap(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def recording(recorder: Recorder) -> Iterator[None]:
    """The places a script's work passes through, patched for the time it runs."""

    def parse_known_args(original: Callable[..., Any]) -> Callable[..., Any]:
        def parse(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
            namespace, extras = original(self, *args, **kwargs)
            recorder.parsed(namespace)
            return namespace, extras

        return parse

    def backward(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            result = original(self, *args, **kwargs)
            recorder.backward(self)
            return result

        return run

    def save(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(obj: object, f: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(obj, f, *args, **kwargs)
            recorder.wrote(f)
            return result

        return run

    with ExitStack() as stack:
        stack.enter_context(patched(argparse.ArgumentParser, "parse_known_args", parse_known_args))
        stack.enter_context(patched(torch.Tensor, "backward", backward))
        stack.enter_context(patched(torch, "save", save))
        stack.callback(pre_hook(recorder.optimizer_step).remove)
        stack.enter_context(figures(recorder))
        yield


@contextmanager
def figures(recorder: Recorder) -> Iterator[None]:
    """matplotlib without windows: a figure shown or saved becomes an image of the run."""
    try:
        import matplotlib  # noqa: PLC0415 - optional: a script without it draws nothing
    except ImportError:
        yield
        return
    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    def show(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> None:
            for number in pyplot.get_fignums():
                recorder.figure(f"figures/{number}", pyplot.figure(number))
                pyplot.close(number)  # as a window closed by its user

        return run

    def savefig(original: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Figure, fname: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, fname, *args, **kwargs)
            if isinstance(fname, str | os.PathLike):
                recorder.figure(f"figures/{Path(fname).stem}", self)
            return result

        return run

    with patched(pyplot, "show", show), patched(Figure, "savefig", savefig):
        yield


def exit_code(error: BaseException | None) -> int:
    """The exit status `python SCRIPT` would end with."""
    if error is None:
        return 0
    if isinstance(error, SystemExit):
        if error.code is None or isinstance(error.code, int):
            return error.code or 0
        print(error.code, file=sys.stderr)
        return 1
    if isinstance(error, KeyboardInterrupt):
        return 128 + signal.SIGINT
    if isinstance(error, Terminated):
        return 128 + SIGTERM
    return 1


def run(target: str, args: Sequence[str], *, module: bool = False, **options: Any) -> int:
    """Run the script (or module) as Python would, tracked; its exit status."""
    name = target.rpartition(".")[2] if module else Path(target).stem
    shown = ["-m", target] if module else [target]
    recorder = Recorder(options.pop("experiment", None) or name, [*shown, *args], options)
    sys.argv = [target if not module else sys.argv[0], *args]
    if not module:
        sys.path.insert(0, str(Path(target).resolve().parent))

    before_training = exit_at_once()

    def stopped(signum: int, frame: FrameType | None) -> None:
        """Before the run opens: at once, one line; then as an exception the run closes on."""
        if recorder.tracker is None and not recorder.passive:
            before_training(signum, frame)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(describe(signum))

    previous = {sig: signal.signal(sig, stopped) for sig in handled_signals()}
    error: BaseException | None = None
    try:
        with recording(recorder):
            try:
                if module:
                    runpy.run_module(target, run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(target, run_name="__main__")
            except BaseException as raised:
                error = raised
            recorder.finish(error)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if isinstance(error, KeyboardInterrupt):
        traceback.print_exception(error)  # as Python shows a Ctrl-C
    elif error is not None and not isinstance(error, SystemExit | Terminated):
        raise error
    return exit_code(error)
