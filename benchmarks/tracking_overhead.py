"""What W&B tracking costs the demo's training loop: ms/step tracked vs untracked, one run.

Same seed, same steps, the demo's default model and logging settings (norms every 10 steps,
histograms every 100). Runs alternate untracked/tracked so machine noise hits both alike; the
fastest of each (the least disturbed by other load) and the medians are compared. W&B
start-up and shutdown are outside the timed loop.

    python -m benchmarks.tracking_overhead [--epochs 20] [--repeats 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from experiments import demo_vanishing_gradients as demo
from experiments import synthetic_data
from experiments.tracking import track


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--activation", choices=demo.ACTIVATIONS, default="sigmoid")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    cfg = demo.Config(activations=[args.activation], epochs=args.epochs)
    device = demo.pick_device(args.device)
    with tempfile.TemporaryDirectory() as scratch:
        data = synthetic_data.generate(Path(scratch) / "data")
        timings: dict[str, list[float]] = {"untracked": [], "tracked": []}
        for _ in range(args.repeats):
            trainer = demo.prepare(cfg, args.activation, data, device)
            timings["untracked"].append(demo.train(trainer, progress=False).ms_per_step)
            trainer = demo.prepare(cfg, args.activation, data, device)
            with track("benchmark", {}, trainer.model, device=str(device),
                       run_dir=Path(scratch), models_dir=Path(scratch)) as tracker:  # fmt: skip
                result = demo.train(trainer, tracker, progress=False)
            timings["tracked"].append(result.ms_per_step)
    print(f"device {device}, {result.steps} steps x {args.repeats} repeats, depth {cfg.depth}, "
          f"width {cfg.width}, batch {cfg.batch_size}, log every {cfg.log_every}, "
          f"histograms every {cfg.watch_every}")  # fmt: skip
    for key, values in timings.items():
        print(f"{key:>9}: " + "  ".join(f"{v:.3f}" for v in values) + " ms/step")
    for name, pick in (("fastest", min), ("medians", statistics.median)):
        ratio = pick(timings["tracked"]) / pick(timings["untracked"])
        print(f"ratio tracked/untracked ({name}): {ratio:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
