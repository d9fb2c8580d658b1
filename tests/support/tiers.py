"""The two test tiers and the hermetic check, as a pytest plugin (conftest.py registers it).

Fast tier: every test without a tier marker (`-m "not slow and not docker"`). It runs our own
logic inside this process: while such a test sets up or runs, starting a process (subprocess,
os.system, fork, posix_spawn, multiprocessing, Windows' CreateProcess) or opening a network or
local socket connection or a listening socket fails it, naming the marker it needs. Each
violation is recorded as well as raised, so a test, or a library it calls, that catches the
error still fails.

Slow tier: tests marked `slow` (a real external tool, a server, a training run, nested nox)
or `docker` (a Docker engine). They may do all of the above.

Hermetic check: the run fails when `git status --porcelain` or the ignored trees the
developer owns (GUARDED_TREES: data/, weights, runs, build outputs) differ after the run
from before it. Tests write into pytest's temporary folders and `reports/` only.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from sessions.tests import TIER_MARKERS

ROOT = Path(__file__).resolve().parents[2]

# Ignored by git, so `git status` does not see them, but the developer's own.
GUARDED_TREES = ("data", "models", "wandb", "build")
# What a test run may add to the checkout: the gate's reports and pytest/coverage bookkeeping.
ALLOWED_PREFIXES = ("reports/", ".coverage", ".pytest_cache/")


class NeedsMarker(RuntimeError):
    """An unmarked test left the process."""


class Guard:
    """Process-wide wrappers, installed once, that check whether an unmarked test is running."""

    def __init__(self) -> None:
        self.test: str | None = None  # node id of the unmarked test in setup or call
        # Threads that earlier (slow) tests left running are not this test's doing; threads
        # the test starts, and the main thread, are. Held as Thread objects, not idents: the
        # OS hands an ended thread's ident to the next thread started.
        self.earlier_threads: set[threading.Thread] = set()
        self.violations: dict[str, list[str]] = {}
        self.installed = False

    def start(self, nodeid: str | None) -> None:
        main = threading.main_thread()
        self.earlier_threads = {thread for thread in threading.enumerate() if thread is not main}
        self.test = nodeid

    def check(self, what: str) -> None:
        test = self.test
        if test is None or threading.current_thread() in self.earlier_threads:
            return
        message = (
            f"{test} {what}, but it has no tier marker: mark it @pytest.mark.slow (a real "
            "tool, a server, a training run, nested nox) or @pytest.mark.docker (a Docker "
            "engine), or keep it inside this process."
        )
        self.violations.setdefault(test, []).append(message)
        raise NeedsMarker(message)

    def wrap(self, owner: Any, name: str, describe: Callable[..., str]) -> None:
        original = getattr(owner, name, None)
        if original is None or getattr(original, "__tier_guard__", False):
            return

        @functools.wraps(original)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self.test is not None:
                self.check(describe(*args, **kwargs))
            return original(*args, **kwargs)

        guarded.__tier_guard__ = True  # type: ignore[attr-defined]
        setattr(owner, name, guarded)

    def install(self) -> None:
        if self.installed:
            return
        self.installed = True

        def popen(_self: Any, args: Any, *_: Any, **__: Any) -> str:
            shown = args if isinstance(args, str | bytes | os.PathLike) else list(args)[:4]
            return f"starts a child process {shown!r}"

        # Every subprocess.Popen (run, check_output, os.popen, asyncio) on every platform.
        self.wrap(subprocess.Popen, "_execute_child", popen)
        # Below subprocess: multiprocessing, os.spawn*, libraries that fork or exec themselves.
        names = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "startfile",
                 "execv", "execve")  # fmt: skip
        low_level = [(os, name) for name in names]
        for module_name, name in (("_posixsubprocess", "fork_exec"), ("_winapi", "CreateProcess")):
            with suppress(ImportError):
                low_level.append((__import__(module_name), name))
        for owner, name in low_level:
            label = f"{getattr(owner, '__name__', owner)}.{name}"
            self.wrap(owner, name, lambda *_, _label=label, **__: f"starts a process ({_label})")

        def connect(sock: socket.socket, address: Any, *_: Any, **__: Any) -> str:
            return f"connects a socket to {address!r} (a server, an engine or the network)"

        self.wrap(socket.socket, "listen", lambda *_, **__: "opens a listening socket (a server)")
        self.wrap(socket.socket, "connect", connect)
        self.wrap(socket.socket, "connect_ex", connect)


GUARD = Guard()


def is_fast(item: pytest.Item) -> bool:
    return not any(item.get_closest_marker(name) for name in TIER_MARKERS)


@contextmanager
def guarding(item: pytest.Item) -> Iterator[None]:
    GUARD.install()
    GUARD.start(item.nodeid if is_fast(item) else None)
    try:
        yield
    finally:
        GUARD.test = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with guarding(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with guarding(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """A violation fails the test even when the error it raised was caught."""
    report: pytest.TestReport = yield
    violations = GUARD.violations.get(item.nodeid)
    if violations and call.when in ("setup", "call") and not report.failed:
        report.outcome = "failed"
        report.longrepr = "\n".join(dict.fromkeys(violations))
    return report


# --- hermetic check -----------------------------------------------------------------------


def git_status(root: Path) -> list[str] | None:
    """`git status --porcelain` lines outside what a test run may write; None without git."""
    try:
        result = subprocess.run(
            ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all"],
            cwd=root, capture_output=True, text=True, check=False,
        )  # fmt: skip
    except OSError:
        return None
    if result.returncode != 0:
        return None
    entries = [entry for entry in result.stdout.split("\0") if entry]
    return [e for e in entries if not e[3:].startswith(ALLOWED_PREFIXES)]


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Path -> (size, mtime) of every file under GUARDED_TREES."""
    state: dict[str, tuple[int, int]] = {}
    for name in GUARDED_TREES:
        for folder, _, files in os.walk(root / name):
            for file in files:
                path = Path(folder, file)
                stat = path.lstat()
                state[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return state


def snapshot(root: Path) -> tuple[list[str] | None, dict[str, tuple[int, int]]]:
    return git_status(root), tree_state(root)


def changes(before: tuple[Any, Any], after: tuple[Any, Any]) -> list[str]:
    """What differs between two snapshots, one line per path."""
    lines = [f"git status: {e}" for e in sorted(set(after[0] or []) ^ set(before[0] or []))]
    old, new = before[1], after[1]
    for path in sorted(old.keys() | new.keys()):
        if path not in old:
            lines.append(f"created: {path}")
        elif path not in new:
            lines.append(f"deleted: {path}")
        elif old[path] != new[path]:
            lines.append(f"modified: {path}")
    return lines


HERMETIC = pytest.StashKey[tuple[Any, Any]]()
BROKEN = pytest.StashKey[list[str]]()


def is_controller(config: pytest.Config) -> bool:
    """The process that runs the session: not an xdist worker."""
    return not hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if is_controller(session.config):
        session.config.stash[HERMETIC] = snapshot(ROOT)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(HERMETIC, None)
    if before is None:
        return
    found = changes(before, snapshot(ROOT))
    if not found:
        return
    session.config.stash[BROKEN] = found
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    found = config.stash.get(BROKEN, None)
    if not found:
        return
    terminalreporter.section("hermetic check", sep="=", red=True, bold=True)
    terminalreporter.line(
        f"FAILED: the tests changed the checkout {ROOT} ({len(found)} path(s)); tests may "
        "write only into pytest's temporary folders (tmp_path) and reports/:",
        red=True,
    )
    for line in found[:20]:
        terminalreporter.line(f"  {line}")
    if len(found) > 20:
        terminalreporter.line(f"  ... and {len(found) - 20} more")
