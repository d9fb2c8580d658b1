"""The W&B logging layer: modes, run folders, provenance, gradient norms, reuse by a script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from experiments import tiny_regression
from gradient_lab import gradients, provenance, tracking
from tests.wandb_runs import artifacts, history, inspect, run_dirs


@pytest.mark.parametrize(
    ("mode", "env", "expected"),
    [
        (None, {}, "offline"),
        (None, {"WANDB_API_KEY": "k"}, "online"),
        (None, {"WANDB_MODE": "disabled", "WANDB_API_KEY": "k"}, "disabled"),
        (None, {"WANDB_MODE": "dryrun"}, "offline"),
        ("online", {"WANDB_MODE": "offline"}, "online"),
    ],
)
def test_mode_is_offline_unless_configured(
    mode: str | None, env: dict[str, str], expected: str
) -> None:
    assert tracking.resolve_mode(mode, env) == expected


def test_unknown_mode_and_unwritable_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(tracking.TrackingError, match="Unknown W&B mode 'sometimes'"):
        tracking.resolve_mode("sometimes", {})
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(tracking.TrackingError, match="pass a writable --run-dir"):
        tracking.resolve_run_dir(blocker / "runs", {})
    assert tracking.resolve_run_dir(None, {"WANDB_DIR": str(tmp_path / "w")}) == tmp_path / "w"


def test_data_version_comes_from_the_dvc_file(tmp_path: Path) -> None:
    dvc = tmp_path / "data.dvc"
    assert provenance.data_version(dvc) == "untracked"
    dvc.write_text("outs:\n- md5: 3f2a1b.dir\n  size: 10\n  path: data\n", encoding="utf-8")
    assert provenance.data_version(dvc) == "3f2a1b.dir"
    dvc.write_text("outs: []\n", encoding="utf-8")
    assert provenance.data_version(dvc) == "unknown"


def test_layer_norms_match_a_per_parameter_computation() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    model(torch.randn(8, 3)).sum().backward()
    norms = gradients.LayerGradNorms(model)
    assert norms.names == ["0", "2"]
    expected = [torch.cat([p.grad.flatten() for p in m.parameters()]).norm() for m in model[::2]]  # type: ignore[union-attr]
    assert torch.allclose(norms.compute(), torch.stack(expected))
    model.zero_grad(set_to_none=True)
    assert norms.compute().tolist() == [0.0, 0.0]
    with pytest.raises(tracking.TrackingError, match="no trainable parameters"):
        gradients.LayerGradNorms(torch.nn.ReLU())


def test_health_thresholds() -> None:
    assert gradients.gradient_health(1e-5) == "vanishing"
    assert gradients.gradient_health(0.5) == "healthy"
    assert gradients.gradient_health(1e5) == "exploding"


class FakeOnlineRun:
    """Stands in for an online W&B run (no W&B server is reachable here): records alerts."""

    def __init__(self) -> None:
        self.summary: dict[str, Any] = {}
        self.alerts: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []

    def alert(self, **kwargs: Any) -> None:
        self.alerts.append(kwargs)

    def log(self, row: dict[str, Any], step: int) -> None:
        self.rows.append(row)


def test_exploding_gradients_warn_once_and_alert_when_online(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    run = FakeOnlineRun()
    tracker = tracking.Tracker(run, model, "online", log_every=1, models_dir=Path("unused"))
    for step in range(3):
        model.zero_grad()
        model[0].weight.grad = torch.full((2, 2), 1e4)
        model[1].weight.grad = torch.full((2, 2), 1e-2)
        tracker.step(step, loss=torch.tensor(1.0 + step), lr=0.1)
    assert [row["loss"] for row in run.rows] == [1.0, 2.0, 3.0]
    assert run.summary["gradients/exploding"] is True
    assert len(run.alerts) == 1 and "exploding" in run.alerts[0]["title"].lower()
    assert capsys.readouterr().err.count("WARNING: exploding gradients") == 1


@pytest.mark.slow
def test_a_second_script_is_tracked_by_the_same_layer(
    wandb_offline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tiny_regression.main(["--steps", "30", "--models-dir", str(tmp_path / "m")]) == 0
    (run_dir,) = run_dirs(wandb_offline)
    assert str(run_dir) in capsys.readouterr().out
    run = inspect(run_dir)
    assert run["config"]["steps"] == 30 and "git_commit" in run["config"]["provenance"]
    rows = history(run_dir)
    assert [row["_step"] for row in rows] == [9, 19, 29]
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert all("grad_norm/Linear" in row for row in rows)
    assert artifacts(run_dir)[0]["type"] == "model"
    assert (tmp_path / "m" / "tiny-regression.pt").is_file()


@pytest.mark.slow
def test_disabled_mode_writes_no_run(wandb_offline: Path, tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 1)
    with tracking.track("quiet", {}, model, mode="disabled", models_dir=tmp_path) as tracker:
        model(torch.ones(1, 2)).sum().backward()
        tracker.step(9, loss=torch.tensor(0.5))
    assert tracker.last_norms["Linear"] > 0
    assert not run_dirs(wandb_offline)


def test_empty_experiment_name_is_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(tracking.TrackingError, match="experiment name is empty"),
        tracking.track("", {}, torch.nn.Linear(1, 1), mode="disabled"),
    ):
        pass  # pragma: no cover


def test_tiny_script_rejects_bad_steps(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        tiny_regression.main(["--steps", "0"])
    assert "--steps must be at least 1" in capsys.readouterr().err


class RecordingRun:
    """Records what a Tracker hands to `run.log` (rows and their steps)."""

    def __init__(self) -> None:
        self.summary: dict[str, Any] = {}
        self.logged: list[tuple[int, dict[str, Any]]] = []

    def log(self, row: dict[str, Any], step: int) -> None:
        self.logged.append((step, row))


def test_histograms_match_what_wandb_watch_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    from wandb.integration.torch.wandb_torch import TorchHistory

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 4), torch.nn.Linear(4, 2))
    model(torch.randn(8, 6)).sigmoid().sum().backward()
    model[0].bias.grad.fill_(0.25)  # type: ignore[union-attr]  # constant: one bin
    model[1].bias.grad[0] = float("inf")  # type: ignore[index]  # left out, as watch does
    model[2].bias.grad.fill_(float("nan"))  # type: ignore[union-attr]  # nothing finite: none
    ours = gradients.LayerGradNorms(model).histograms()

    class Capture:
        def __init__(self) -> None:
            self.rows: dict[str, Any] = {}

        def _log(self, row: dict[str, Any], commit: bool) -> None:
            self.rows.update(row)

    capture = Capture()
    monkeypatch.setattr(tracking.wandb, "run", capture)
    history = TorchHistory()
    for name, parameter in model.named_parameters():
        history.log_tensor_stats(parameter.grad, f"gradients/{name}")
    theirs = capture.rows
    assert sorted(ours) == sorted(theirs) and "gradients/2.bias" not in ours
    for key, histogram in ours.items():
        assert histogram.histogram == pytest.approx(theirs[key].histogram), key
        assert histogram.bins == pytest.approx(theirs[key].bins, abs=1e-6), key
    assert ours["gradients/0.bias"].histogram == [5.0]


def test_histograms_come_with_the_row_of_each_watch_interval() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    run = RecordingRun()
    tracker = tracking.Tracker(run, model, "offline", 2, Path("unused"), watch_every=5)
    for step in range(12):
        model.zero_grad()
        model(torch.ones(2, 3)).sum().backward()
        tracker.step(step, loss=torch.tensor(float(step)))
    assert [step for step, _ in run.logged] == [1, 3, 5, 7, 9, 11]
    with_histograms = [step for step, row in run.logged if "gradients/0.weight" in row]
    assert with_histograms == [5, 9]  # the rows whose interval reached the 5th, 10th step
    assert [row["loss"] for _, row in run.logged] == [0.5, 2.5, 4.5, 6.5, 8.5, 10.5]


def test_background_calls_run_in_order_and_report_a_failure() -> None:
    done: list[int] = []
    calls = tracking.BackgroundCalls()
    for n in range(50):
        calls.put(lambda n=n: done.append(n))
    calls.close()
    assert done == list(range(50))

    def refuse() -> None:
        raise ValueError("service gone")

    calls = tracking.BackgroundCalls()
    calls.put(refuse)
    calls.put(lambda: done.append(-1))  # dropped after the failure
    with pytest.raises(tracking.TrackingError, match="A W&B call failed: service gone"):
        calls.close()
    assert -1 not in done
