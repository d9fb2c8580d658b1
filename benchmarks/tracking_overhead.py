"""What W&B tracking costs the demo's training loop: ms/step tracked vs untracked, one run.

The demo's real configuration (its default depth, width, batch, epochs and seed, one torch
thread on CPU) at its default logging settings (norms every 10 steps, histograms every 100):
each pair trains the model untracked and tracked (an offline W&B run) from the same seed for
the same steps. The two take turns epoch by epoch, alternating which goes first, so that load
from other processes on the machine hits both alike; W&B's start and finish are timed apart
and left out of ms/step, and a first pair warms up torch and W&B. Printed: every pair's
ms/step, the ratio of the medians, of the fastest pairs, the per-pair spread and, least
disturbed by bursts of load, the epoch-wise ratio: each epoch's median (and fastest) time over
the pairs, summed over the epochs, tracked over untracked. The load average comes with it
(other processes share the cores).

    python -m benchmarks.tracking_overhead [--repeats 7] [--epochs 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from experiments import demo_vanishing_gradients as demo
from experiments.demo_vanishing_gradients_options import ACTIVATIONS
from gradient_lab import Tracker, synthetic_data, track


class EpochEnd:
    """Trains a trainer one epoch at a time."""

    def __init__(self, trainer: demo.Trainer) -> None:
        self.trainer = trainer

    def one_epoch(self, tracker: Tracker | None) -> float:
        """Train one more epoch; its seconds (the loop alone, as `demo.train` times it)."""
        steps = range(self.trainer.step, self.trainer.step + self.trainer.steps_per_epoch)
        return demo.train(self.trainer, tracker, steps, progress=False).seconds


def load() -> str:
    """The 1-minute load average, where the platform has one."""
    getloadavg = getattr(os, "getloadavg", None)
    return f"{getloadavg()[0]:.2f}" if getloadavg else "n/a"


def main(argv: list[str] | None = None) -> int:
    defaults = demo.Config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--repeats", type=int, default=7, help="timed pairs after the warm-up")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--activation", choices=ACTIVATIONS, default=defaults.activations[0])
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.epochs < 1:
        parser.error("--repeats and --epochs must be at least 1")
    os.environ["WANDB_MODE"] = "offline"
    cfg = demo.Config(activations=[args.activation], epochs=args.epochs)
    device = demo.pick_device(args.device)  # one torch thread on CPU, the demo's default
    print(f"load average at start {load()} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as scratch:
        data = synthetic_data.generate(Path(scratch) / "data")

        def pair() -> tuple[list[float], list[float], float]:
            """Seconds of every epoch untracked and tracked, and of W&B's start and finish."""
            plain = EpochEnd(demo.prepare(cfg, args.activation, data, device))
            logged = EpochEnd(demo.prepare(cfg, args.activation, data, device))
            seconds: dict[str, list[float]] = {"plain": [], "logged": []}
            began = time.perf_counter()
            with ExitStack() as stack:
                tracker = stack.enter_context(
                    track(
                        demo.EXPERIMENT,
                        asdict(cfg) | {"activation": args.activation},
                        logged.trainer.model,
                        device=str(device),
                        run_dir=Path(scratch),
                        models_dir=Path(scratch),
                        log_every=cfg.log_every,
                        watch_every=cfg.watch_every,
                    )
                )
                started = time.perf_counter()
                for epoch in range(cfg.epochs):
                    turns = [("plain", plain, None), ("logged", logged, tracker)]
                    for key, runner, tracked_by in turns[:: 1 if epoch % 2 == 0 else -1]:
                        seconds[key].append(runner.one_epoch(tracked_by))
                ended = time.perf_counter()
            wandb_seconds = (started - began) + (time.perf_counter() - ended)
            assert plain.trainer.step == logged.trainer.step == plain.trainer.total_steps
            return seconds["plain"], seconds["logged"], wandb_seconds

        pair()  # warm-up: first-use costs in torch and W&B
        results = [pair() for _ in range(args.repeats)]
    steps = cfg.epochs * -(-len(data.labels) // cfg.batch_size)
    plain = [1000 * sum(epochs) / steps for epochs, _, _ in results]
    logged = [1000 * sum(epochs) / steps for _, epochs, _ in results]
    wandb_seconds = [seconds for _, _, seconds in results]

    def epoch_wise(arm: int, pick: Callable[[list[float]], float]) -> float:
        """`pick` of each epoch's seconds over the pairs, summed over the epochs."""
        return sum(pick([result[arm][epoch] for result in results]) for epoch in range(cfg.epochs))

    print(
        f"device {device}, {args.activation}, {steps} steps x {args.repeats} pairs, "
        f"depth {cfg.depth}, width {cfg.width}, batch {cfg.batch_size}, seed {cfg.seed}, "
        f"log every {cfg.log_every}, histograms every {cfg.watch_every}"
    )
    print(f"untracked: {'  '.join(f'{v:.3f}' for v in plain)} ms/step")
    print(f"  tracked: {'  '.join(f'{v:.3f}' for v in logged)} ms/step")
    print(f"W&B start + finish (not in ms/step): median {statistics.median(wandb_seconds):.2f} s")
    pairs = sorted(t / u for t, u in zip(logged, plain, strict=True))
    print(
        f"ratio tracked/untracked (medians): "
        f"{statistics.median(logged) / statistics.median(plain):.3f}x"
    )
    print(f"ratio tracked/untracked (fastest): {min(logged) / min(plain):.3f}x")
    print(
        f"ratio tracked/untracked (per pair): median {statistics.median(pairs):.3f}x, "
        f"range {pairs[0]:.3f}-{pairs[-1]:.3f}x"
    )
    for name, pick in (("medians", statistics.median), ("fastest", min)):
        ratio = epoch_wise(1, pick) / epoch_wise(0, pick)
        print(f"ratio tracked/untracked (epoch-wise {name}): {ratio:.3f}x")
    print(f"load average at end {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
