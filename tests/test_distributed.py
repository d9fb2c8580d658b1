"""Distributed training with torch's own launcher: one W&B run per job, the model's own names."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

from experiments import demo_vanishing_gradients as demo
from gradient_lab import distributed, synthetic_data, tracking
from gradient_lab.gradients import LayerGradNorms
from tests.conftest import ROOT, measured_in
from tests.support.platforms import skip_on
from tests.support.wandb_runs import history, inspect, run_dirs, run_id


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[None]:
    """A real gloo process group of one process (what torchrun sets up, at world size 1)."""
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_ddp_and_compile_wrappers_are_seen_through(process_group: None) -> None:
    model = small()
    wrapped = torch.compile(nn.parallel.DistributedDataParallel(model))
    assert all(k.startswith("_orig_mod.module.") for k in wrapped.state_dict())
    assert distributed.unwrap(wrapped) is model
    assert distributed.state_dict(wrapped).keys() == model.state_dict().keys()
    assert LayerGradNorms(wrapped).names == ["0", "1", "2"]
    assert (
        distributed.clean_name("a._fsdp_wrapped_module.b._checkpoint_wrapped_module.c") == "a.b.c"
    )
    assert (distributed.world_size(), distributed.backend(), distributed.rank()) == (1, "gloo", 0)


def test_ranks_other_than_zero_open_no_run_and_name_rank_zeros_files(
    wandb_offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "1")  # as torchrun sets it
    monkeypatch.setenv("WORLD_SIZE", "2")
    model = small()
    with tracking.track("job", {}, model, models_dir=tmp_path / "models") as tracker:
        assert not tracker.logs
        model(torch.randn(4, 3)).sum().backward()
        tracker.step(9, loss=torch.tensor(1.0), lr=[0.1])
        tracker.summary(x=1)
        named = tracker.save_weights(model, "net")
        default = tracker.save_weights()  # rank 0 writes models/<run name>.pt
    assert named == tmp_path / "models" / "net.pt" and not named.parent.exists()
    assert default == tmp_path / "models" / "job.pt"
    assert not (wandb_offline / "wandb").exists()
    with pytest.raises(tracking.TrackingError, match="Rank 1 keeps no W&B run"):
        _ = tracker.run_dir


def torchrun() -> list[str]:
    found = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert found, "torchrun is not installed next to this Python"
    return [found, "--standalone", "--nproc_per_node=2"]


def launch_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in measured_in(ROOT, os.environ).items() if not k.startswith("WANDB_")}
    # The checkout's library first, as an editable install has it.
    path = [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]
    return env | {"WANDB_MODE": "offline", "WANDB_SILENT": "true",
                  "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
                  "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
                  "PYTHONPATH": os.pathsep.join(p for p in path if p)}  # fmt: skip


def seen_by_a_terminal(command: list[str], cwd: Path, until: str, seconds: float = 8) -> str:
    """What a command shows in a pseudo-terminal (a TUI needs one) until it shows `until`,
    or in its first seconds: the viewer is stopped as soon as the awaited text is there."""
    import pty  # POSIX only

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(cwd)
        os.execv(command[0], command)
    out, shown, end = b"", "", time.monotonic() + seconds
    while time.monotonic() < end and until not in shown:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
            shown = re.sub(r"\x1b\[[0-9;?>]*[a-zA-Z]", "", out.decode(errors="replace"))
    # The whole session the terminal leads: the CLI's own viewer process (wandb-core) outlives
    # a signal to the CLI alone and would run on, an orphan.
    os.killpg(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    os.close(fd)
    deadline = time.monotonic() + 10
    while group_runs(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_runs(pid), "the viewer left processes running after it was stopped"
    return shown


def group_runs(pgid: int) -> bool:
    """Whether a process of the group still runs (a zombie, ended but not yet reaped, does not;
    on systems without /proc every member counts)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            return True
    return False


