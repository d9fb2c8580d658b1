"""Stopping training where users stop it: signals to `nox -s train-tracked` in a project copy.

Each test starts the real session in its own process group, as a terminal does, signals it
mid-training and reads back what it left: the exit code, the checkpoint under models/, the
offline W&B run. The resume command the stop message prints is then run as it is, and its
weights are compared with an unbroken run's.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import pytest
import torch

from sessions.files import remove_tree
from tests.conftest import measured_in, without_coverage
from tests.support.jobs import Job
from tests.support.platforms import skip_on
from tests.support.project_copy import build_template, copy_of
from tests.support.wandb_runs import history, inspect, run_dirs

pytestmark = pytest.mark.slow
# Windows has no process groups to signal (a console's Ctrl-C cannot be sent to another one).
signals_a_group = skip_on("win32", reason="signals a POSIX process group")


def train_options(epochs: int) -> list[str]:
    """The demo's options for a small, quick run: 4 steps per epoch."""
    return ["--activation", "relu", "--width", "32", "--samples", "512", "--epochs", str(epochs),
            "--log-every", "5", "--no-progress"]  # fmt: skip


# A run that is stopped, resumed and compared with an unbroken one: 2000 steps, a few seconds;
# a signal to the session stops it within its first few hundred steps, even on a busy machine.
TOTAL_STEPS = 2000
TRAIN = train_options(TOTAL_STEPS // 4)
# A run that is stopped and not resumed: 10000 steps, which no stop comes near (where nox
# alone gets the signal, it passes it on a second later: past step 900 on a busy machine).
UNTIL_STOPPED = train_options(2500)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project (what git would commit, untracked files too), as its own git
    repository, with the data set in place: the tests never touch this checkout's data/.
    The set is generated straight into data/, the bytes data.dvc records (what the data
    session regenerates in a fresh clone); each session's own data check then finds it
    current."""
    from gradient_lab.synthetic_data import generate

    copy = build_template(tmp_path_factory.mktemp("project"))
    generate(copy / "data")
    return copy


def session_env(project: Path, runs: Path, *, measured: bool = True) -> dict[str, str]:
    """This test venv for `nox --no-venv`, the copy's library first, W&B offline in `runs`;
    measured by this run's coverage unless `measured` is False (a launch whose lines other
    tests measure)."""
    env = measured_in(project, os.environ) if measured else without_coverage(os.environ)
    env = {k: v for k, v in env.items() if not k.startswith(("WANDB_", "NOX_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(project / "src")
    env |= {"WANDB_DIR": str(runs), "WANDB_CONFIG_DIR": str(runs / "config"),
            "WANDB_DATA_DIR": str(runs / "data"), "WANDB_CACHE_DIR": str(runs / "cache"),
            "DVC_NO_ANALYTICS": "1"}  # fmt: skip
    return env


def nox_train(project: Path, runs: Path, *options: str, measured: bool = True) -> Job:
    command = [sys.executable, "-m", "nox", "--no-venv", "-s", "train-tracked", "--", *options]
    return Job(command, project, session_env(project, runs, measured=measured))


def wait_until_training(job: Job, runs: Path, earlier: Sequence[Path] = ()) -> None:
    """Until the run's log file holds logged steps (W&B writes it in 32 KiB blocks); the
    folders of `earlier` runs in `runs` do not count."""
    job.wait_for("Training ")
    deadline = time.monotonic() + 180
    while not any(
        f.stat().st_size >= 64 * 1024
        for folder in run_dirs(runs)
        if folder not in earlier
        for f in folder.glob("*.wandb")
    ):
        assert job.proc.poll() is None, job.output
        assert time.monotonic() < deadline, f"no training steps logged:\n{job.output}"
        time.sleep(0.05)


def resume_command(output: str) -> list[str]:
    """The command the stop message says resumes, as argv (nox run by this interpreter)."""
    match = re.search(r"Resume: (.+)$", output, re.M)
    assert match, output
    argv = shlex.split(match.group(1))
    assert argv[0] == "nox"
    return [sys.executable, "-m", "nox", *argv[1:]]


@pytest.fixture(scope="module")
def unbroken(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The weights of the run trained start to end in one go."""
    out = tmp_path_factory.mktemp("unbroken")
    env = session_env(project, out / "runs")
    subprocess.run([sys.executable, "-m", "experiments.demo_vanishing_gradients", *TRAIN,
                    "--wandb-mode", "disabled", "--models-dir", str(out)],
                   cwd=project, env=env, check=True, capture_output=True)  # fmt: skip
    weights: dict[str, torch.Tensor] = torch.load(out / "vanishing-gradients-relu.pt",
                                                  weights_only=True)  # fmt: skip
    return weights


