"""The demo shows vanishing gradients in numbers, tracked in real offline W&B runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments import demo_vanishing_gradients as demo
from gradient_lab import Tracker, provenance, synthetic_data
from gradient_lab.health import VANISHING_RATIO
from tests.conftest import ROOT
from tests.support.platforms import skip_on
from tests.support.wandb_runs import artifacts, history, inspect, run_dirs

TINY = ["--depth", "10", "--width", "16", "--epochs", "3", "--batch-size", "64",
        "--log-every", "2", "--watch-every", "4", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    synthetic_data.generate(folder, n_samples=256)
    return folder


def options(data_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [*TINY, "--data-dir", str(data_dir), "--models-dir", str(tmp_path / "models"), *extra]


def untracked(activation: str, seed: int = 0, depth: int = 12) -> demo.RunResult:
    cfg = demo.Config(activations=[activation], depth=depth, width=32, epochs=2, seed=seed)
    data = synthetic_data.DataSet(*synthetic_data.make_spirals(256, seed=seed), path=Path("mem"))
    trainer = demo.prepare(cfg, activation, data, demo.pick_device("cpu"))
    return demo.train(trainer, progress=False)


def test_sigmoid_gradients_vanish_and_relu_gradients_do_not() -> None:
    sigmoid, relu = untracked("sigmoid"), untracked("relu")
    assert sigmoid.ratio < 1e-2 * relu.ratio
    assert sigmoid.ratio < VANISHING_RATIO
    assert 0.1 < relu.ratio < 10
    norms = list(sigmoid.layer_norms.values())
    # Orders of magnitude shrink toward the input, layer by layer.
    assert norms[0] < norms[len(norms) // 2] < norms[-1]


def test_residual_connections_rescue_sigmoid() -> None:
    cfg = demo.Config(activations=["sigmoid"], depth=12, width=32, epochs=1, residual=True)
    data = synthetic_data.DataSet(*synthetic_data.make_spirals(256), path=Path("mem"))
    result = demo.train(demo.prepare(cfg, "sigmoid", data, demo.pick_device("cpu")), progress=False)
    assert result.ratio > 1e3 * untracked("sigmoid").ratio


def test_training_is_deterministic_given_a_seed() -> None:
    first, again, other = untracked("tanh", 3, 4), untracked("tanh", 3, 4), untracked("tanh", 4, 4)
    assert (first.loss, first.layer_norms) == (again.loss, again.layer_norms)
    assert first.loss != other.loss


@pytest.mark.slow
def test_tracked_run_records_config_history_and_weights(
    wandb_offline: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = demo.main(options(data_dir, tmp_path, "--activation", "sigmoid", "relu", "--seed", "7"))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "vanishing gradients" in err  # the console warning
    runs = {inspect(d)["config"]["activation"]: d for d in run_dirs(wandb_offline)}
    assert set(runs) == {"sigmoid", "relu"}
    for activation, run_dir in runs.items():
        run = inspect(run_dir)
        assert str(run_dir) in out
        assert (run["state"], run["exit_code"]) == ("finished", 0)
        config = run["config"]
        assert (config["depth"], config["width"], config["seed"]) == (10, 16, 7)
        assert config["provenance"]["device"] == "cpu"
        assert config["provenance"]["torch"] == torch.__version__
        assert len(config["provenance"]["git_commit"]) == 40
        # The demo read data from a temporary folder; the version is what data.dvc records.
        assert config["provenance"]["data_version"] == provenance.data_version(ROOT / "data.dvc")
        rows = [row for row in history(run_dir) if "loss" in row]
        assert len(rows) == 6  # 3 epochs x 4 steps, logged every 2
        assert [row["_step"] for row in rows] == [1, 3, 5, 7, 9, 11]
        for layer in range(1, 11):
            assert all(f"grad_norm/layers.fc{layer:02d}" in row for row in rows)
        assert any(k.startswith("gradients/") and "fc01.weight" in k for k in run["summary"])
        assert "grad_norm_per_layer" in run["summary"] and "data/sample" in run["summary"]
        (artifact,) = artifacts(run_dir)
        assert artifact["type"] == "model"
        assert artifact["manifest"]["contents"][0]["path"] == f"vanishing-gradients-{activation}.pt"
        assert (tmp_path / "models" / f"vanishing-gradients-{activation}.pt").is_file()
    sigmoid, relu = inspect(runs["sigmoid"])["summary"], inspect(runs["relu"])["summary"]
    assert sigmoid["gradients/vanishing/first_step"] == 1  # the first logging step
    assert sigmoid["gradients/health"] == "vanishing"
    assert relu["gradients/health"] == "healthy"
    assert not any(key.startswith("gradients/vanishing") for key in relu)
    assert sigmoid["final_first_to_last"] < 1e-2 < relu["final_first_to_last"]
    assert not (tmp_path / "models" / "vanishing-gradients.ckpt").exists()


def stop_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliver a real SIGINT to this process while the loop is at `step`."""
    original = Tracker.step

    def step_then_signal(self: Tracker, at: int, **metrics: object) -> None:
        original(self, at, **metrics)  # type: ignore[arg-type]
        if at == step:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Tracker, "step", step_then_signal)


