"""Stop a training loop cleanly on Ctrl-C or SIGTERM instead of dying mid-step.

Whoever stops a run (a terminal's Ctrl-C, `docker stop`, a cancelled CI job, nox passing the
signal on) sends SIGINT or SIGTERM, often more than once and to every process at once:

- During training (`stop_on_signals()`), the first signal only sets a flag; the loop checks it
  between steps (`should_stop()`), saves a checkpoint and closes its run. A second Ctrl-C aborts
  at once. A SIGTERM after the first signal changes nothing: it is how nox, GitHub Actions and
  Docker say "hurry" before they kill, and the stop under way is the fastest way out.
- Before training (`exit_on_signals()`), when nothing is open yet, a signal ends the process at
  once with one line, wherever it is (importing torch, say): no traceback.

Under `torch.distributed`, `should_stop()` makes every rank agree, so all of them stop after the
same step. The module imports nothing heavy: it is installed before torch is imported.
SIGTERM is handled where the platform has it; handlers are installed only in the main thread
(the only place Python allows them).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, NoReturn

# How often ranks compare their stop flags under torch.distributed: one all_reduce of one
# number per this many steps (gloo, 2 CPU ranks, a loaded 2-core machine: 0.6 ms each).
AGREE_EVERY = 10

NAMES: dict[int, str] = {signal.SIGINT: "Ctrl-C (SIGINT)"}
if hasattr(signal, "SIGTERM"):
    NAMES[signal.SIGTERM] = "SIGTERM"


def describe(signum: int) -> str:
    """A signal as a user would name it: "Ctrl-C (SIGINT)", "SIGTERM"."""
    try:
        return NAMES.get(signum) or signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopRequest:
    """Set by a signal handler; read by the training loop between steps."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """The shell convention for a process ended by a signal: 128 + its number."""
        return 128 + (self.signum or 0)

    @property
    def reason(self) -> str:
        return describe(self.signum) if self.signum is not None else "no signal"

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum  # the first signal names the stop and its exit code
        elif signum == signal.SIGINT:
            abort(signum)


def abort(signum: int) -> NoReturn:
    """A second Ctrl-C: leave now. The checkpoint is written whole or not at all and an offline
    run keeps what it wrote (`wandb sync` uploads it), so nothing is left half-done."""
    sys.stderr.write(f"\n{describe(signum)} again: stopped at once, the run was not closed.\n")
    exit_now(128 + signum)


def exit_now(code: int) -> NoReturn:
    """End the process without Python's teardown, which takes a second or more once torch is
    loaded. Only for a process whose work is saved and whose runs are closed."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def end_as(signum: int) -> NoReturn:
    """End as the signal itself would have ended the program, its work saved and its run closed:
    Ctrl-C as an interruption (KeyboardInterrupt: a script exits 130, a notebook shows an
    interrupted cell), SIGTERM by its default action (exit status 143)."""
    if signum == signal.SIGINT:
        previous = sys.excepthook

        def exit_130(kind: type[BaseException], value: BaseException, trace: Any) -> None:
            previous(kind, value, trace)
            if issubclass(kind, KeyboardInterrupt):
                # Python exits 130 itself only if no exit handler runs code first (torch's do).
                exit_now(128 + signum)

        sys.excepthook = exit_130  # a script's; a notebook shows the interrupted cell
        raise KeyboardInterrupt
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):
            stream.flush()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
    exit_now(128 + signum)  # where the default action does not end the process


def handled_signals() -> list[signal.Signals]:
    return [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])


@contextmanager
def _handling(handler: signal._HANDLER) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in handled_signals()}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Route SIGINT/SIGTERM to a StopRequest for the duration of the block."""
    stop = StopRequest()
    with _handling(stop):
        yield stop


@contextmanager
def exit_on_signals(
    saying: str = "before training started; nothing was saved",
) -> Iterator[None]:
    """While the block runs, SIGINT or SIGTERM ends the process at once with one line.

    For the time before a training loop takes the signals over, when nothing is open or half
    written: `Stopped by Ctrl-C (SIGINT) <saying>.` and exit code 128 + the signal's number.
    Exiting in the handler beats raising there: an exception raised midway through an import
    can leave Python's import locks or a half-made module behind (a hang or a confusing error
    later), and some libraries swallow it.
    """

    with _handling(exit_at_once(saying)):
        yield


def exit_at_once(
    saying: str = "before training started; nothing was saved",
) -> Callable[[int, FrameType | None], None]:
    """A signal handler that ends the process with `Stopped by <signal> <saying>.`"""

    def handler(signum: int, frame: FrameType | None) -> None:
        sys.stderr.write(f"Stopped by {describe(signum)} {saying}.\n")
        exit_now(128 + signum)

    return handler


def should_stop(stop: StopRequest, step: int, every: int = AGREE_EVERY) -> bool:
    """Whether the loop stops before `step`: call it between steps, on every rank.

    On one process it is `stop.requested`. Under torch.distributed a signal may reach one rank
    only (or each at a different step), so every `every` steps the ranks all_reduce their flags
    and all of them stop after the same step; in between it answers False on every rank.
    """
    distributed = sys.modules.get("torch.distributed")
    if distributed is None or not (distributed.is_available() and distributed.is_initialized()):
        return stop.requested
    if step % every:
        return False
    import torch  # noqa: PLC0415 - loaded already when torch.distributed is initialised

    # The signal's number travels, not just a flag, so every rank reports the same exit code.
    signum = torch.tensor([float(stop.signum or 0)])
    if distributed.get_backend() == "nccl":
        signum = signum.cuda()
    distributed.all_reduce(signum, op=distributed.ReduceOp.MAX)
    agreed = int(signum.item())
    if agreed:
        stop.signum = agreed
    return bool(agreed)
