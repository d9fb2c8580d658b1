"""Acceptance tests of the reworked library, through what a user sees: `track()`, the tracker's
methods, the offline W&B run read back from disk, and a script's exit when it is stopped."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from gradient_lab import Tracker, TrackingError, track
from gradient_lab.health import Verdict
from tests.support.platforms import skip_on
from tests.support.wandb_runs import history, inspect, run_dirs

ROOT = Path(__file__).resolve().parents[1]


def layer_norms(model: nn.Module) -> dict[str, float]:
    """Per module owning parameters with a gradient: sqrt of the sum of their squared norms."""
    norms = {}
    for name, module in model.named_modules():
        grads = [p.grad for p in module.parameters(recurse=False) if p.grad is not None]
        if grads:
            norms[name] = math.sqrt(sum(g.norm().item() ** 2 for g in grads))
    return norms


@pytest.mark.slow
def test_each_gan_network_logs_the_norms_its_own_optimizer_applied(
    wandb_offline: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    nets = {
        "netG": nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6)),
        "netD": nn.Sequential(
            nn.Linear(6, 8), nn.LeakyReLU(0.2), nn.Linear(8, 4), nn.LeakyReLU(0.2), nn.Linear(4, 1)
        ),
    }
    netG, netD = nets["netG"], nets["netD"]
    optimizers = {key: torch.optim.Adam(net.parameters(), lr=2e-3) for key, net in nets.items()}
    owner = {id(opt): key for key, opt in optimizers.items()}
    seen: dict[tuple[int, str], dict[str, float]] = {}  # (step, network): norms applied
    clock = {"step": -1}

    def spy(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        key = owner[id(optimizer)]
        seen[clock["step"], key] = layer_norms(nets[key])

    bce, ones, zeros = nn.BCEWithLogitsLoss(), torch.ones(8, 1), torch.zeros(8, 1)
    polluted = {}  # netD's .grad when the step ends: what measuring there would log
    hook = register_optimizer_step_pre_hook(spy)
    try:
        with track("dcgan", {}, nets, models_dir=tmp_path, log_every=5) as tracker:
            for step in range(20):
                clock["step"] = step
                real, fake = torch.randn(8, 6), netG(torch.randn(8, 4))
                optimizers["netD"].zero_grad()
                loss_d = bce(netD(real), ones) + bce(netD(fake.detach()), zeros)
                loss_d.backward()
                optimizers["netD"].step()
                optimizers["netG"].zero_grad()
                loss_g = bce(netD(fake), ones)
                loss_g.backward()  # also fills netD's .grad, after netD stepped
                optimizers["netG"].step()
                polluted[step] = layer_norms(netD)
                tracker.step(step, loss_d=loss_d.detach(), loss_g=loss_g.detach())
    finally:
        hook.remove()
    (run_dir,) = run_dirs(wandb_offline)
    rows = {row["_step"]: row for row in history(run_dir) if "loss_d" in row}
    assert sorted(rows) == [4, 9, 14, 19]
    for step, row in rows.items():
        for key in nets:
            prefix = f"grad_norm/{key}/"
            logged = {
                k.removeprefix(prefix): v
                for k, v in row.items()
                if k.startswith(prefix) and k != f"{prefix}first_to_last"
            }
            expected = seen[step, key]
            assert set(logged) == set(expected), (step, key)
            for layer, norm in expected.items():
                assert logged[layer] == pytest.approx(norm, rel=1e-5), (step, key, layer)
            assert row[f"nonfinite/{key}/total"] == 0
        assert row["grad_norm/netD/0"] != pytest.approx(polluted[step]["0"], rel=1e-3)
    summary = inspect(run_dir)["summary"]
    for key in nets:
        assert summary[f"gradients/{key}/health"] in {"healthy", "vanishing", "exploding"}
        assert f"gradients/{key}/first_to_last" in summary


@pytest.mark.slow
def test_a_second_track_inside_the_first_is_refused_and_the_first_run_is_unharmed(
    wandb_offline: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    outer_model, inner_model = nn.Linear(3, 2), nn.Linear(3, 2)
    with track("twice", {}, outer_model, models_dir=tmp_path, log_every=1) as tracker:
        with (
            pytest.raises(TrackingError) as refused,
            track("twice", {}, inner_model, models_dir=tmp_path),
        ):
            pytest.fail("a second run was opened")
        outer_model(torch.ones(2, 3)).sum().backward()
        tracker.step(0, loss=torch.tensor(1.0))
        saved = tracker.save_weights()
    message = str(refused.value)
    assert 'track(experiment, config, {"netG": netG, "netD": netD})' in message
    assert "wandb.errors" not in message and "Traceback" not in message
    (run_dir,) = run_dirs(wandb_offline)
    assert inspect(run_dir)["exit_code"] == 0
    assert saved == tmp_path / "twice.pt" and sorted(tmp_path.glob("*.pt")) == [saved]
    weights = torch.load(saved, weights_only=True)
    for name, value in outer_model.state_dict().items():
        assert torch.equal(weights[name], value)


def test_an_lstm_language_model_compares_the_lstm_with_the_decoder_not_the_embedding() -> None:
    torch.manual_seed(0)

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.lstm = nn.LSTM(8, 16, batch_first=True)
            self.decoder = nn.Linear(16, 20)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.decoder(self.lstm(self.embed(tokens))[0])
            return out

    model = LM()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = Tracker({"": model}, None, name="lm", log_every=1)
    try:
        tokens = torch.randint(0, 20, (4, 7))
        logits = model(tokens).flatten(0, 1)
        nn.CrossEntropyLoss()(logits, tokens.roll(-1, 1).flatten()).backward()
        norms = layer_norms(model)
        optimizer.step()
        tracker.step(0, loss=torch.tensor(1.0))
    finally:
        tracker.close(0)
    row = tracker.last_row
    assert tracker.last_row_step == 0
    assert row["grad_norm/lstm"] == pytest.approx(norms["lstm"], rel=1e-5)
    assert row["grad_norm/first_to_last"] == pytest.approx(
        norms["lstm"] / norms["decoder"], rel=1e-5
    )
    assert row["grad_norm/first_to_last"] != pytest.approx(norms["embed"] / norms["decoder"])


def test_the_verdict_is_how_the_run_ended_with_an_early_dip_on_record() -> None:
    dipped = Verdict()
    for step in range(9, 100, 10):
        dipped.check(step, 0.005 if step <= 29 else 0.4)
    summary = dipped.summary("gradients/")
    assert summary["gradients/health"] == "healthy"
    assert summary["gradients/vanishing/first_step"] == 9
    assert summary["gradients/vanishing/last_step"] == 29
    assert summary["gradients/first_to_last"] == pytest.approx(0.4)
    vanished = Verdict()
    for step in range(9, 100, 10):
        vanished.check(step, 1e-4)
    assert vanished.health == "vanishing"


@pytest.mark.slow
def test_restore_brings_back_the_model_the_optimizer_and_plain_values(
    wandb_offline: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    checkpoint = tmp_path / "run.ckpt"
    with track("resume", {}, model, models_dir=tmp_path, log_every=2) as tracker:
        for step in range(4):
            model(torch.randn(4, 3)).pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
            tracker.step(step, loss=torch.tensor(float(step)))
        tracker.save_checkpoint(checkpoint, model=model, optimizer=optimizer, lr=0.1)
    again = nn.Linear(3, 1)
    again_optimizer = torch.optim.SGD(again.parameters(), lr=0.1, momentum=0.9)
    with track("resume", {}, again, models_dir=tmp_path, resume=checkpoint) as tracker:
        start = tracker.restore(model=again, optimizer=again_optimizer, lr=None)
    assert start == 4
    assert tracker.restored["lr"] == 0.1
    assert torch.equal(again.weight, model.weight) and torch.equal(again.bias, model.bias)
    momentum = again_optimizer.state[again.weight]["momentum_buffer"]
    assert torch.equal(momentum, optimizer.state[model.weight]["momentum_buffer"])


def test_save_weights_on_another_rank_returns_rank_0s_path_and_writes_nothing(
    tmp_path: Path,
) -> None:
    model = nn.Linear(2, 1)
    one = Tracker({"": model}, None, name="x", models_dir=tmp_path)
    several = Tracker({"netG": model, "netD": nn.Linear(1, 1)}, None, name="y", models_dir=tmp_path)
    try:
        assert one.save_weights() == tmp_path / "x.pt"
        assert several.save_weights() == tmp_path / "y"
    finally:
        one.close(0)
        several.close(0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_value_logged_after_the_last_step_keeps_the_last_partial_interval(
    wandb_offline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with track("tail", {}, model, models_dir=tmp_path, log_every=10) as tracker:
        for step in range(15):
            model(torch.randn(4, 3)).pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
            tracker.step(step, loss=torch.tensor(float(step)))
        tracker.log(15, val=torch.tensor(0.5))
    (run_dir,) = run_dirs(wandb_offline)
    rows = history(run_dir)
    losses = {row["_step"]: row["loss"] for row in rows if "loss" in row}
    assert losses == {9: pytest.approx(4.5), 14: pytest.approx(12.0)}
    assert {row["_step"]: row["val"] for row in rows if "val" in row} == {15: 0.5}
    assert "dropped" not in capsys.readouterr().err


STOPPING_SCRIPT = """
import signal, sys
from pathlib import Path
import torch
from torch import nn
from gradient_lab import track

