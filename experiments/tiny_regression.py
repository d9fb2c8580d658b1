"""A tiny linear regression, tracked: how little a training script adds to use the W&B layer.

The tracking is the `track(...)` block, `tracker.step(...)` and `tracker.save_weights(...)`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from gradient_lab import TrackingError, track
from gradient_lab.layout import MODELS_DIR


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")

    torch.manual_seed(args.seed)
    x = torch.randn(256, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(256)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    mse = torch.nn.MSELoss()
    try:
        with track("tiny-regression", args, model, run_dir=args.run_dir,
                   models_dir=args.models_dir) as tracker:  # fmt: skip
            for step in range(args.steps):
                loss = mse(model(x).squeeze(1), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                tracker.step(step, loss=loss, lr=args.lr)
            weights = tracker.save_weights()
    except TrackingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"W&B run ({tracker.mode}): {tracker.run_dir}\nWeights: {weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
