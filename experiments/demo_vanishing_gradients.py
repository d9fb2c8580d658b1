"""Vanishing gradients, measured: a deep fully-connected network on synthetic spirals.

With sigmoid units each layer scales the backward signal by at most 1/4, so the gradient that
reaches the first layer is orders of magnitude smaller than the last layer's; ReLU with He
initialisation keeps it near 1, and skip connections (`--residual`) rescue even sigmoid.
Each activation is one tracked W&B run; the end prints the first-to-last gradient ratios.

    python -m experiments.demo_vanishing_gradients --activation sigmoid relu --epochs 20
    nox -s train-tracked -- --smoke
    nox -s train-tracked -- --nproc 2 --smoke     # distributed: one process per device, DDP

Under torchrun each process trains on its own shard of every epoch (the samples a rank reads
are every world-size-th of the epoch's order), `--batch-size` is per process, and rank 0 alone
logs and saves.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn
from tqdm import tqdm

from experiments.demo_vanishing_gradients_options import (
    EXPERIMENT,
    RESUME_COMMAND_ENV,
    Config,
    parse_options,
)
from gradient_lab import Tracker, TrackingError, checkpoints, distributed, synthetic_data, track
from gradient_lab.gradients import LayerGradNorms
from gradient_lab.interrupt import exit_now, exit_on_signals
from gradient_lab.layout import DATA_DIR, MODELS_DIR
from gradient_lab.sink import wandb_cli
from gradient_lab.synthetic_data import DataSet

# Xavier's gain per activation (torch.nn.init.calculate_gain).
GAINS = {"sigmoid": 1.0, "tanh": 5 / 3, "relu": 2**0.5}


def build_model(
    n_in: int, n_out: int, depth: int, width: int, activation: str, *, init: str, residual: bool
) -> nn.Module:
    """A `depth`-layer MLP; layers are named fc01..fcNN, input side first."""

    act: Callable[[torch.Tensor], torch.Tensor] = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
    }[activation]

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            sizes = [n_in] + [width] * (depth - 1) + [n_out]
            pairs = enumerate(pairwise(sizes))
            self.layers = nn.ModuleDict({f"fc{i + 1:02d}": nn.Linear(a, b) for i, (a, b) in pairs})

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            *hidden, last = self.layers.values()
            for layer in hidden:
                out = act(layer(x))
                x = x + out if residual and out.shape == x.shape else out
            result: torch.Tensor = last(x)
            return result

    model = MLP()
    scheme = ("kaiming" if activation == "relu" else "xavier") if init == "auto" else init
    if scheme != "default":
        for layer in model.layers.values():
            assert isinstance(layer, nn.Linear)
            if scheme == "kaiming":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            else:
                nn.init.xavier_normal_(layer.weight, gain=GAINS[activation])
            nn.init.zeros_(layer.bias)
    return model


def pick_device(choice: str, threads: int = 1) -> torch.device:
    """The device to train on; on CPU also how many threads torch may use."""

    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA device here.")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        # Models this small run fastest on one thread; more threads mostly contend for cores.
        torch.set_num_threads(threads)
    return torch.device(choice)


@dataclass
class RunResult:
    activation: str
    steps: int
    seconds: float
    loss: float
    accuracy: float
    layer_norms: dict[str, float]
    interrupted: bool = False
    # What the tracker logged at each logging step: the per-step plots file's rows.
    series: list[dict[str, float]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """First layer's gradient norm over the last layer's."""
        norms = list(self.layer_norms.values())
        return norms[0] / norms[-1] if norms[-1] > 0 else float("inf")

    @property
    def ms_per_step(self) -> float:
        return 1000 * self.seconds / max(self.steps, 1)


@dataclass
class Trainer:
    """A model, its optimiser and its data on one device, at a given step."""

    cfg: Config
    activation: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    features: torch.Tensor
    labels: torch.Tensor
    step: int = 0
    rank: int = 0
    world: int = 1
    series: list[dict[str, float]] = field(default_factory=list)

    @property
    def shard_size(self) -> int:
        """Samples this process trains on per epoch: the same on every rank (DDP needs it)."""
        return len(self.labels) // self.world

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.shard_size // self.cfg.batch_size)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs


def prepare(cfg: Config, activation: str, data: DataSet, device: torch.device) -> Trainer:
    """Seeded model and optimiser for one activation."""

    torch.manual_seed(cfg.seed)
    n = cfg.samples or len(data.labels)
    features = torch.from_numpy(data.features[:n]).to(device)
    model = build_model(
        features.shape[1],
        data.n_classes,
        cfg.depth,
        cfg.width,
        activation,
        init=cfg.init,
        residual=cfg.residual,
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    labels = torch.from_numpy(data.labels[:n]).to(device)
    model = for_ranks(model, device)
    rank, world = distributed.rank(), distributed.world_size()
    return Trainer(cfg, activation, model, optimizer, features, labels, rank=rank, world=world)


def for_ranks(model: nn.Module, device: torch.device) -> nn.Module:
    """The model as the job trains it: wrapped in DDP when there are several processes."""
    if distributed.world_size() < 2:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def batch_index(trainer: Trainer, epoch: int, offset: int) -> torch.Tensor:
    """The samples of one step: this rank's share of the epoch's order, batch `offset`."""
    order = epoch_order(trainer.cfg.seed, epoch, len(trainer.labels))
    if trainer.world > 1:
        order = order[trainer.rank : trainer.shard_size * trainer.world : trainer.world]
    size = trainer.cfg.batch_size
    return order[offset * size : (offset + 1) * size]


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The sample order of one epoch: a function of (seed, epoch) only, so resuming repeats it."""

    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator)


