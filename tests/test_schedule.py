"""The full gate's schedule: files longest first by the last run's times, cores shared out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sessions.tests import PARALLEL
from tests.conftest import without_coverage
from tests.support import schedule


@dataclass
class Item:
    nodeid: str


def ids(items: list[Item]) -> list[str]:
    return [item.nodeid for item in items]


COLLECTED = [Item("tests/test_a.py::one"), Item("tests/test_a.py::two"),
             Item("tests/test_b.py::one"), Item("tests/test_c.py::one"),
             Item("tests/test_c.py::two"), Item("tests/test_new.py::one")]  # fmt: skip


def test_files_go_longest_first_after_the_ones_never_timed() -> None:
    seconds = {"tests/test_a.py": 1.5, "tests/test_b.py": 90.0, "tests/test_c.py": 12.0}
    ordered = schedule.longest_first(COLLECTED, seconds)  # type: ignore[arg-type]
    assert ids(ordered) == [
        "tests/test_new.py::one",
        "tests/test_b.py::one",
        "tests/test_c.py::one",
        "tests/test_c.py::two",
        "tests/test_a.py::one",
        "tests/test_a.py::two",
    ]


def test_with_no_record_the_order_is_the_collection_order() -> None:
    assert ids(schedule.longest_first(COLLECTED, {})) == ids(COLLECTED)  # type: ignore[arg-type]


def test_a_run_of_fewer_tests_keeps_a_files_figure() -> None:
    record = {"tests/test_a.py": [60.0, 10, 50.0], "tests/test_b.py": [5.0, 2, 4.0]}
    new = schedule.updated(
        record,
        {"tests/test_a.py": 0.4, "tests/test_b.py": 7.0, "tests/test_c.py": 3.0},
        {"tests/test_a.py": 1, "tests/test_b.py": 2, "tests/test_c.py": 4},
        {"tests/test_a.py": 0.3, "tests/test_b.py": 9.0, "tests/test_c.py": 2.5},
    )
    assert new == {
        "tests/test_a.py": [60.0, 10, 50.0],  # one test of ten (-k): the figure stays
        "tests/test_b.py": [7.0, 2, 9.0],
        "tests/test_c.py": [3.0, 4, 2.5],
    }


@pytest.mark.parametrize(
    ("cores", "workers", "threads"), [(2, 2, 1), (16, 4, 4), (8, 3, 2), (2, 4, 1), (1, 0, 1)]
)
def test_each_worker_gets_its_share_of_the_cores(cores: int, workers: int, threads: int) -> None:
    assert schedule.threads_per_worker(cores, workers) == threads


def test_the_gate_keeps_the_collection_order() -> None:
    """Without this option xdist hands out the files with the most tests first."""
    assert {"--dist", "loadfile", "--no-loadscope-reorder"} <= set(PARALLEL)


PLANTED = {
    "test_quick.py": "def test_quick():\n    pass\n",
    "test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(1.5)\n",
    "test_threads.py": """
import os

import torch


def test_a_worker_has_its_share_of_the_cores():
    share = max(1, (os.cpu_count() or 1) // 2)
    assert os.environ["OMP_NUM_THREADS"] == str(share)
    assert torch.get_num_threads() == share
""",
}


def pytest_in(project: Path, *args: str) -> str:
    env = {k: v for k, v in without_coverage(os.environ).items()
           if k not in schedule.THREAD_VARIABLES}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--no-cov", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_a_run_records_its_times_and_the_next_run_starts_with_the_longest_file(
    project_copy: Path,
) -> None:
    tests = project_copy / "tests"
    for path in tests.glob("test_*.py"):
        path.unlink()
    for name, source in PLANTED.items():
        (tests / name).write_text(source, encoding="utf-8")
    assert pytest_in(project_copy, "--collect-only", "-q").splitlines()[:2] == [
        "tests/test_quick.py::test_quick", "tests/test_slow.py::test_slow"]  # fmt: skip

    assert "3 passed" in pytest_in(project_copy, "-n", "2", *PARALLEL[2:])  # threads shared
    record = json.loads(
        (project_copy / ".pytest_cache" / "v" / schedule.RECORD_KEY).read_text(encoding="utf-8")
    )
    assert record["tests/test_slow.py"][0] >= 1.5 > record["tests/test_quick.py"][0]
    assert record["tests/test_slow.py"][1] == 1  # one test
    assert record["tests/test_slow.py"][2] < 1.0  # CPU seconds: sleeping costs none
    assert pytest_in(project_copy, "--collect-only", "-q").splitlines()[0] == (
        "tests/test_slow.py::test_slow"
    )
