"""Put on PYTHONPATH, this makes nox take a stop in the order that loses the stopped command's
exit status: a signal reaches nox and its command together, the command handles it first and
exits, and nox's handler runs only after its Popen.wait has reaped the command. Which order a
real stop takes is the scheduler's choice; this forces the losing one (on POSIX, where Popen
reaps with waitpid). Only the nox process is affected: nox is loaded nowhere else."""

from __future__ import annotations

import os
import signal
import sys

_waitpid = os.waitpid


def waitpid(pid: int, options: int) -> tuple[int, int]:
    reaped, status = _waitpid(pid, options)
    if reaped and "nox" in sys.modules and os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        if code > 128:  # the command ended as a signal ended it: nox got the same signal
            signal.raise_signal(signal.Signals(code - 128))
    return reaped, status


os.waitpid = waitpid
