"""The W&B logging layer: modes, run folders, provenance, gradient norms, reuse by a script."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from experiments import tiny_regression
from gradient_lab import gradients, health, provenance, sink, tracking
from tests.support.wandb_runs import (
    RecordingRun,
    artifacts,
    history,
    inspect,
    run_dirs,
    tracker_on,
)


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
    assert sink.resolve_mode(mode, env) == expected


def test_unknown_mode_and_unwritable_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(tracking.TrackingError, match="Unknown W&B mode 'sometimes'"):
        sink.resolve_mode("sometimes", {})
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(tracking.TrackingError, match="pass a writable --run-dir"):
        sink.resolve_run_dir(blocker / "runs", {})
    assert sink.resolve_run_dir(None, {"WANDB_DIR": str(tmp_path / "w")}) == tmp_path / "w"


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
    names, values, _ = norms.compute()
    assert names == ["0", "2"] and torch.allclose(values, torch.stack(expected))
    model.zero_grad(set_to_none=True)
    assert norms.compute().names == []  # no gradient: nothing, not zeros
    with pytest.raises(tracking.TrackingError, match="no parameters"):
        gradients.LayerGradNorms(torch.nn.ReLU())


def test_health_thresholds() -> None:
    assert health.gradient_health(1e-5) == "vanishing"
    assert health.gradient_health(0.5) == "healthy"
    assert health.gradient_health(1e5) == "exploding"
    assert health.gradient_health(float("nan")) == "nonfinite"


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
    tracker = tracker_on(run, model, "online", log_every=1)
    for step in range(3):
        model.zero_grad()
        model[0].weight.grad = torch.full((2, 2), 1e4)
        model[1].weight.grad = torch.full((2, 2), 1e-2)
        tracker.step(step, loss=torch.tensor(1.0 + step), lr=0.1)
    assert [row["loss"] for row in run.rows] == [1.0, 2.0, 3.0]
    assert run.summary["gradients/exploding/first_step"] == 0
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


def test_histograms_match_what_wandb_watch_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    from wandb.integration.torch.wandb_torch import TorchHistory

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 4), torch.nn.Linear(4, 2))
    model(torch.randn(8, 6)).sigmoid().sum().backward()
    model[0].bias.grad.fill_(0.25)  # type: ignore[union-attr]  # constant: one bin
    model[1].bias.grad[0] = float("inf")  # type: ignore[index]  # left out, as watch does
    model[2].bias.grad.fill_(float("nan"))  # type: ignore[union-attr]  # nothing finite: none
    import wandb

    norms = gradients.LayerGradNorms(model)
    ours = {
        f"gradients/{name}": wandb.Histogram(np_histogram=histogram)
        for name, histogram in norms.histograms(norms.present()).items()
    }

    class Capture:
        def __init__(self) -> None:
            self.rows: dict[str, Any] = {}

        def _log(self, row: dict[str, Any], commit: bool) -> None:
            self.rows.update(row)

    capture = Capture()
    monkeypatch.setattr(sink.wandb, "run", capture)
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
    tracker = tracker_on(run, model, log_every=2, watch_every=5)
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
    calls = sink.BackgroundCalls()
    for n in range(50):
        calls.put(lambda n=n: done.append(n))
    calls.close()
    assert done == list(range(50))

    def refuse() -> None:
        raise ValueError("service gone")

    calls = sink.BackgroundCalls()
    calls.put(refuse)
    calls.put(lambda: done.append(-1))  # dropped after the failure
    with pytest.raises(tracking.TrackingError, match="A W&B call failed: service gone"):
        calls.close()
    assert -1 not in done


def three_layers() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))


def train_steps(
    model: torch.nn.Module, tracker: tracking.Tracker, steps: range, **metrics: Any
) -> None:
    for step in steps:
        model.zero_grad(set_to_none=True)
        model(torch.randn(8, 4)).pow(2).mean().backward()
        tracker.step(step, loss=torch.tensor(1.0), **metrics)


def test_a_layer_frozen_mid_run_drops_out_without_an_alarm_and_comes_back_when_unfrozen(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = three_layers()
    run = FakeOnlineRun()
    tracker = tracker_on(run, model, "online", log_every=2)
    train_steps(model, tracker, range(4))
    model[0].requires_grad_(False)  # frozen: no gradient from here on
    train_steps(model, tracker, range(4, 8))
    model[0].requires_grad_(True)
    train_steps(model, tracker, range(8, 10))
    series = [[k for k in row if k.startswith("grad_norm/") and k != "grad_norm/first_to_last"]
              for row in run.rows]  # fmt: skip
    everything = ["grad_norm/0", "grad_norm/1", "grad_norm/2"]
    assert series == [everything, everything, everything[1:], everything[1:], everything]
    assert all(row[k] > 0 for row in run.rows for k in row if k.startswith("grad_norm/"))
    assert (
        not run.alerts
        and not tracker.verdicts[""].seen
        and "WARNING" not in capsys.readouterr().err
    )


def test_a_layer_frozen_from_the_start_starts_its_series_when_unfrozen() -> None:
    model = three_layers()
    model[1].requires_grad_(False)
    run = RecordingRun()
    tracker = tracker_on(run, model, log_every=1)
    train_steps(model, tracker, range(2))
    model[1].requires_grad_(True)
    train_steps(model, tracker, range(2, 4))
    assert ["grad_norm/1" in row for _, row in run.logged] == [False, False, True, True]
    histograms = [any(k.startswith("gradients/1.") for k in row) for _, row in run.logged]
    assert histograms == [False] * 4  # watch_every 100: none yet, and none for a frozen layer
    norms = tracker.monitor.models[""]
    assert norms.histograms(norms.present()).keys() >= {"1.weight", "1.bias"}


def test_a_step_without_any_gradient_logs_scalars_and_no_norms() -> None:
    model = three_layers()
    run = RecordingRun()
    tracker = tracker_on(run, model, log_every=1)
    tracker.step(0, loss=torch.tensor(2.0))
    ((_, row),) = run.logged
    assert row == {"loss": 2.0} and tracker.verdicts[""].ratio is None


def test_metric_values_of_every_common_type() -> None:
    import numpy

    model = three_layers()
    run = RecordingRun()
    tracker = tracker_on(run, model, log_every=2)
    scheduler_lrs = [0.1, 0.01]  # what scheduler.get_last_lr() returns for two param groups
    for step, loss in enumerate([torch.tensor(1.0), torch.tensor([3.0])]):
        tracker.step(step, loss=loss, lr=scheduler_lrs, epoch=step, acc=numpy.float32(0.5),
                     mom=numpy.array(0.9), pair=(torch.tensor(1.0), 2))  # fmt: skip
    ((_, row),) = run.logged
    assert row["loss"] == 2.0  # tensors averaged over the interval, even a 1-element one
    assert (row["lr/group0"], row["lr/group1"]) == (0.1, 0.01)
    assert (row["epoch"], row["acc"], row["mom"]) == (1.0, 0.5, pytest.approx(0.9))
    assert (row["pair/group0"], row["pair/group1"]) == (1.0, 2.0)


@pytest.mark.parametrize(
    ("value", "described"),
    [
        ("fast", "not a str"),
        (torch.ones(3), "not a Tensor of shape (3,)"),
        ({"a": "x"}, "not a str"),
        ([0.1, "x"], "not a str"),
        (None, "not a NoneType"),
    ],
)
def test_other_metric_values_are_one_clear_type_error(value: object, described: str) -> None:
    tracker = tracker_on(RecordingRun(), three_layers(), log_every=1)
    with pytest.raises(TypeError, match=r"^Metric '\w+(/group1|/a)?' must be a number, .*") as info:
        tracker.step(0, loss=value)
    assert str(info.value).endswith(f"{described}.") and "\n" not in str(info.value)


def test_config_may_be_a_mapping_a_namespace_or_a_dataclass() -> None:
    import argparse
    import dataclasses

    from gradient_lab.values import config_dict

    @dataclasses.dataclass
    class Settings:
        lr: float = 0.1
        layers: list[int] = dataclasses.field(default_factory=lambda: [1, 2])

    assert config_dict({"lr": 0.1}) == {"lr": 0.1}
    assert config_dict(argparse.Namespace(lr=0.1, name="x")) == {"lr": 0.1, "name": "x"}
    assert config_dict(Settings()) == {"lr": 0.1, "layers": [1, 2]}
    assert config_dict(None) == {}
    with pytest.raises(TypeError, match=r"config must be a Mapping, an argparse\.Namespace or a "
                                        r"dataclass instance, not list\.$"):  # fmt: skip
        config_dict([("lr", 0.1)])
    with pytest.raises(TypeError, match="not type"):
        config_dict(Settings)


@pytest.mark.slow
def test_a_namespace_config_reaches_the_run(wandb_offline: Path, tmp_path: Path) -> None:
    import argparse

    model = torch.nn.Linear(2, 1)
    config = argparse.Namespace(lr=0.5, run_dir=None, out=tmp_path)
    with tracking.track("ns", config, model, models_dir=tmp_path) as tracker:
        model(torch.ones(1, 2)).sum().backward()
        tracker.step(0, loss=torch.tensor(1.0), lr=[0.5, 0.25])
    (run_dir,) = run_dirs(wandb_offline)
    config_read = inspect(run_dir)["config"]
    assert config_read["lr"] == 0.5 and config_read["distributed"] == {
        "world_size": 1, "backend": None,
    }  # fmt: skip


@pytest.mark.slow
def test_a_run_with_no_logging_step_claims_no_health(wandb_offline: Path, tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    with tracking.track("short", {}, model, models_dir=tmp_path, log_every=10) as tracker:
        for step in range(3):  # fewer steps than log_every: no gradient check ever ran
            model(torch.ones(1, 2)).sum().backward()
            tracker.step(step, loss=torch.tensor(1.0))
    (run_dir,) = run_dirs(wandb_offline)
    summary = inspect(run_dir)["summary"]
    assert summary["gradients/health"] == "unchecked"
    assert "gradients/first_to_last" not in summary


@pytest.mark.slow
def test_weights_are_saved_under_the_models_own_names_and_staged_in_the_run_folder(
    wandb_offline: Path, tmp_path: Path
) -> None:
    model = torch.compile(three_layers())  # a wrapper: names gain `_orig_mod.`; not run here
    assert next(iter(dict(model.named_parameters()))).startswith("_orig_mod.")
    with tracking.track("named", {}, model, models_dir=tmp_path / "models") as tracker:
        assert tracker.monitor.models[""].names == ["0", "1", "2"]
        path = tracker.save_weights(model, "net")
    state = torch.load(path, weights_only=True)
    three_layers().load_state_dict(state)  # strict: exactly the unwrapped model's keys
    (run_dir,) = run_dirs(wandb_offline)
    staged = run_dir / "artifacts" / "net.pt"
    assert staged.read_bytes() == path.read_bytes()
    ((entry,),) = [a["manifest"]["contents"] for a in artifacts(run_dir)]
    assert entry["path"] == "net.pt" and Path(entry["local_path"]) == staged.resolve()
    assert not (tmp_path / "wandb-data" / "artifacts").exists()  # nothing staged elsewhere
    assert [p.name for p in path.parent.iterdir()] == ["net.pt"]  # no temporary left over


def test_temporary_names_differ_per_call_and_process() -> None:
    from gradient_lab.files import partial_name

    target = Path("models") / "w.pt"
    names = {partial_name(target) for _ in range(20)}
    assert len(names) == 20
    assert all(str(os.getpid()) in n.name and n.parent == target.parent for n in names)


def test_the_wandb_command_hint_names_the_cli_beside_this_python() -> None:
    hint = Path(sink.wandb_cli())
    assert hint.name.startswith("wandb") and (hint.is_file() or hint.resolve().is_file())


@pytest.mark.slow
def test_provenance_names_the_repository_the_script_lives_in_or_none(tmp_path: Path) -> None:
    import subprocess

    repo, outside = tmp_path / "repo", tmp_path / "outside"
    outside.mkdir()
    (repo / "sub").mkdir(parents=True)
    git = ["git", "-c", "user.name=T", "-c", "user.email=t@example.org"]
    (repo / "sub" / "train.py").write_text("print()\n", encoding="utf-8")
    (repo / "data.dvc").write_text("outs:\n- md5: abc.dir\n", encoding="utf-8")
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    found = provenance.provenance("cpu", source=repo / "sub" / "train.py")
    assert (found["git_commit"], found["git_repository"]) == (head, "repo")
    assert (found["git_dirty"], found["data_version"]) == (False, "abc.dir")
    (repo / "sub" / "train.py").write_text("print(1)\n", encoding="utf-8")
    assert provenance.provenance("cpu", source=repo / "sub" / "train.py")["git_dirty"] is True
    alone = outside / "train.py"
    alone.write_text("print()\n", encoding="utf-8")
    nothing = provenance.provenance("cpu", source=alone)
    assert (nothing["git_commit"], nothing["git_dirty"], nothing["git_repository"]) == (
        "none", None, None,
    )  # fmt: skip
