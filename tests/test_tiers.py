"""The tiers and the hermetic check work: pytest runs planted tests in a copy of the project."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sessions.tests import FAST_TIER, TIER_MARKERS
from tests.conftest import without_coverage
from tests.support import tiers

GUARDED = """
import socket
import subprocess
import threading
import sys
import threading
import time

import pytest

STOP = threading.Event()


def test_pure_logic():
    assert sum(range(4)) == 6


def test_starts_a_process():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_swallows_the_error():
    try:
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    except Exception:
        pass


def test_opens_a_server():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()


@pytest.mark.slow
def test_marked_may_start_a_process():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.mark.slow
def test_marked_leaves_a_thread_that_keeps_starting_processes():
    def loop():
        while not STOP.is_set():
            subprocess.run([sys.executable, "-c", "pass"], check=True)

    threading.Thread(target=loop, daemon=True).start()


def test_pure_while_an_earlier_thread_starts_processes():
    time.sleep(1)
    STOP.set()


def test_starts_a_process_in_its_own_thread():
    worker = threading.Thread(target=subprocess.run, args=([sys.executable, "-c", "pass"],))
    worker.start()
    worker.join()
"""

WRITES_DATA = """
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_writes_into_data():
    (ROOT / "data").mkdir(exist_ok=True)
    (ROOT / "data" / "planted.bin").write_bytes(b"x")


def test_edits_a_tracked_file():
    with (ROOT / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("planted\\n")
"""

STAYS_IN_TMP = """
def test_writes_into_tmp_path(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fine.bin").write_bytes(b"x")
"""


def run_planted(
    project: Path, source: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    (project / "tests" / "test_planted.py").write_text(source, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--no-cov", "-rA",
         "tests/test_planted.py"],
        cwd=project, env=without_coverage(env), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def outcome(output: str, test: str) -> str:
    """PASSED or FAILED, from the short summary that `-rA` prints."""
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR") and rest.split(" - ")[0].endswith(f"::{test}"):
            return word
    raise AssertionError(f"{test} is not in the summary:\n{output}")


@pytest.mark.slow
def test_unmarked_tests_that_leave_the_process_fail_naming_the_marker(
    project_copy: Path, child_env: dict[str, str]
) -> None:
    result = run_planted(project_copy, GUARDED, child_env)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    for test in ("test_pure_logic", "test_marked_may_start_a_process",
                 "test_marked_leaves_a_thread_that_keeps_starting_processes",
                 "test_pure_while_an_earlier_thread_starts_processes"):  # fmt: skip
        assert outcome(output, test) == "PASSED", output
    for test in ("test_starts_a_process", "test_swallows_the_error", "test_opens_a_server",
                 "test_starts_a_process_in_its_own_thread"):  # fmt: skip
        assert outcome(output, test) == "FAILED", output
    assert "test_starts_a_process starts a child process" in output
    assert "test_opens_a_server opens a listening socket" in output
    assert "mark it @pytest.mark.slow" in output
    assert "hermetic check" not in output


@pytest.mark.slow
def test_a_test_that_writes_into_the_checkout_fails_the_run(
    project_copy: Path, child_env: dict[str, str]
) -> None:
    result = run_planted(project_copy, WRITES_DATA, child_env)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "2 passed" in output, "the tests pass; the run fails"
    assert "hermetic check" in output and "FAILED: the tests changed the checkout" in output
    assert "created: data/planted.bin" in output
    assert "git status:  M README.md" in output


@pytest.mark.slow
def test_a_test_that_writes_into_tmp_path_passes(
    project_copy: Path, child_env: dict[str, str]
) -> None:
    result = run_planted(project_copy, STAYS_IN_TMP, child_env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "hermetic check" not in output


def test_snapshot_differences_name_each_path() -> None:
    before = (["?? a.txt"], {"data/x": (1, 1), "data/y": (1, 1), "models/m.pt": (5, 1)})
    after = (["?? a.txt", " M README.md"], {"data/x": (2, 2), "models/m.pt": (5, 1),
                                            "wandb/run": (1, 1)})  # fmt: skip
    assert tiers.changes(before, after) == [
        "git status:  M README.md", "modified: data/x", "deleted: data/y", "created: wandb/run",
    ]  # fmt: skip
    assert tiers.changes(before, before) == []


def test_fast_tier_is_every_test_without_a_tier_marker(pytestconfig: pytest.Config) -> None:
    assert FAST_TIER == "not slow and not docker"
    declared = [line.split(":")[0] for line in pytestconfig.getini("markers")]
    assert set(TIER_MARKERS) <= set(declared), "each tier marker is declared in pyproject"


def test_a_thread_the_test_starts_is_its_own_even_with_an_ended_threads_ident() -> None:
    """Idents are reused: the thread a test starts often gets the ident of one that just ended.

    A thread an earlier test left running ends after the next test starts; the thread that
    test then starts is the test's own and is checked.
    """
    guard = tiers.Guard()
    release = threading.Event()
    earlier = threading.Thread(target=release.wait, daemon=True)
    earlier.start()
    guard.start("tests/test_x.py::test_y")
    release.set()
    earlier.join()

    raised: list[BaseException] = []

    def own() -> None:
        try:
            guard.check("starts a child process")
        except tiers.NeedsMarker as error:
            raised.append(error)

    worker = threading.Thread(target=own)
    worker.start()
    worker.join()
    assert raised, "the test's own thread is checked"
    assert list(guard.violations) == ["tests/test_x.py::test_y"]
