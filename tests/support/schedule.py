"""How the full gate shares the cores, as a pytest plugin (conftest.py registers it).

Longest files first. pytest-xdist (`--dist loadfile`) gives each worker a whole file at a
time, in the order the files were collected (the gate passes `--no-loadscope-reorder`, or
xdist would put the files with the most tests first). A file that takes a minute, handed out
last, leaves the other workers idle for that minute. So files are collected longest first, by
how long each took in the last run on this machine (kept in pytest's cache, `.pytest_cache/`);
files never timed (a fresh clone, a new file) come before them in their usual order. The
record also keeps each file's CPU time (its process and the children it waited for), which
shows how many cores a file keeps busy: `.pytest_cache/v/gradient-lab/seconds-per-file`.

A share of the cores each. torch sizes its thread pool to every core, so two workers that
each run a model would fight over both. Each worker, and what its tests start, gets
cores // workers threads, unless OMP_NUM_THREADS says otherwise.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Iterator

import pytest

RECORD_KEY = "gradient-lab/seconds-per-file"  # {file: [seconds, tests, cpu seconds]}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def longest_first(items: list[pytest.Item], seconds: dict[str, float]) -> list[pytest.Item]:
    """Files never timed first, in collection order, then the rest by time, longest first;
    each file's tests stay together and in their order."""
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        first_seen.setdefault(file_of(item.nodeid), index)

    def key(item: pytest.Item) -> tuple[int, float, int]:
        path = file_of(item.nodeid)
        if path not in seconds:
            return (0, 0.0, first_seen[path])
        return (1, -seconds[path], first_seen[path])

    return sorted(items, key=key)


def updated(record: dict[str, list[float]], seconds: dict[str, float], tests: dict[str, int],
            cpu: dict[str, float]) -> dict[str, list[float]]:  # fmt: skip
    """The record with this run's figures; a run that ran fewer of a file's tests than the
    recorded one (`-k`, a marker, one test) leaves that file's figure as it was."""
    new = dict(record)
    for path, spent in seconds.items():
        if tests[path] >= (record.get(path) or [0.0, 0])[1]:
            new[path] = [round(spent, 2), tests[path], round(cpu.get(path, 0.0), 2)]
    return new


def cpu_seconds() -> float:
    """CPU time of this process and of the children it waited for (0 for those on Windows)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def threads_per_worker(cores: int, workers: int) -> int:
    return max(1, cores // max(1, workers))


class Schedule:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.tests: dict[str, set[str]] = defaultdict(set)
        self.cpu_mark = cpu_seconds()

    def pytest_configure(self, config: pytest.Config) -> None:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
        if workers < 2 or any(name in os.environ for name in THREAD_VARIABLES):
            return
        share = threads_per_worker(os.cpu_count() or 1, workers)
        for name in THREAD_VARIABLES:
            os.environ[name] = str(share)  # read by torch when imported, and by children
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(share)

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        cache = getattr(config, "cache", None)  # None under `-p no:cacheprovider`
        if cache is not None:
            record = cache.get(RECORD_KEY, {})
            items[:] = longest_first(items, {path: entry[0] for path, entry in record.items()})

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self) -> None:
        self.cpu_mark = cpu_seconds()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self) -> Iterator[pytest.TestReport]:
        """Each phase's CPU time, in the process that ran it; xdist sends it with the report."""
        report: pytest.TestReport = yield
        now = cpu_seconds()
        report.cpu_seconds = now - self.cpu_mark  # type: ignore[attr-defined]
        self.cpu_mark = now
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Every report reaches this process (with xdist, the controller gets the workers')."""
        path = file_of(report.nodeid)
        self.seconds[path] += report.duration
        self.cpu[path] += getattr(report, "cpu_seconds", 0.0)
        self.tests[path].add(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        cache = getattr(config, "cache", None)
        if hasattr(config, "workerinput") or cache is None or not self.seconds:
            return
        counts = {path: len(nodeids) for path, nodeids in self.tests.items()}
        record = updated(cache.get(RECORD_KEY, {}), self.seconds, counts, self.cpu)
        cache.set(RECORD_KEY, record)