@pytest.mark.slow
def test_interrupt_saves_a_checkpoint_and_resume_finishes_the_same_run(
    wandb_offline: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    import wandb

    args = options(data_dir, tmp_path, "--activation", "relu")
    stop_at(4, monkeypatch)
    assert demo.main(args) == 128 + signal.SIGINT
    assert "--resume" in capsys.readouterr().err
    checkpoint = tmp_path / "models" / "vanishing-gradients.ckpt"
    assert torch.load(checkpoint, weights_only=True)["gradient_lab"]["next_step"] == 5
    assert not (tmp_path / "models" / "vanishing-gradients-relu.pt").exists()
    (first,) = run_dirs(wandb_offline)
    assert inspect(first)["exit_code"] == 130
    monkeypatch.undo()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(wandb_offline))
    wandb.teardown()

    assert demo.main([*args, "--resume"]) == 0
    assert not checkpoint.exists()
    second = next(d for d in run_dirs(wandb_offline) if d != first)
    assert inspect(second)["run_id"] == inspect(first)["run_id"]
    assert [r["_step"] for r in history(second) if "loss" in r] == [5, 7, 9, 11]
    resumed = torch.load(tmp_path / "models" / "vanishing-gradients-relu.pt", weights_only=True)

    # An uninterrupted run with the same seed ends with the very same weights.
    wandb.teardown()
    assert demo.main([*options(data_dir, tmp_path / "straight", "--activation", "relu")]) == 0
    straight = torch.load(tmp_path / "straight" / "models" / "vanishing-gradients-relu.pt",
                          weights_only=True)  # fmt: skip
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


@pytest.mark.slow
@skip_on("win32", reason="Windows' os.kill terminates; it delivers no SIGTERM")
def test_sigterm_to_a_running_training_saves_a_checkpoint(
    wandb_offline: Path, data_dir: Path, tmp_path: Path, child_env: dict[str, str]
) -> None:
    child_env |= {"WANDB_MODE": "offline", "WANDB_DIR": str(wandb_offline), "WANDB_SILENT": "true"}
    args = options(data_dir, tmp_path, "--activation", "sigmoid", "--epochs", "100000")
    proc = subprocess.Popen([sys.executable, "-m", "experiments.demo_vanishing_gradients", *args],
                            cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("Training vanishing-gradients-sigmoid")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "checkpoint saved" in err
    assert (tmp_path / "models" / "vanishing-gradients.ckpt").is_file()
    (run_dir,) = run_dirs(wandb_offline)
    assert inspect(run_dir)["exit_code"] == 128 + signal.SIGTERM


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--activation", "swish"], "invalid choice: 'swish'"),
        (["--epochs", "-1"], "--epochs must be at least 1, got -1"),
        (["--depth", "1"], "--depth must be at least 2"),
        (["--name", " "], "--name must not be empty"),
        (["--lr", "0"], "--lr must be positive"),
    ],
)
def test_bad_options_exit_with_a_clear_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        demo.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unwritable_run_folder_and_missing_checkpoint_fail_cleanly(
    wandb_offline: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    assert demo.main(options(data_dir, tmp_path, "--run-dir", str(blocker / "runs"))) == 2
    assert "is not writable" in capsys.readouterr().err
    assert demo.main(options(data_dir, tmp_path, "--resume")) == 2
    assert "Nothing to resume" in capsys.readouterr().err
    assert not run_dirs(wandb_offline)
    assert not (tmp_path / "models").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_forcing_cuda_without_one_fails_cleanly(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(options(data_dir, tmp_path, "--device", "cuda")) == 2
    assert "sees no CUDA device" in capsys.readouterr().err


@pytest.mark.slow
def test_metrics_file_holds_the_final_figures_per_activation(
    data_dir: Path, tmp_path: Path
) -> None:
    metrics = tmp_path / "metrics" / "demo.json"
    argv = options(data_dir, tmp_path, "--activation", "sigmoid", "relu", "--wandb-mode",
                   "disabled", "--metrics", str(metrics))  # fmt: skip
    assert demo.main(argv) == 0
    figures = json.loads(metrics.read_text(encoding="utf-8"))
    assert set(figures) == {"sigmoid", "relu"}
    assert figures["sigmoid"]["first_to_last"] < 1e-2 * figures["relu"]["first_to_last"]
    assert 0.0 <= figures["relu"]["accuracy"] <= 1.0
    assert not list(metrics.parent.glob("*.part"))