signum, exit_on_stop = getattr(signal, sys.argv[1]), sys.argv[2] == "exit"
folder = Path(sys.argv[3])
torch.manual_seed(0)
model = nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with track("stop", {}, model, models_dir=folder, log_every=2, exit_on_stop=exit_on_stop) as tracker:
    for step in tracker.steps(range(1000)):
        model(torch.randn(4, 3)).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        tracker.step(step, loss=torch.tensor(float(step)))
        if step == 3:
            signal.raise_signal(signum)
    tracker.save_checkpoint(folder / "stop.ckpt", model=model, optimizer=optimizer)
print("went on after the block with exit code", tracker.stop.exit_code)
"""


POSIX = skip_on("win32", reason="Windows delivers no SIGTERM")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signame", "on_stop", "returncode"),
    [
        ("SIGINT", "exit", 130),
        pytest.param("SIGTERM", "exit", -15, marks=POSIX),
        ("SIGINT", "go-on", 0),
    ],
)
def test_a_stopped_script_saves_closes_says_so_and_ends_as_the_signal_would(
    signame: str, on_stop: str, returncode: int, tmp_path: Path, child_env: dict[str, str]
) -> None:
    script = tmp_path / "train.py"
    script.write_text(STOPPING_SCRIPT)
    runs = tmp_path / "runs"
    env = {k: v for k, v in child_env.items() if not k.startswith("WANDB_")}
    env |= {"WANDB_MODE": "offline", "WANDB_DIR": str(runs), "WANDB_SILENT": "true"}
    env |= {
        f"WANDB_{kind}_DIR": str(tmp_path / kind.lower()) for kind in ("CONFIG", "DATA", "CACHE")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    command = [sys.executable, str(script), signame, on_stop, str(tmp_path)]
    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    signum = getattr(signal, signame)
    stops = [line for line in result.stderr.splitlines() if line.startswith("Stopped by")]
    said = "Ctrl-C (SIGINT)" if signame == "SIGINT" else "SIGTERM"
    assert len(stops) == 1, result.stderr
    checkpoint = tmp_path / "stop.ckpt"
    assert stops[0].startswith(f"Stopped by {said} at step 4: checkpoint saved to {checkpoint}")
    assert "W&B run closed (offline: " in stops[0] and "Resume: " in stops[0]
    assert checkpoint.is_file()
    (run_dir,) = run_dirs(runs)
    assert inspect(run_dir)["exit_code"] == 128 + signum
    went_on = f"went on after the block with exit code {128 + signum}" in result.stdout
    assert went_on == (on_stop == "go-on"), result.stdout
    # As the signal itself would have ended the script: Ctrl-C a KeyboardInterrupt, exit 130.
    assert result.returncode == returncode, result.stderr
    assert result.stderr.rstrip().endswith("KeyboardInterrupt") == (returncode == 130)
