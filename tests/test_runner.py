"""`gradient-lab run`: training scripts that were never edited for tracking, run as Python runs
them and recorded in one offline W&B run.

Each script in tests/unedited/ (after public PyTorch examples: a hand-written SGD update, AdamW
with `torch.save`, LBFGS with a closure and saved figures) runs twice in a folder of its own,
as `python SCRIPT ARGS` and as `python -m gradient_lab run SCRIPT ARGS`: the same exit status
and output, and a run that holds what the script did. Smaller scripts written here plant one
behaviour each: two models, an exit status, an error, a signal, a script that tracks itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import ROOT, without_coverage
from tests.support.platforms import skip_on
from tests.support.wandb_runs import artifacts, history, inspect, run_dirs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

UNEDITED = Path(__file__).parent / "unedited"
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")


@pytest.fixture
def env(child_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Offline W&B with every folder under tmp_path, no window, one torch thread (the plain and
    the tracked run alike: two cores shared with other tests)."""
    env = {k: v for k, v in child_env.items() if not k.startswith("WANDB_")}
    return env | {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path / "runs"),
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }


def python(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def tracked(
    folder: Path, script: str, *args: str, env: dict[str, str], options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return python(["-m", "gradient_lab", "run", *options, script, *args], folder, env)


def the_run(env: dict[str, str]) -> Path:
    (run_dir,) = run_dirs(Path(env["WANDB_DIR"]))
    return run_dir


def keys(run_dir: Path) -> set[str]:
    return {key for row in history(run_dir) for key in row}


def assert_same_output(plain: str, tracked: str) -> None:
    """The same text; the numbers in it equal to within float noise."""
    assert NUMBER.sub("#", tracked) == NUMBER.sub("#", plain), (plain, tracked)
    ours = [float(n) for n in NUMBER.findall(tracked)]
    assert ours == pytest.approx([float(n) for n in NUMBER.findall(plain)], rel=1e-6)


def check_regression(run: dict[str, Any], run_dir: Path, folder: Path) -> None:
    assert (run["config"]["lr"], run["config"]["steps"]) == (0.02, 120)
    # No optimizer: each backward() is a step, measured after it.
    assert [r["_step"] for r in history(run_dir) if "loss" in r] == list(range(9, 120, 10))


def check_classifier(run: dict[str, Any], run_dir: Path, folder: Path) -> None:
    config = run["config"]
    assert (config["lr"], config["epochs"], config["batch_size"]) == (0.01, 2, 64)
    assert (config["weight_decay"], config["out"]) == (0.05, "classifier.pt")
    weights = (folder / "classifier.pt").resolve()
    assert run["summary"]["saved_files"] == [str(weights)]
    (model,) = [a for a in artifacts(run_dir) if a["type"] == "model"]
    assert [c["path"] for c in model["manifest"]["contents"]] == ["classifier.pt"]
    assert (run_dir / "artifacts" / "classifier.pt").read_bytes() == weights.read_bytes()
    # Trained exactly as without the runner: the same weights.
    ours = torch.load(weights, weights_only=True)
    plain = torch.load(folder.parent / "plain" / "classifier.pt", weights_only=True)
    assert ours.keys() == plain.keys() and all(torch.equal(ours[k], plain[k]) for k in ours)


def check_sine(run: dict[str, Any], run_dir: Path, folder: Path) -> None:
    assert run["config"]["steps"] == 3
    # LBFGS evaluates its closure several times a step: one loss per step, each step a row.
    assert [r["_step"] for r in history(run_dir) if "loss" in r] == [0, 1, 2]
    assert "figures/predict0" in run["summary"] or "figures/predict0._type" in keys(run_dir)
    assert {"figures/predict2", "figures/predict2._type"} & (set(run["summary"]) | keys(run_dir))
    # The script's own files are still written.
    assert sorted(p.name for p in folder.glob("predict*.png")) == [
        f"predict{i}.png" for i in range(3)
    ]


SCRIPTS = {
    "regression": ("regression.py", ["--lr", "0.02", "--steps", "120"], (), check_regression),
    "classifier": (
        "classifier.py",
        ["--lr", "0.01", "--epochs", "2", "--batch-size", "64", "--weight-decay", "0.05"],
        (),
        check_classifier,
    ),
    "sine_lbfgs": ("sine_lbfgs.py", ["--steps", "3"], ("--log-every", "1"), check_sine),
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_an_unedited_script_runs_as_python_runs_it_and_is_recorded(
    name: str, env: dict[str, str], tmp_path: Path
) -> None:
    script, args, options, check = SCRIPTS[name]
    folders = {way: tmp_path / way for way in ("plain", "tracked")}
    for folder in folders.values():
        folder.mkdir()
        shutil.copy(UNEDITED / script, folder / script)
    plain = python([script, *args], folders["plain"], without_coverage(env))
    ours = tracked(folders["tracked"], script, *args, env=env, options=options)
    assert plain.returncode == 0, plain.stderr
    assert ours.returncode == 0, ours.stderr
    assert_same_output(plain.stdout, ours.stdout)
    assert "Traceback" not in ours.stderr, ours.stderr
    run_dir = the_run(env)
    run = inspect(run_dir)
    assert (run["state"], run["exit_code"]) == ("finished", 0), run
    assert run["config"]["command"] == " ".join([script, *args])
    found = keys(run_dir)
    assert "loss" in found and any(k.startswith("grad_norm/") for k in found), found
    check(run, run_dir, folders["tracked"])


def test_each_optimizer_step_is_logged_with_its_own_loss(
    env: dict[str, str], tmp_path: Path
) -> None:
    """One row per epoch (8 batches of 64): its loss is the epoch's mean, as the script prints
    it; the last step is logged at its own step (15), not one before it."""
    shutil.copy(UNEDITED / "classifier.py", tmp_path / "classifier.py")
    args = ["--epochs", "2", "--batch-size", "64"]
    ours = tracked(tmp_path, "classifier.py", *args, env=env, options=("--log-every", "8"))
    assert ours.returncode == 0, ours.stderr
    printed = [
        float(line.split()[-1]) for line in ours.stdout.splitlines() if line.startswith("epoch")
    ]
    rows = {r["_step"]: r["loss"] for r in history(the_run(env)) if "loss" in r}
    assert rows == pytest.approx({7: printed[0], 15: printed[1]}, rel=1e-5, abs=2e-6)


GAN = """\
import torch
from torch import nn

torch.manual_seed(0)
netG = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
netD = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
optimizerD = torch.optim.Adam(netD.parameters(), lr=1e-3)
optimizerG = torch.optim.Adam(netG.parameters(), lr=1e-3)
bce = nn.BCEWithLogitsLoss()
real, ones, zeros = torch.randn(64, 2) + 3, torch.ones(64, 1), torch.zeros(64, 1)
for step in range(10):
    fake = netG(torch.randn(64, 4))
    netD.zero_grad()
    errD = bce(netD(real), ones) + bce(netD(fake.detach()), zeros)
    errD.backward()
    optimizerD.step()
    netG.zero_grad()
    errG = bce(netD(fake), ones)
    errG.backward()
    optimizerG.step()
print(f"Loss_D {errD.item():.4f} Loss_G {errG.item():.4f}")
"""


def test_two_models_are_measured_under_the_names_the_script_gives_them(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "gan.py").write_text(GAN, encoding="utf-8")
    ours = tracked(tmp_path, "gan.py", env=env, options=("--log-every", "5"))
    assert ours.returncode == 0, ours.stderr
    norms = {k.split("/")[1] for k in keys(the_run(env)) if k.startswith("grad_norm/")}
    assert {"netG", "netD"} <= norms and not norms & {"Sequential", "0", "2"}, norms


LOOP = """\
import signal
import sys

import torch

model = torch.nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(50):
    optimizer.zero_grad()
    model(torch.ones(2, 3)).pow(2).mean().backward()
    optimizer.step()
    if step == 3:
        {ending}
print("unreachable")
"""


def run_loop(ending: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "loop.py").write_text(LOOP.format(ending=ending), encoding="utf-8")
    result = tracked(tmp_path, "loop.py", env=env)
    assert "unreachable" not in result.stdout
    return result


def test_the_scripts_exit_status_passes_through(env: dict[str, str], tmp_path: Path) -> None:
    result = run_loop("sys.exit(3)", env, tmp_path)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(run_dirs(tmp_path / "runs")) == 1


def test_an_error_fails_the_run_and_shows_the_traceback(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = run_loop('raise ValueError("planted")', env, tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: planted" in result.stderr, result.stderr
    assert inspect(the_run(env))["exit_code"] == 1


@skip_on("win32", reason="signal.raise_signal(SIGTERM) ends a Windows process at once")
@pytest.mark.parametrize(
    ("signame", "status", "stopped_by"),
    [("SIGINT", 130, "Ctrl-C (SIGINT)"), ("SIGTERM", 143, "SIGTERM")],
)
def test_a_signal_in_the_loop_closes_the_run_stopped(
    signame: str, status: int, stopped_by: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = run_loop(f"signal.raise_signal(signal.{signame})", env, tmp_path)
    assert result.returncode == status, result.stderr
    if signame == "SIGINT":  # as Python shows a Ctrl-C
        assert result.stderr.rstrip().endswith("KeyboardInterrupt"), result.stderr
    run = inspect(the_run(env))
    assert run["exit_code"] == status, run
    assert run["summary"]["stopped_by"] == stopped_by


def test_a_script_that_tracks_itself_makes_one_run_its_own_way(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = env | {"PYTHONPATH": str(ROOT)}
    args = ["-m", "experiments.tiny_regression", "--steps", "20", "--models-dir", str(tmp_path)]
    result = python(["-m", "gradient_lab", "run", *args], ROOT, env)
    assert result.returncode == 0, result.stderr
    run_dir = the_run(env)  # exactly one
    assert f"W&B run (offline): {run_dir}" in result.stdout
    config = inspect(run_dir)["config"]
    assert config["steps"] == 20 and "command" not in config  # the script's config, not ours
    assert [r["_step"] for r in history(run_dir) if "loss" in r] == [9, 19]


def test_run_without_a_script_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    result = python(["-m", "gradient_lab", "run"], tmp_path, env)
    assert result.returncode == 2
    assert "usage: gradient-lab run" in result.stderr and "name a script" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_the_console_script_is_installed(env: dict[str, str], tmp_path: Path) -> None:
    found = shutil.which("gradient-lab", path=str(Path(sys.executable).parent))
    assert found, "no gradient-lab next to this Python"
    result = subprocess.run(
        [found, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: gradient-lab run") and "--log-every" in result.stdout


DDP_SCRIPT = """
import torch
import torch.distributed as dist
from torch import nn

dist.init_process_group("gloo")
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
model = nn.parallel.DistributedDataParallel(net)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(20):
    loss = model(torch.randn(16, 4)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"rank {dist.get_rank()} done")
dist.destroy_process_group()
"""


@skip_on("win32", reason="torchrun's store needs libuv, absent there")
def test_under_torchrun_the_job_is_one_run_on_rank_0(env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT, encoding="utf-8")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is not installed next to this Python"
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "gradient_lab", "run", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rank 0 done" in result.stdout and "rank 1 done" in result.stdout
    run_dir = the_run(env)
    assert inspect(run_dir)["config"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    rows = [row for row in history(run_dir) if "loss" in row]
    assert [row["_step"] for row in rows] == [9, 19]
    assert all("grad_norm/0" in row and "grad_norm/2" in row for row in rows)
