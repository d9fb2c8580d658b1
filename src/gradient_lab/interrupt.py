"""Stop a training loop cleanly on Ctrl-C or SIGTERM instead of dying mid-step.

The first signal only sets a flag; the loop checks it between steps, saves a checkpoint and
closes its run. A second Ctrl-C interrupts at once. SIGTERM is handled where the platform has
it; handlers are installed only in the main thread (the only place Python allows them).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


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

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum


def handled_signals() -> list[signal.Signals]:
    return [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Route SIGINT/SIGTERM to a StopRequest for the duration of the block."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop) for sig in handled_signals()}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
