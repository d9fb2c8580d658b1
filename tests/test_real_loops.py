"""What the layer records for loops the demo does not have: tied weights, evaluation at its
own cadence, a last partial interval, dict metrics, NaN gradients, update ratios, checkpoints.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from gradient_lab import checkpoints, sink, tracking
from gradient_lab.gradients import LayerGradNorms
from tests.support.wandb_runs import RecordingRun, history, inspect, run_dirs, run_id, tracker_on


class TiedLM(nn.Module):
    """A character-level language model whose output layer is its input embedding."""

    def __init__(self, vocab: int = 11, width: int = 8, context: int = 6) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, width)
        self.pos_emb = nn.Embedding(context, width)
        self.block = nn.Linear(width, width)
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(tokens) + self.pos_emb(torch.arange(tokens.shape[1]))
        out: torch.Tensor = self.lm_head(self.ln_f(torch.relu(self.block(x))))
        return out


def lm_step(model: TiedLM, optimizer: torch.optim.Optimizer) -> torch.Tensor:
    tokens = torch.randint(0, 11, (4, 6))
    logits = model(tokens)
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), tokens.roll(-1, 1).flatten())
    loss.backward()
    return loss.detach()


def test_a_tied_tensor_is_measured_once_and_left_out_of_the_depth_check() -> None:
    torch.manual_seed(0)
    model = TiedLM()
    norms = LayerGradNorms(model)
    assert norms.names == ["tok_emb", "pos_emb", "block", "ln_f"]  # lm_head owns nothing new
    assert (
        norms.param_names.count("tok_emb.weight") == 1 and "lm_head.weight" not in norms.param_names
    )
    lm_step(model, torch.optim.SGD(model.parameters(), lr=0.1))
    layers = norms.compute()
    # block to ln_f: embeddings are not a depth's first layer (and the tied one is at both ends)
    assert layers.ends == (2, 3)
    assert set(norms.histograms(norms.present())) == set(norms.param_names)


@pytest.mark.slow
def test_a_model_of_one_layer_is_unchecked_not_healthy(wandb_offline: Path, tmp_path: Path) -> None:
    model = nn.Linear(3, 1)
    with tracking.track("one", {}, model, models_dir=tmp_path, log_every=1) as tracker:
        model(torch.ones(2, 3)).sum().backward()
        tracker.step(0, loss=torch.tensor(1.0))
    (run_dir,) = run_dirs(wandb_offline)
    assert inspect(run_dir)["summary"]["gradients/health"] == "unchecked"
    assert "grad_norm/first_to_last" not in history(run_dir)[0]


@pytest.mark.slow
def test_eval_at_its_own_steps_dict_metrics_and_the_last_interval_reach_the_run(
    wandb_offline: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = TiedLM()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with tracking.track("lm", {}, model, models_dir=tmp_path, log_every=10, watch_every=10) as t:
        for step in range(25):
            loss = lm_step(model, optimizer)
            optimizer.step()
            optimizer.zero_grad()
            t.step(step, loss=loss, lr={"decay": 0.01, "no_decay": 0.02})
            if step % 10 == 4:
                t.log(step, **{"val/loss": torch.tensor(float(step))})
    (run_dir,) = run_dirs(wandb_offline)
    rows = history(run_dir)
    val = {row["_step"]: row["val/loss"] for row in rows if "val/loss" in row}
    assert val == {4: 4.0, 14: 14.0, 24: 24.0}  # at exactly the steps they were computed
    losses = {row["_step"] for row in rows if "loss" in row}
    assert losses == {9, 19, 24}  # the last five steps are not dropped
    last = next(row for row in rows if row["_step"] == 24)
    assert (last["lr/decay"], last["lr/no_decay"]) == (0.01, 0.02)
    keys = {k for row in rows for k in row}
    assert "grad_norm/tok_emb" in keys and "grad_norm/lm_head" not in keys
    assert "gradients/lm_head.weight" not in keys
    assert {"update_ratio/tok_emb", "update_ratio/ln_f"} <= keys
    ratios = [row["grad_norm/first_to_last"] for row in rows if "grad_norm/first_to_last" in row]
    assert ratios and all(r != pytest.approx(1.0) for r in ratios)
    assert inspect(run_dir)["summary"]["gradients/health"] in {"healthy", "vanishing", "exploding"}


def test_update_ratio_is_the_optimizers_step_over_the_weights() -> None:
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
    run = RecordingRun()
    tracker = tracker_on(run, model, log_every=1, watch_every=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(2):
        model(torch.ones(1, 2)).sum().backward()
        before = model[0].weight.detach().clone()
        grad = model[0].weight.grad.clone()  # type: ignore[union-attr]
        optimizer.step()
        optimizer.zero_grad()
        tracker.step(step)
    expected = (0.5 * grad).norm() / before.norm()
    (_, last), *_ = reversed(run.logged)
    assert last["update_ratio/0"] == pytest.approx(expected.item(), rel=1e-5)


def test_nan_gradients_are_counted_and_named_not_called_healthy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 1))
    run = RecordingRun()
    tracker = tracker_on(run, model, log_every=2)
    for step in range(6):
        model.zero_grad()
        model(torch.ones(2, 3)).sum().backward()
        if step == 3:
            model[1].weight.grad[0, :2] = float("nan")  # type: ignore[index]
        tracker.step(step, loss=torch.tensor(1.0))
    rows = dict(run.logged)
    assert rows[1]["nonfinite/total"] == 0 and "nonfinite/1" not in rows[1]
    assert rows[3]["nonfinite/1"] == 2 and rows[3]["nonfinite/total"] == 2
    assert math.isnan(rows[3]["grad_norm/1"]) and "grad_norm/first_to_last" not in rows[3]
    assert run.summary["gradients/nonfinite/first_step"] == 3
    assert run.summary["gradients/nonfinite/first_layer"] == "1"
    assert set(tracker.verdicts[""].seen) == {"nonfinite"}
    assert "non-finite gradients at step 3: layer 1 has 2 NaN" in capsys.readouterr().err


@pytest.mark.slow
def test_a_stopped_loop_closes_the_run_stopped_and_resumes_it_to_the_end(
    wandb_offline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    ckpt = tmp_path / "ckpt.pt"

    def train(resume: Path | None) -> None:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        with tracking.track("stop", {}, model, models_dir=tmp_path, log_every=5,
                            resume=resume) as tracker:  # fmt: skip
            start = tracker.restore(model=model, optimizer=optimizer)
            for step in tracker.steps(range(start, 20)):
                model(torch.randn(4, 3)).pow(2).mean().backward()
                optimizer.step()
                optimizer.zero_grad()
                tracker.step(step, loss=torch.tensor(float(step)))
                if step == 7 and resume is None:
                    signal.raise_signal(signal.SIGINT)  # as Ctrl-C would, between steps
            tracker.save_checkpoint(ckpt, model=model, optimizer=optimizer)

    with pytest.raises(KeyboardInterrupt):  # as Ctrl-C ends a script, once the run is closed
        train(None)
    assert (
        f"Stopped by Ctrl-C (SIGINT) at step 8: checkpoint saved to {ckpt}, W&B run closed"
        in capsys.readouterr().err
    )
    (first,) = run_dirs(wandb_offline)
    run = inspect(first)
    assert run["summary"]["stopped_by"] == "Ctrl-C (SIGINT)"
    assert run["exit_code"] == 130 or run.get("state") != "finished", run
    assert {row["_step"] for row in history(first) if "loss" in row} == {4, 7}
    train(ckpt)
    first_again, second = run_dirs(wandb_offline)
    assert first_again == first and run_id(second) == run_id(first)
    assert {row["_step"] for row in history(second) if "loss" in row} == {9, 14, 19}
    err = capsys.readouterr().err
    assert f"sync {first} {second}" in err  # the message names both folders


def test_a_checkpoint_that_is_missing_or_foreign_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(
        checkpoints.TrackingError, match="Nothing to resume: there is no checkpoint"
    ):
        checkpoints.read(tmp_path / "none.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(checkpoints.TrackingError, match=r"not written by tracker\.save_checkpoint"):
        checkpoints.read(tmp_path / "other.pt")


def test_an_offline_runs_folders_are_found_in_order_with_the_same_second_suffix(
    tmp_path: Path,
) -> None:
    # A resumed run that starts in the same second as the folder before it gets `-1`, `-2`...
    names = ["offline-run-20260101_000001-abc12345-2", "offline-run-20260101_000000-abc12345",
             "offline-run-20260101_000001-abc12345", "offline-run-20260101_000001-abc12345-1",
             "offline-run-20260101_000001-other123"]  # fmt: skip
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / f"run-{name.split('-')[3]}.wandb").write_bytes(b"")
    found = [folder.name for folder in sink.offline_run_folders(tmp_path, "abc12345")]
    assert found == [names[1], names[2], names[3], names[0]]