def stopped(
    finished: tuple[int, str], signum: int, said: str, *, project: Path, name: str, run_dir: Path
) -> tuple[list[str], int]:
    """Checks what a signal to the session left; the printed resume command and the step."""
    code, output = finished
    assert code == 128 + signum, output
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if line.startswith("Stopped by")]
    assert line.startswith(f"Stopped by {said} at step ")
    checkpoint = project / "models" / f"{name}.ckpt"
    assert f"checkpoint saved to {Path('models') / f'{name}.ckpt'}" in line
    state = torch.load(checkpoint, weights_only=True)
    assert 0 < state["gradient_lab"]["next_step"] < TOTAL_STEPS
    run = inspect(run_dir)
    assert f"W&B run closed (offline: {run_dir})" in line
    # Closed with the signal's exit code; its last word says where training stopped.
    assert (run["exit_code"], run["state"]) == (128 + signum, "failed")
    assert run["summary"]["stopped_by"] == said
    assert run["summary"]["stopped_at_step"] == state["gradient_lab"]["next_step"]
    assert not list((project / "models").glob(f".{name}*"))  # no partial file
    resume = resume_command(line)
    assert resume[resume.index("--") + 1 :] == [*TRAIN, "--name", name, "--resume"]
    return resume, int(state["gradient_lab"]["next_step"])


