"""The demo's training loop with no tracking code, as a script nobody edited for tracking would
have it: what `benchmarks.run_overhead` times plain and through `gradient-lab run`.

    python -m benchmarks.demo_loop [--epochs 20]

Its first epoch warms up (and, tracked, opens the W&B run); the rest is timed: it prints ms/step.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from experiments import demo_vanishing_gradients as demo
from gradient_lab import synthetic_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=demo.Config().epochs)
    args = parser.parse_args()
    cfg = demo.Config(activations=["sigmoid"], epochs=args.epochs + 1)
    with tempfile.TemporaryDirectory() as scratch:
        data = synthetic_data.generate(Path(scratch) / "data")
    trainer = demo.prepare(cfg, "sigmoid", data, demo.pick_device("cpu"))
    demo.train(trainer, steps=range(trainer.steps_per_epoch), progress=False)  # warm-up
    timed = demo.train(trainer, progress=False)
    print(f"ms/step {timed.ms_per_step:.4f}")


if __name__ == "__main__":
    main()
