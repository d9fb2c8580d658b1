"""Where a process tree's CPU time goes, by kind of process: Linux's /proc, sampled.

`ProcessKinds` samples this process's descendants five times a second in a thread and keeps
each one's own user + system time (not its children's) under a label read from its command
line: `python -m dvc`, `python train_cnn.py`, `wandb-core`, ... A process that starts and
ends between two samples is missed, so the figures are a floor; they show where a gate's
CPU-seconds go, not its total (tests_session.py measures that).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
TOOLS_WITH_VERBS = ("dvc", "wandb", "git", "nox")


def label(command: list[str]) -> str:
    """A short name for a command line: the module or script a Python runs, else the program."""
    program = Path(command[0]).name
    if not program.startswith("python"):
        verb = command[1] if program in TOOLS_WITH_VERBS and len(command) > 1 else ""
        return f"{program} {verb}".strip()
    args = command[1:]
    while args and args[0].startswith("-") and args[0] not in ("-m", "-c"):
        args = args[1:]
    if len(args) > 1 and args[0] == "-m":
        return f"python -m {args[1]}"
    if len(args) > 1 and args[0] == "-c":
        return "python -c " + " ".join(args[1].split())[:40]
    if args:
        script = Path(args[0]).name
        verb = args[1] if script in TOOLS_WITH_VERBS and len(args) > 1 else ""
        return f"python {script} {verb}".strip()
    return "python"


def read_stat(pid: str) -> tuple[int, str, float] | None:
    """(parent pid, start time, own CPU-seconds) of a process, or None once it is gone."""
    try:
        fields = (PROC / pid / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[19], (int(fields[11]) + int(fields[12])) / TICKS


def read_command(pid: str) -> list[str]:
    try:
        raw = (PROC / pid / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class ProcessKinds:
    """Samples the descendants of this process while in a `with` block."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.every_s = every_s
        self.seen: dict[tuple[int, str], list[str | float]] = {}  # (pid, start): [label, cpu]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample_until_stopped, daemon=True)

    def __enter__(self) -> ProcessKinds:
        if PROC.is_dir():
            self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def sample_until_stopped(self) -> None:
        me = os.getpid()
        while not self.stop.wait(self.every_s):
            stats = {entry.name: stat for entry in PROC.iterdir()
                     if entry.name.isdigit() and (stat := read_stat(entry.name))}  # fmt: skip
            for pid, (parent, start, cpu) in stats.items():
                ancestor, hops = parent, 0
                while ancestor not in (me, 0, 1) and hops < 64:
                    ancestor, hops = stats.get(str(ancestor), (0, "", 0.0))[0], hops + 1
                if ancestor != me:
                    continue
                entry = self.seen.get((int(pid), start))
                if entry is None:
                    command = read_command(pid)
                    if command:
                        self.seen[int(pid), start] = [label(command), cpu]
                else:
                    entry[1] = cpu

    def by_kind(self) -> list[tuple[str, float, int]]:
        """(label, CPU-seconds, processes), most CPU first."""
        cpu: Counter[str] = Counter()
        count: Counter[str] = Counter()
        for name, seconds in self.seen.values():
            cpu[str(name)] += float(seconds)
            count[str(name)] += 1
        return [(name, seconds, count[name]) for name, seconds in cpu.most_common()]