def train(
    trainer: Trainer,
    tracker: Tracker | None = None,
    steps: Iterable[int] | None = None,
    progress: bool = True,
) -> RunResult:
    """Train over `steps` (by default to the last epoch's end; `tracker.steps(...)` ends
    them early on a signal)."""

    t, cfg = trainer, trainer.cfg
    loss_fn = nn.CrossEntropyLoss()
    device = t.features.device
    began, first = time.perf_counter(), t.step
    bar = tqdm(
        total=t.total_steps,
        initial=t.step,
        desc=t.activation,
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
        leave=False,
    )
    with bar:
        for step in range(t.step, t.total_steps) if steps is None else steps:
            epoch, offset = divmod(step, t.steps_per_epoch)
            index = batch_index(t, epoch, offset).to(device)
            logits = t.model(t.features[index])
            loss = loss_fn(logits, t.labels[index])
            t.optimizer.zero_grad()
            loss.backward()
            t.optimizer.step()
            if tracker is not None:
                accuracy = (logits.argmax(1) == t.labels[index]).float().mean()
                tracker.step(step, loss=loss, accuracy=accuracy, lr=cfg.lr)
                if tracker.last_row_step == step:
                    t.series.append({"step": step, **tracker.last_row})
            t.step = step + 1
            bar.update(1)
            if offset + 1 == t.steps_per_epoch and progress:
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    seconds = time.perf_counter() - began
    if t.step < t.total_steps:
        # Stopped early: the summary below waits for the resumed run; the stop must be quick.
        nan = float("nan")
        return RunResult(t.activation, t.step - first, seconds, nan, nan, {}, interrupted=True)
    # The phenomenon in numbers: the gradient norm of every layer over the whole set.
    t.optimizer.zero_grad()
    logits = t.model(t.features)
    final = loss_fn(logits, t.labels)
    final.backward()
    layers = LayerGradNorms(t.model).compute()
    layer_norms = dict(zip(layers.names, layers.norms.tolist(), strict=True))
    t.optimizer.zero_grad()
    with torch.no_grad():
        accuracy = (logits.argmax(1) == t.labels).float().mean().item()
    return RunResult(
        t.activation, t.step - first, seconds, final.item(), accuracy, layer_norms, series=t.series
    )


