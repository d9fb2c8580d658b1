"""The other systems' side of the platform rules, simulated on Linux (no Windows or macOS
machine runs here): their skips and their Popen options.

Every platform skip in the tests is `skip_on(system, ..., reason=...)`. On Linux,
TESTS_SKIP_AS=win32 (or darwin) applies that system's skips instead, so the tests the Windows
or macOS leg runs can be counted and timed here: `TESTS_SKIP_AS=win32 nox -s tests`. It only
ever adds skips: on Windows and macOS the variable is ignored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

SKIP_AS = "TESTS_SKIP_AS"


def skipping_as(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> str:
    """The system whose skips apply: this one; on Linux, the one TESTS_SKIP_AS names."""
    return environ.get(SKIP_AS, platform) if platform == "linux" else platform


SYSTEM = skipping_as()


def skip_on(*systems: str, reason: str) -> pytest.MarkDecorator:
    """Skip where `sys.platform` (or TESTS_SKIP_AS, on Linux) is one of `systems`."""
    return pytest.mark.skipif(SYSTEM in systems, reason=f"{reason} (on {', '.join(systems)})")


# Windows' Popen flag for a child in a process group of its own (absent from Linux's module).
CREATE_NEW_PROCESS_GROUP = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)


def own_process_group() -> dict[str, Any]:
    """Popen options for a child in a process group of its own: on POSIX a new session with
    Ctrl-C's default action (a test then signals the group as a terminal does); on Windows,
    which has neither sessions nor `preexec_fn`, a new process group."""
    if sys.platform == "win32":
        return {"creationflags": CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True, "preexec_fn": default_ctrl_c}


def default_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """Kill a child started with own_process_group() and all it started (on Windows, where
    a group cannot be signalled, the child itself)."""
    if sys.platform == "win32":
        proc.kill()
    else:
        os.killpg(proc.pid, signal.SIGKILL)
