"""gradient_lab: track any PyTorch training loop with W&B.

    from gradient_lab import track

    with track("my-experiment", config, model) as tracker:   # or {"netG": netG, "netD": netD}
        for step in tracker.steps(range(total)):
            ...
            optimizer.step()
            tracker.step(step, loss=loss, lr=lr)  # once per step, after the optimizer's
        tracker.save_weights()

Runs go to ./wandb/, weights to ./models/; provenance comes from the script's git repository.
Under torchrun (`gradient_lab.distributed`), rank 0 logs the job's one run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradient_lab.errors import TrackingError
    from gradient_lab.tracking import Tracker, track

__all__ = ["Tracker", "TrackingError", "track"]

# Loaded on first use, so light modules (interrupt, layout) import without torch and wandb:
# an entry point handles Ctrl-C before those heavy imports start.
_HOMES = {
    "Tracker": "gradient_lab.tracking",
    "TrackingError": "gradient_lab.errors",
    "track": "gradient_lab.tracking",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'gradient_lab' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
