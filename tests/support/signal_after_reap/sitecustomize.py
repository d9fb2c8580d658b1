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
    # The command ended as Ctrl-C ends it (the test's signal): nox got the same one. Other codes
    # are left alone (without uv on PATH, nox's `uv --version` probe ends with 255).
    ctrl_c = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 128 + signal.SIGINT
    if reaped and "nox" in sys.modules and ctrl_c:
        signal.raise_signal(signal.SIGINT)
    return reaped, status


os.waitpid = waitpid
