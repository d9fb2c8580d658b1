"""`nox -s train-tracked`: picks the script, passes options through, fails clearly."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessions import stops, train_tracked
from tests.conftest import ROOT, RecordingSession, measured_in, without_coverage
from tests.support.platforms import skip_on
from tests.support.wandb_runs import history, inspect, run_dirs

RUN = ["python", "-m", "gradient_lab", "run"]
DEMO = ["-m", "experiments.demo_vanishing_gradients"]


def test_default_is_the_demo_and_a_script_is_named_or_given_by_path(tmp_path: Path) -> None:
    assert train_tracked.command([]) == [*RUN, *DEMO]
    assert train_tracked.command(["tiny_regression", "--steps", "5"]) == [
        *RUN,
        *["-m", "experiments.tiny_regression", "--steps", "5"],
    ]
    as_path = str(Path("experiments") / "tiny_regression.py")  # the separator of this system
    assert train_tracked.command([as_path])[4:] == ["-m", "experiments.tiny_regression"]
    elsewhere = tmp_path / "train.py"
    elsewhere.write_text("print()\n", encoding="utf-8")
    assert train_tracked.command([str(elsewhere), "--lr", "1"]) == [
        *RUN,
        *[str(elsewhere), "--lr", "1"],
    ]


def test_nproc_launches_through_torchs_launcher() -> None:
    launcher = ["python", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    assert train_tracked.command(["--nproc", "2", "--smoke"]) == [
        *launcher,
        *["2", *RUN[1:], *DEMO, "--smoke"],
    ]
    assert train_tracked.command(["--nproc=4", "tiny_regression"])[:6] == [*launcher, "4"]
    for bad in (["--nproc"], ["--nproc", "0"], ["--nproc", "two"], ["--nproc=-1"]):
        with pytest.raises(ValueError, match="--nproc takes a number of processes"):
            train_tracked.command(bad)


def test_the_experiments_are_found_not_listed(tmp_path: Path) -> None:
    for name in ("new_model", "_helper", "new_model_options", "__main__"):
        (tmp_path / f"{name}.py").write_text("", encoding="utf-8")
    assert train_tracked.training_scripts(tmp_path) == ["new_model"]
    assert {"demo_vanishing_gradients", "tiny_regression"} <= set(train_tracked.training_scripts())
    with pytest.raises(ValueError, match=r"name one of experiments/ \(demo_vanishing_gradients"):
        train_tracked.command(["tracking"])


def test_session_installs_the_project_and_data_group_and_ensures_data_first(
    tmp_path: Path,
) -> None:
    session = RecordingSession(tmp_path, posargs=["--epochs", "2", "--activation", "relu"])
    train_tracked.run(session)  # type: ignore[arg-type]
    (install,) = session.installs
    assert install[-2:] == ("--editable", str(ROOT))  # the library, with torch and wandb
    assert any(arg.startswith("dvc[s3]") for arg in install)
    assert not any("pytest" in arg for arg in install)
    ensure, train = session.runs
    assert ensure == ("python", "-m", "sessions.data", "ensure")  # data.dvc's data set first
    assert train == (*RUN, *DEMO, "--epochs", "2", "--activation", "relu")


def test_smoke_variant_adds_the_smoke_options_after_the_users(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path, posargs=["--seed", "3"])
    train_tracked.run(session, smoke=True)  # type: ignore[arg-type]
    run = session.runs[-1]
    assert run[len(RUN) + len(DEMO) :] == ("--seed", "3", *train_tracked.SMOKE_OPTIONS)


def test_unknown_script_is_a_clear_error(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path, posargs=["no_such_script"])
    with pytest.raises(RuntimeError, match=r"no training script 'no_such_script': name one of"):
        train_tracked.run(session)  # type: ignore[arg-type]
    assert not session.installs


def session_env(
    child_env: dict[str, str], project: Path, *, measured: bool = True
) -> dict[str, str]:
    """measured=False: the lines the launch runs are measured by other tests (test_report's
    and test_train_interrupt's sessions, test_distributed's torchrun launches)."""
    env = measured_in(project, child_env) if measured else without_coverage(child_env)
    env = {k: v for k, v in env.items() if not k.startswith("WANDB_")}
    # `--no-venv` runs `python` from PATH: this test venv's.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


@pytest.mark.slow
def test_smoke_session_trains_offline_with_no_account(
    tmp_path: Path, child_env: dict[str, str], nox_cmd: list[str], project_copy: Path
) -> None:
    env = session_env(child_env, project_copy, measured=False)
    env |= {"WANDB_CONFIG_DIR": str(tmp_path / "cfg"), "WANDB_DATA_DIR": str(tmp_path / "wd")}
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "train-tracked", "--", "--smoke", "--no-progress",
         "--activation", "sigmoid", "--run-dir", str(tmp_path), "--models-dir",
         str(tmp_path / "models"), "--data-dir", str(tmp_path / "data")],
        cwd=project_copy, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "tracking offline" in output
    (run_dir,) = run_dirs(tmp_path)
    assert f"W&B run (offline): {run_dir}" in output
    assert f"Weights: {tmp_path / 'models' / 'vanishing-gradients-sigmoid.pt'}" in output
    assert (tmp_path / "data" / "synthetic_data_sample.png").is_file()
    assert inspect(run_dir)["config"]["epochs"] == 2


@pytest.mark.slow
def test_session_with_a_bad_option_exits_non_zero(
    child_env: dict[str, str], nox_cmd: list[str], project_copy: Path
) -> None:
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "train-tracked", "--", "--epochs", "-3"],
        cwd=project_copy, env=session_env(child_env, project_copy), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "--epochs must be at least 1, got -3" in output
    assert "Traceback" not in output
    assert "sessions.data" not in output  # checked before the data and the imports


@pytest.mark.slow
@skip_on("win32", reason="torchrun's store needs libuv, absent there")
def test_session_trains_the_demo_in_two_processes_as_one_run(
    tmp_path: Path, child_env: dict[str, str], nox_cmd: list[str], project_copy: Path
) -> None:
    env = session_env(child_env, project_copy, measured=False)
    env |= {"WANDB_CONFIG_DIR": str(tmp_path / "cfg"), "WANDB_DATA_DIR": str(tmp_path / "wd")}
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "train-tracked", "--", "--nproc", "2", "--smoke",
         "--no-progress", "--activation", "relu", "--depth", "3", "--width", "8",
         "--run-dir", str(tmp_path), "--models-dir", str(tmp_path / "models"),
         "--data-dir", str(tmp_path / "data")],
        cwd=project_copy, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "torch.distributed.run --standalone --nproc_per_node 2" in output
    (run_dir,) = run_dirs(tmp_path)
    assert inspect(run_dir)["config"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert output.count("Training vanishing-gradients-relu") == 1


def test_resume_command_is_this_session_with_resume_added(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path, posargs=["--epochs", "3", "--name", "a b", "--resume"])
    session.name = "train-tracked"
    assert train_tracked.resume_command(session) == (  # type: ignore[arg-type]
        "nox -s train-tracked -- --epochs 3 --name 'a b' --resume"
    )
    in_compose = {"GRADIENT_LAB_LAUNCHER": "docker compose run --rm train"}
    assert train_tracked.resume_command(session, in_compose).startswith(  # type: ignore[arg-type]
        "docker compose run --rm train nox -s train-tracked -- --epochs 3"
    )
    session.venv_backend = "none"  # the image runs `nox --no-venv`
    assert train_tracked.resume_command(session).startswith("nox --no-venv -s train-tracked --")  # type: ignore[arg-type]


def test_the_demo_learns_the_resume_command_from_the_session(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path, posargs=["--seed", "3"])
    seen: dict[str, object] = {}
    session.run = lambda *args, **kwargs: seen.update({args[-1]: kwargs})  # type: ignore[method-assign]
    train_tracked.run(session)  # type: ignore[arg-type]
    kwargs = seen["3"]
    assert isinstance(kwargs, dict)
    assert kwargs["env"] == {"GRADIENT_LAB_RESUME_COMMAND": "nox -s fake -- --seed 3 --resume"}
    assert kwargs["interrupt_timeout"] + kwargs["terminate_timeout"] < 10  # before Docker kills


def test_a_signal_while_a_command_ran_stops_the_session_though_nox_saw_success(
    tmp_path: Path,
) -> None:
    """nox swallows the stop when it read the command's exit code as 0 (as CPython's Popen
    reports a child it reaped before the signal's handler ran): the session stops anyway, as
    the signal asked, with 128 + its number, and starts nothing more."""
    import signal

    session = RecordingSession(tmp_path)
    ran: list[tuple[str, ...]] = []

    def swallowed(*args: str, **kwargs: object) -> None:
        ran.append(args)
        with contextlib.suppress(KeyboardInterrupt):  # what nox's popen does then
            signal.raise_signal(signal.SIGTERM)

    session.run = swallowed  # type: ignore[method-assign]
    with pytest.raises(SystemExit) as stopped:
        train_tracked.run(session)  # type: ignore[arg-type]
    assert stopped.value.code == 128 + signal.SIGTERM
    assert ran == [("python", "-m", "sessions.data", "ensure")]  # and no training after it


# Windows has SIGTERM too, and raise_signal calls the handler the session installs for it.
def test_nox_takes_sigterm_like_ctrl_c_and_only_the_first() -> None:
    import signal

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where pytest started as a background job
    with stops.signals_stop_nox() as received:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # a second SIGTERM: nox keeps waiting
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # a second Ctrl-C: nox leaves at once
    assert received == [signal.SIGTERM, signal.SIGTERM, signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is before


NEW_EXPERIMENT = """
import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=40)
args = parser.parse_args()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
x, y = torch.randn(128, 4), torch.randn(128, 1)
for step in range(args.steps):
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"trained {args.steps} steps")
"""


@pytest.mark.slow
def test_a_new_file_in_experiments_trains_tracked_with_nothing_else_edited(
    tmp_path: Path, child_env: dict[str, str], nox_cmd: list[str], project_copy: Path
) -> None:
    (project_copy / "experiments" / "my_new_model.py").write_text(NEW_EXPERIMENT, "utf-8")
    env = session_env(child_env, project_copy, measured=False)
    env |= {
        "WANDB_DIR": str(tmp_path),
        "WANDB_CONFIG_DIR": str(tmp_path / "cfg"),
        "WANDB_DATA_DIR": str(tmp_path / "wd"),
    }
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "train-tracked", "--", "my_new_model", "--steps", "30"],
        cwd=project_copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "trained 30 steps" in output
    (run_dir,) = run_dirs(tmp_path)
    run = inspect(run_dir)
    assert run["config"]["steps"] == 30
    assert run["config"]["command"] == "-m experiments.my_new_model --steps 30"
    rows = [row for row in history(run_dir) if "loss" in row]
    assert [row["_step"] for row in rows] == [9, 19, 29]
    assert all("grad_norm/0" in row and "grad_norm/2" in row for row in rows)