@pytest.mark.slow
@pytest.mark.timeout(1200)  # two jobs of two processes each, one after another
@skip_on("win32", reason="torchrun's store needs libuv, absent there")
def test_torchrun_launches_of_the_demo_make_one_run_each_with_the_models_names(
    tmp_path: Path,
) -> None:
    """Two jobs into the same folders: the second finds the first's run and weights there and
    still makes one new run of its own (no reuse, no second run) and replaces the weights
    whole. A third job would find nothing the second did not."""
    synthetic_data.generate(tmp_path / "data", n_samples=64)
    options = ["--activation", "relu", "--depth", "3", "--width", "4", "--epochs", "2",
               "--batch-size", "16", "--log-every", "2", "--watch-every", "4", "--no-progress",
               "--data-dir", str(tmp_path / "data"), "--models-dir", str(tmp_path / "models"),
               "--run-dir", str(tmp_path)]  # fmt: skip
    known: set[Path] = set()
    for launch in range(2):
        result = subprocess.run(
            [*torchrun(), "-m", "experiments.demo_vanishing_gradients", *options],
            cwd=ROOT, env=launch_env(tmp_path), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, f"launch {launch}: {result.stderr[-3000:]}"
        new = set(run_dirs(tmp_path)) - known
        assert len(new) == 1, f"launch {launch} made {len(new)} runs"
        known |= new
        (run_dir,) = new
        assert result.stdout.count("Training vanishing-gradients-relu") == 1  # rank 0 speaks
        run = inspect(run_dir)
        assert run["config"]["distributed"] == {"world_size": 2, "backend": "gloo"}
        rows = [row for row in history(run_dir) if "loss" in row]
        # 32 samples per rank, 2 steps per epoch, 2 epochs; a single process would take 8 steps
        assert [row["_step"] for row in rows] == [1, 3]
        keys = {k for row in rows for k in row} | set(run["summary"])
        assert "grad_norm/layers.fc01" in keys and not [k for k in keys if "module." in k]
        weights = torch.load(tmp_path / "models" / "vanishing-gradients-relu.pt", weights_only=True)
        demo.build_model(2, 3, 3, 4, "relu", init="auto", residual=False).load_state_dict(weights)
        assert not list((tmp_path / "models").glob(".*partial"))
    hint = next(line for line in result.stdout.splitlines() if line.startswith("Look at a run: "))
    command = hint.removeprefix("Look at a run: ").split()
    assert command[1:] == ["leet", str(run_dir)]
    if sys.platform != "win32":  # the viewer needs a terminal; Linux and macOS can fake one
        shown_id = f"ID: {run_id(run_dir)}"
        # From the run's folder, not the checkout: the CLI writes its debug log to ./wandb/.
        viewer = [str((ROOT / command[0]).resolve()), *command[1:]]
        shown = seen_by_a_terminal(viewer, tmp_path, shown_id)
        assert shown_id in shown, shown[-2000:]


@pytest.mark.slow
@skip_on("win32", reason="torchrun's store needs libuv, absent there")
def test_a_layer_ddp_does_not_synchronise_stops_the_job_with_one_sentence(
    tmp_path: Path,
) -> None:
    """Frozen before DDP wraps the model, then unfrozen: each rank trains it on its own
    shard. The ranks' gradients for it differ at the first logging step after unfreezing
    (step 9, the script logging every 10 steps), which is also the jobs' last step. The
    script's own way (frozen after wrapping) trains the same layer in step on both ranks:
    test_foreign_project's torchrun launches run it so, from another repository."""
    script = ROOT / "tests" / "foreign_project" / "train_cnn.py"
    wrong = subprocess.run(
        [*torchrun(), str(script), "--steps", "10", "--unfreeze-stem-at", "5",
         "--freeze-before-wrap"],
        cwd=tmp_path, env=launch_env(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert wrong.returncode != 0
    assert (
        "TrackingError: Layer stem has a different gradient on each rank at step 9: "
        "DistributedDataParallel does not synchronise it"
    ) in wrong.stderr
    assert "find_unused_parameters=True" in wrong.stderr