@signals_a_group
def test_signals_to_the_session_save_close_and_resume(
    project: Path, tmp_path: Path, unbroken: dict[str, torch.Tensor]
) -> None:
    """Ctrl-C stops the run, SIGTERM stops the resumed run, and the second printed command
    finishes it: one W&B run throughout, with an unbroken run's weights. (One job for both
    signals, each stopping a run and its checkpoint resumed, where there were one job per
    signal: the second stop is also a stop of a resumed run.)"""
    name = "stopped"
    runs = tmp_path / "runs"
    job = nox_train(project, runs, *TRAIN, "--name", name)
    wait_until_training(job, runs)
    job.signal_group(signal.SIGINT)
    finished = job.finish()
    (first_dir,) = run_dirs(runs)
    run_id = inspect(first_dir)["run_id"]
    resume, step = stopped(finished, signal.SIGINT, "Ctrl-C (SIGINT)", project=project,
                           name=name, run_dir=first_dir)  # fmt: skip

    # The exact command the message gives resumes the same run; SIGTERM stops it again.
    job = Job(resume, project, session_env(project, runs))
    job.wait_for(f"Resuming relu at step {step}")
    wait_until_training(job, runs, earlier=[first_dir])
    job.signal_group(signal.SIGTERM)
    finished = job.finish()
    (second_dir,) = [d for d in run_dirs(runs) if d != first_dir]
    assert inspect(second_dir)["run_id"] == run_id  # the same W&B run goes on
    resume, later = stopped(finished, signal.SIGTERM, "SIGTERM", project=project, name=name,
                            run_dir=second_dir)  # fmt: skip
    assert later > step
    assert min(row["_step"] for row in history(second_dir) if "loss" in row) >= step

    result = subprocess.run(resume, cwd=project, env=session_env(project, runs),
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Resuming relu at step {later}" in result.stdout
    assert not (project / "models" / f"{name}.ckpt").exists()
    (last_dir,) = [d for d in run_dirs(runs) if d not in (first_dir, second_dir)]
    resumed = inspect(last_dir)
    assert resumed["run_id"] == run_id
    assert (resumed["exit_code"], resumed["state"]) == (0, "finished")
    assert min(row["_step"] for row in history(last_dir) if "loss" in row) >= later
    weights = torch.load(project / "models" / f"{name}-relu.pt", weights_only=True)
    assert weights.keys() == unbroken.keys()
    assert all(torch.equal(weights[k], unbroken[k]) for k in unbroken)


@skip_on("win32", reason="Windows' os.kill ends nox at once, unsignalled")
@pytest.mark.parametrize(
    ("signum", "who"),
    [
        (signal.SIGTERM, "docker stop on an image whose PID 1 is nox"),
        (signal.SIGINT, "a cancelled GitHub Actions job: the runner signals the step's nox"),
    ],
)
def test_a_signal_to_nox_alone_reaches_the_training(
    project: Path, tmp_path: Path, signum: int, who: str
) -> None:
    """Nox passes SIGTERM on to the training, which stops as it does for a signal of its own."""
    runs = tmp_path / "runs"
    name = f"nox-alone-{signum}"
    job = nox_train(project, runs, *UNTIL_STOPPED, "--name", name)
    wait_until_training(job, runs)
    os.kill(job.proc.pid, signum)
    code, output = job.finish()
    assert code == 128 + signum, output  # what nox was sent
    assert "Stopped by SIGTERM at step " in output  # what the training was sent
    assert (project / "models" / f"{name}.ckpt").is_file()
    (run_dir,) = run_dirs(runs)
    assert inspect(run_dir)["exit_code"] == 143


def catches_sigterm(pid: int) -> bool:
    """Whether a process has a SIGTERM handler (Linux: the SigCgt mask in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    mask = re.search(r"^SigCgt:\s*(\w+)", status, re.M)
    assert mask, status
    return bool(int(mask.group(1), 16) >> (signal.SIGTERM - 1) & 1)


def children(pid: int) -> list[int]:
    found: list[int] = []
    with suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += map(int, (task / "children").read_text(encoding="utf-8").split())
    return found


def fresh_clone(project: Path, dest: Path) -> Path:
    """A copy of the project as a fresh clone has it: no data/, and no .dvc/tmp (which DVC
    makes when it first opens the repository, as the sessions the other tests ran did)."""
    fresh = copy_of(project, dest)
    remove_tree(fresh / "data")
    remove_tree(fresh / ".dvc" / "tmp", missing_ok=True)
    return fresh


def dvc_opened(project: Path, job: Job) -> None:
    """Wait until DVC (which the data session runs in its own process) has opened the copy's
    repository: its .dvc/tmp, which no clone has, exists. The data check is under way."""
    deadline = time.monotonic() + 120
    while not (project / ".dvc" / "tmp").is_dir():
        assert time.monotonic() < deadline, f"DVC never opened {project}:\n{job.output}"
        time.sleep(0.005)


def child_running(job: Job, marker: bytes) -> int:
    """The pid of the process nox started whose command line holds `marker` (Linux /proc)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for pid in children(job.proc.pid):
            with suppress(OSError):
                if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        time.sleep(0.01)
    raise AssertionError(f"nox started no {marker!r}:\n{job.output}")


@skip_on("win32", "darwin", reason="reads /proc")
def test_ctrl_c_while_torch_imports_prints_one_line(project: Path, tmp_path: Path) -> None:
    job = nox_train(project, tmp_path / "runs", *TRAIN, "--name", "early")
    pid = child_running(job, b"experiments")
    # From the moment its handler is in (Python itself starts in a tenth of a second), while
    # torch and W&B still take seconds to import.
    while not catches_sigterm(pid):
        time.sleep(0.005)
    job.signal_group(signal.SIGINT)
    code, output = job.finish()
    assert code == 130, output
    assert "Traceback" not in output
    assert "Training " not in output
    after = output[output.index("python -m gradient_lab run -m experiments.demo_vanishing") :]
    said = [line for line in after.splitlines()[1:] if not line.startswith("nox >")]
    assert said == ["Stopped by Ctrl-C (SIGINT) before training started; nothing was saved."]
    assert not (project / "models" / "early.ckpt").exists()
    assert not run_dirs(tmp_path / "runs")


@skip_on("win32", reason="Popen reaps with waitpid on POSIX only")
@skip_on("darwin", reason="reads /proc")
@pytest.mark.parametrize(
    ("session", "said"),
    [
        ("train-tracked", "Stopped by Ctrl-C (SIGINT) before training started; nothing was saved."),
        ("data", "Stopped by Ctrl-C (SIGINT); run the same command again to finish."),
    ],
)
def test_a_stop_the_command_took_before_nox_is_not_reported_as_success(
    project: Path, tmp_path: Path, session: str, said: str
) -> None:
    """The group's Ctrl-C, where the session's command handles it and exits before nox's
    handler runs: nox's Popen has reaped the command by then and reads its exit code as 0. It
    was seen so in a test run: "Session train-tracked was successful", exit 0, nothing trained.
    The data session stands for the one-command sessions (report and export-summary too); it
    is stopped while DVC regenerates a fresh copy's data."""
    env = session_env(project, tmp_path / "runs", measured=False)
    reap_first = Path(__file__).parent / "support" / "signal_after_reap"
    env["PYTHONPATH"] = os.pathsep.join([str(reap_first), env["PYTHONPATH"]])
    if session == "train-tracked":
        job = nox_job(project, env, session, *TRAIN, "--name", "raced")
        command = child_running(job, b"experiments")
        while not catches_sigterm(command):  # from its first instant, while torch imports
            time.sleep(0.005)
    else:
        fresh = fresh_clone(project, tmp_path / "project")
        job = nox_job(fresh, env, session, "ensure")
        command = child_running(job, b"sessions.data")
        dvc_opened(fresh, job)
    os.kill(command, signal.SIGINT)  # the command first; nox gets its own once it reaped it
    code, output = job.finish()
    assert code == 130, output
    assert "was successful" not in output
    assert said in output


def nox_job(project: Path, env: dict[str, str], session: str, *args: str) -> Job:
    return Job([sys.executable, "-m", "nox", "--no-venv", "-s", session, "--", *args], project, env)


@skip_on("win32", "darwin", reason="reads /proc")
def test_ctrl_c_during_the_data_check_prints_one_line(project: Path, tmp_path: Path) -> None:
    # Without data/, DVC restores, pulls or regenerates it: the check lasts seconds.
    fresh = fresh_clone(project, tmp_path / "project")
    job = nox_train(fresh, tmp_path / "runs", *TRAIN, "--name", "data-check")
    child_running(job, b"sessions.data")
    dvc_opened(fresh, job)
    job.signal_group(signal.SIGINT)
    code, output = job.finish()
    assert code == 130, output
    assert "Traceback" not in output and "Training " not in output
    said = [line for line in output.splitlines() if not line.startswith("nox >")]
    assert said == ["Stopped by Ctrl-C (SIGINT); run the same command again to finish."]


def test_a_bad_option_fails_before_the_data_check(project: Path, tmp_path: Path) -> None:
    job = nox_train(project, tmp_path / "runs", "--epochs", "0")
    code, output = job.finish()
    assert code == 2, output
    assert "--epochs must be at least 1, got 0" in output
    assert "sessions.data" not in output and "Traceback" not in output


@signals_a_group
def test_ctrl_c_stops_every_rank_of_a_two_process_job_after_one_step(
    project: Path, tmp_path: Path
) -> None:
    """`--nproc 2`: torchrun passes Ctrl-C to its ranks; they agree on the step to stop after,
    rank 0 writes the one checkpoint and closes the job's one run."""
    from gradient_lab.interrupt import AGREE_EVERY

    runs = tmp_path / "runs"
    # Unmeasured: test_interrupt's torchrun launches and test_distributed's run these lines.
    job = nox_train(project, runs, "--nproc", "2", *UNTIL_STOPPED, "--name", "two-ranks",
                    measured=False)  # fmt: skip
    wait_until_training(job, runs)
    job.signal_group(signal.SIGINT)
    code, output = job.finish()
    assert code == 130, output
    (line,) = [line for line in output.splitlines() if line.startswith("Stopped by")]
    assert "Resume: nox --no-venv -s train-tracked -- --nproc 2 " in line
    step = torch.load(project / "models" / "two-ranks.ckpt", weights_only=True)["gradient_lab"][
        "next_step"
    ]
    assert step > 0 and step % AGREE_EVERY == 0
    (run_dir,) = run_dirs(runs)
    assert (inspect(run_dir)["exit_code"], inspect(run_dir)["summary"]["stopped_at_step"]) == (
        130, step,
    )  # fmt: skip