def norm_figure(result: RunResult) -> Any:
    """A bar chart of gradient norm per layer (log scale), built without any GUI backend."""

    fig = Figure(figsize=(6, 3), dpi=100)
    ax = fig.subplots()
    ax.bar(list(result.layer_norms), list(result.layer_norms.values()))
    ax.set_yscale("log")
    ax.set_xlabel("layer (input side first)")
    ax.set_ylabel("gradient norm")
    ax.set_title(f"{result.activation}: first/last = {result.ratio:.1e}")
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    fig.tight_layout()
    return fig


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options, with the library's default folders where none was given."""
    args = parse_options(argv)
    args.models_dir = args.models_dir or MODELS_DIR
    args.data_dir = args.data_dir or DATA_DIR
    return args


def config_from(args: argparse.Namespace) -> Config:
    return Config(**{k: getattr(args, k) for k in Config.__dataclass_fields__})


def checkpoint_path(models_dir: Path, name: str) -> Path:
    return models_dir / f"{name}.ckpt"


def run_name(name: str, activation: str, residual: bool) -> str:
    return f"{name}-{activation}" + ("-residual" if residual else "")


def run_all(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    """Train every activation as its own tracked run; checkpoint and stop on a signal."""

    ckpt = checkpoint_path(args.models_dir, args.name)
    saved = checkpoints.read(ckpt) if args.resume else None
    if saved:
        step = saved[checkpoints.KEY]["next_step"]
        print(f"Resuming {saved['activation']} at step {step} from {ckpt}")
    cfg = Config(**saved["config"]) if saved else config_from(args)
    device = distributed.setup(pick_device(args.device, args.threads))
    data = synthetic_data.load(args.data_dir)
    sample_image = data.path.parent / synthetic_data.SAMPLE_IMAGE
    done: list[str] = list(saved["done"]) if saved else []
    results: list[RunResult] = []
    between_runs = ExitStack()
    for activation in cfg.activations:
        if activation in done:
            continue
        resume = ckpt if saved and saved["activation"] == activation else None
        trainer = prepare(cfg, activation, data, device)
        name = run_name(args.name, activation, cfg.residual)
        with track(
            EXPERIMENT,
            asdict(cfg) | {"activation": activation},
            trainer.model,
            device=str(device),
            name=name,
            group=args.name,
            mode=args.wandb_mode,
            run_dir=args.run_dir,
            models_dir=args.models_dir,
            log_every=cfg.log_every,
            watch_every=cfg.watch_every,
            resume=resume,
            resume_command=resume_command(argv),
            exit_on_stop=False,
        ) as tracker:
            trainer.step = tracker.restore(
                model=trainer.model, optimizer=trainer.optimizer, series=None
            )
            trainer.series = list(tracker.restored.get("series", []))
            if trainer.step == 0:
                tracker.log_image("data/sample", sample_image, caption="training data")
            progress = not args.no_progress and distributed.is_main()
            steps = tracker.steps(range(trainer.step, trainer.total_steps))  # signals: a stop
            print(f"Training {name}: {trainer.total_steps} steps on {device}", flush=True)
            result = train(trainer, tracker, steps, progress=progress)
            if result.interrupted:
                tracker.save_checkpoint(
                    ckpt,
                    model=trainer.model,
                    optimizer=trainer.optimizer,
                    series=trainer.series,
                    config=asdict(cfg),
                    done=done,
                    activation=activation,
                )
            else:
                weights = finish_run(tracker, trainer, result, name)
        if tracker.stop is not None and tracker.stop.requested:
            return tracker.stop.exit_code
        if tracker.logs:
            print(f"W&B run ({tracker.mode}): {tracker.run_dir}")
        print(f"Weights: {weights}")
        done.append(activation)
        results.append(result)
        between_runs.close()
        # Until the next run starts, a signal ends the program at once: this one is saved.
        said = f"after the {', '.join(done)} runs were saved; the rest did not start"
        between_runs.enter_context(exit_on_signals(said))
    with between_runs:
        ckpt.unlink(missing_ok=True)
        print_table(results)
        if args.metrics:
            write_metrics(results, args.metrics)
        if args.plots:
            write_plots(results, args.plots)
        if tracker.logs and tracker.mode == "offline":
            print(f"Look at a run: {wandb_cli()} leet {tracker.run_dir}")
            print(f"Upload it later: {tracker.sync_command()}")
    return 0


def finish_run(tracker: Tracker, trainer: Trainer, result: RunResult, name: str) -> Path:
    """A run that trained to its last step: the per-layer picture, the summary, the weights."""
    tracker.log_image("grad_norm_per_layer", norm_figure(result))
    tracker.summary(
        final_loss=result.loss,
        final_accuracy=result.accuracy,
        final_first_to_last=result.ratio,
        **{f"final_grad_norm/{k}": v for k, v in result.layer_norms.items()},
    )
    return tracker.save_weights(trainer.model, name)


SCRIPT = "demo_vanishing_gradients"


def resume_command(argv: Sequence[str]) -> str:
    """The exact command that continues this run from its checkpoint (the stop line names it)."""
    given = os.environ.get(RESUME_COMMAND_ENV)
    if given:
        return given
    options = [arg for arg in argv if arg != "--resume"]
    return shlex.join(["python", "-m", f"experiments.{SCRIPT}", *options, "--resume"])


def print_table(results: list[RunResult]) -> None:
    print(f"\n{'activation':<12}{'first/last grad norm':>22}{'loss':>8}{'accuracy':>10}")
    for r in results:
        print(f"{r.activation:<12}{r.ratio:>22.2e}{r.loss:>8.3f}{r.accuracy:>10.1%}")


def write_metrics(results: list[RunResult], path: Path) -> None:
    """The final figures as JSON, for `dvc metrics show/diff` (written whole or not at all)."""
    figures = {
        r.activation: {"first_to_last": r.ratio, "loss": r.loss, "accuracy": r.accuracy}
        for r in results
    }
    write_json(figures, path)
    print(f"Metrics: {path}")


PLOTTED = ("activation", "step", "loss", "accuracy")


def write_plots(results: list[RunResult], path: Path) -> None:
    """What was logged at each logging step, one row per activation and step, for `dvc plots`
    (loss, accuracy, `grad_norm/<layer>`, `grad_norm/first_to_last`). DVC reads a file whose
    rows have the same keys: a value a row lacks (a layer without a gradient then) is null."""
    rows = [{"activation": r.activation, **row} for r in results for row in r.series]
    keep = [
        key
        for key in dict.fromkeys(k for row in rows for k in row)
        if key in PLOTTED or key.startswith("grad_norm/")
    ]
    write_json([{key: row.get(key) for key in keep} for row in rows], path)
    print(f"Plots: {path}")


def write_json(value: Any, path: Path) -> None:
    """JSON written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        # Until training starts a signal ends the program at once: nothing to save yet.
        with exit_on_signals(), main_process_speaks():
            return run_all(args, argv)
    except (ValueError, TrackingError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        distributed.teardown()


@contextmanager
def main_process_speaks() -> Iterator[None]:
    """Under torchrun, only rank 0 prints: the others' console output would repeat it."""
    if distributed.is_main():
        yield
        return
    with Path(os.devnull).open("w", encoding="utf-8") as sink, redirect_stdout(sink):
        yield


if __name__ == "__main__":
    code = main()
    if code > 128:
        exit_now(code)  # stopped by a signal: everything is saved; skip Python's slow teardown
    sys.exit(code)
