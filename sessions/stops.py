"""How a session that runs a long command ends when it is stopped (Ctrl-C, `docker stop`, a
cancelled CI job): the command gets the time to stop and say what it stopped, and the session
then exits as the signal asks, 128 + its number (130 after Ctrl-C, 143 after SIGTERM), never as
a success. A second Ctrl-C leaves at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nox

# After a signal, how long nox waits for the command to stop before it sends SIGTERM, then
# how long before it kills it. A terminal, CI and Docker (with an init that signals the process
# group) reach the command directly, so the first wait only matters where nox alone got the
# signal (`docker stop` on an image whose PID 1 is nox): nox passes SIGTERM on after it. The
# training treats that second signal as "hurry" and keeps stopping; a stop takes under 2 s,
# and the sum stays below Docker's 10 s grace and the 10 s a cancelled GitHub job gets.
INTERRUPT_TIMEOUT = 1.0
TERMINATE_TIMEOUT = 8.0


@contextmanager
def signals_stop_nox() -> Iterator[list[int]]:
    """While the block runs, SIGINT and SIGTERM interrupt nox the way Ctrl-C does.

    nox then waits for the running command and escalates (INTERRUPT_TIMEOUT...). Without this a
    SIGTERM kills nox outright (or is ignored when nox is PID 1 in a container), leaving the
    command without a parent. A second SIGTERM is ignored (the stop is under way); a second
    Ctrl-C interrupts the wait, so nox leaves at once. Yields the signals received, in order.
    """
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1 or signum == signal.SIGINT:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    signals = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def stopped_by_signals() -> Iterator[list[int]]:
    """signals_stop_nox for a session's commands, and the session's exit when one came:
    128 + the first signal, not a failed session (nox re-raises the stop when the command it
    ran exited non-zero)."""
    with signals_stop_nox() as received:
        try:
            yield received
        except KeyboardInterrupt:
            raise SystemExit(128 + (received[0] if received else signal.SIGINT)) from None


def stop_if_signalled(received: list[int]) -> None:
    """After a command: a signal that came while it ran stops the session, whatever nox made of
    the command's exit. nox passes a stop on only when the command failed, and a command that a
    signal stopped can look successful: CPython's Popen.wait, when the signal's handler runs just
    after it reaped the child (the child, signalled too, was quicker), loses the exit status
    and reports 0."""
    if received:
        raise KeyboardInterrupt


def run_until_stopped(session: nox.Session, *args: str) -> None:
    """session.run(*args) for a session that is this one command: stopped as the module says."""
    with stopped_by_signals() as received:
        session.run(*args, interrupt_timeout=INTERRUPT_TIMEOUT, terminate_timeout=TERMINATE_TIMEOUT)
        stop_if_signalled(received)
