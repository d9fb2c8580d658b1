"""The vanishing-gradients demo's options and run configuration, importable without torch.

`nox -s train-tracked` checks a user's options with `parse_args` before it checks the data or
starts Python with torch and W&B, so a typo fails in a fraction of a second.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ACTIVATIONS = ("sigmoid", "tanh", "relu")
INITS = ("auto", "default", "xavier", "kaiming")
EXPERIMENT = "vanishing-gradients"
SMOKE = {"epochs": 2, "samples": 512}
# The exact command that resumes a stopped run, as the launcher spells it (`nox -s
# train-tracked -- ... --resume`); unset, the stop message gives the plain python command.
RESUME_COMMAND_ENV = "GRADIENT_LAB_RESUME_COMMAND"


@dataclass
class Config:
    """Everything a run depends on; stored in the W&B config and in checkpoints."""

    activations: list[str] = field(default_factory=lambda: ["sigmoid", "relu"])
    depth: int = 12
    width: int = 128
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    init: str = "auto"
    residual: bool = False
    seed: int = 0
    samples: int = 0  # 0: the whole data set
    log_every: int = 10
    watch_every: int = 100


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options as given; bad ones exit 2 with argparse's message."""
    defaults = Config()
    p = argparse.ArgumentParser(
        prog="demo_vanishing_gradients",
        description="Train a deep MLP per activation and measure how gradients vanish.",
    )
    p.add_argument(
        "--activation",
        nargs="+",
        choices=ACTIVATIONS,
        default=defaults.activations,
        dest="activations",
        help="one run per activation (default: sigmoid relu)",
    )
    p.add_argument("--depth", type=int, default=defaults.depth, help="number of Linear layers")
    p.add_argument("--width", type=int, default=defaults.width)
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--momentum", type=float, default=defaults.momentum)
    p.add_argument(
        "--init",
        choices=INITS,
        default=defaults.init,
        help="auto: He for relu, Xavier for sigmoid/tanh",
    )
    p.add_argument("--residual", action="store_true", help="add skip connections")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--samples", type=int, default=defaults.samples, help="0: all")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--log-every", type=int, default=defaults.log_every)
    p.add_argument("--watch-every", type=int, default=defaults.watch_every)
    p.add_argument("--name", default=EXPERIMENT, help="experiment name (W&B group, file names)")
    p.add_argument("--run-dir", type=Path, help="W&B run folder (default: WANDB_DIR or .)")
    # Unset here, the library's layout decides (models/ and data/ in the working directory).
    p.add_argument("--models-dir", type=Path, help="weights and checkpoints (default: models)")
    p.add_argument("--data-dir", type=Path, help="the training data (default: data)")
    p.add_argument(
        "--wandb-mode",
        choices=("online", "offline", "disabled"),
        help="default: WANDB_MODE, else online with WANDB_API_KEY, else offline",
    )
    p.add_argument("--smoke", action="store_true",
                   help=f"a run of a few seconds for CI ({SMOKE['epochs']} epochs, "
                        f"{SMOKE['samples']} samples)")  # fmt: skip
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its checkpoint (its settings win)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--metrics", type=Path, default=None,
                   help="also write the final figures per activation to this JSON")  # fmt: skip
    p.add_argument("--plots", type=Path, default=None,
                   help="also write what was logged at each logging step to this JSON")  # fmt: skip
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs, args.samples = SMOKE["epochs"], SMOKE["samples"]
    least_values = {"epochs": 1, "depth": 2, "width": 1, "batch_size": 1, "samples": 0,
                    "threads": 1, "log_every": 1, "watch_every": 1}  # fmt: skip
    for option, least in least_values.items():
        if getattr(args, option) < least:
            p.error(f"--{option.replace('_', '-')} must be at least {least}, "
                    f"got {getattr(args, option)}")  # fmt: skip
    if not args.name.strip():
        p.error("--name must not be empty: it names the runs and the weight files")
    if args.lr <= 0:
        p.error(f"--lr must be positive, got {args.lr}")
    return args
