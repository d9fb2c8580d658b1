"""How a process reacts to stop signals: the library's rules, one process and under torchrun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from gradient_lab import interrupt
from tests.conftest import ROOT
from tests.support.platforms import own_process_group, skip_on

# torchrun's store needs libuv (absent from Windows' torch), and the tests signal its group.
posix_only = skip_on("win32", reason="torchrun and a POSIX process group")


def test_first_signal_names_the_stop_and_a_later_sigterm_changes_nothing() -> None:
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where pytest started as a background job
    with interrupt.stop_on_signals() as stop:
        assert not interrupt.should_stop(stop, 0)
        signal.raise_signal(signal.SIGINT)
        assert interrupt.should_stop(stop, 1)
        if hasattr(signal, "SIGTERM"):
            signal.raise_signal(signal.SIGTERM)  # nox / Actions / Docker escalating
    assert (stop.exit_code, stop.reason) == (130, "Ctrl-C (SIGINT)")
    assert signal.getsignal(signal.SIGINT) is before  # restored


EARLY_SIGNAL = """
import signal, sys
from gradient_lab.interrupt import exit_on_signals, stop_on_signals
with exit_on_signals(), stop_on_signals() as stop:
    signal.raise_signal(signal.SIGINT)  # a training loop has the signals: a flag only
print("flag", stop.requested, flush=True)
with exit_on_signals():
    signal.raise_signal(getattr(signal, sys.argv[1]))
    print("not reached")
"""


@pytest.mark.slow
@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_before_training_a_signal_ends_the_process_with_one_line(name: str, code: int) -> None:
    if not hasattr(signal, name):
        pytest.skip(f"no {name} here")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", EARLY_SIGNAL, name], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (result.returncode, result.stdout) == (code, "flag True\n")
    said = "Ctrl-C (SIGINT)" if name == "SIGINT" else "SIGTERM"
    assert result.stderr == f"Stopped by {said} before training started; nothing was saved.\n"


SECOND_CTRL_C = """
import signal, time
from gradient_lab.interrupt import stop_on_signals
with stop_on_signals() as stop:
    signal.raise_signal(signal.SIGINT)
    print("stopping", flush=True)
    signal.raise_signal(signal.SIGINT)
    time.sleep(30)
print("not reached")
"""


@pytest.mark.slow
def test_a_second_ctrl_c_aborts_at_once() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", SECOND_CTRL_C], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 130
    assert result.stdout == "stopping\n"
    said = "Ctrl-C (SIGINT) again: stopped at once, the run was not closed."
    assert result.stderr.strip() == said


@pytest.mark.slow
def test_importing_the_module_loads_neither_torch_nor_wandb() -> None:
    code = "import sys, gradient_lab.interrupt; print({'torch', 'wandb'} & set(sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "set()"


@contextmanager
def torchrun(out: Path, nproc: int = 2) -> Iterator[subprocess.Popen[bytes]]:
    """torchrun in its own process group, as a terminal's job; never left running."""
    torchrun_bin = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    proc = subprocess.Popen(
        [str(torchrun_bin), "--standalone", "--nproc-per-node", str(nproc),
         str(ROOT / "tests" / "support" / "distributed_stop.py"), str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **own_process_group(),
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:  # the ranks run in process groups of their own
            for pid_file in out.glob("rank*.pid"):
                with suppress(ProcessLookupError):
                    os.kill(int(pid_file.read_text(encoding="utf-8")), signal.SIGKILL)
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def wait_ready(out: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not (out / "ready").exists():
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert time.monotonic() < deadline, "torchrun's ranks never got going"
        time.sleep(0.05)


def agreed(out: Path, nproc: int = 2) -> set[str]:
    return {(out / f"rank{rank}.txt").read_text(encoding="utf-8") for rank in range(nproc)}


@pytest.mark.slow
@posix_only
def test_under_torchrun_every_rank_stops_after_the_same_step(tmp_path: Path) -> None:
    import torch

    with torchrun(tmp_path) as proc:
        wait_ready(tmp_path, proc)
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C; torchrun passes it on
        proc.wait(timeout=120)
    (result,) = agreed(tmp_path)
    step, code = map(int, result.split())
    assert code == 130 and step >= 50 and step % interrupt.AGREE_EVERY == 0
    assert torch.load(tmp_path / "stop.ckpt", weights_only=True)["step"] == step
    assert [p.name for p in tmp_path.glob("*.ckpt")] == ["stop.ckpt"]  # rank 0's, once


@pytest.mark.slow
@posix_only
def test_under_torchrun_a_signal_to_one_rank_stops_them_all(tmp_path: Path) -> None:
    with torchrun(tmp_path) as proc:
        wait_ready(tmp_path, proc)
        os.kill(int((tmp_path / "rank1.pid").read_text(encoding="utf-8")), signal.SIGTERM)
        proc.wait(timeout=120)
    (result,) = agreed(tmp_path)  # rank 0 got no signal, yet stops with rank 1, as rank 1 did
    assert result.split()[1] == "143"
    assert proc.returncode != 0
