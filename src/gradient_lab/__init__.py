"""gradient_lab: track any PyTorch training loop with W&B.

from gradient_lab import track

with track("my-experiment", config, model) as tracker:
    ...
    tracker.step(step, loss=loss, lr=lr)  # after backward, before zero_grad, per optimizer step
    tracker.save_weights(model)

Runs go to ./wandb/, weights to ./models/; provenance comes from the script's git repository.
Under torchrun (`gradient_lab.distributed`), rank 0 logs the job's one run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradient_lab.errors import TrackingError
    from gradient_lab.files import atomic_save
    from gradient_lab.tracking import IdleTracker, Tracker, track

__all__ = ["IdleTracker", "Tracker", "TrackingError", "atomic_save", "track"]

# Loaded on first use, so light modules (interrupt, layout) import without torch and wandb:
# an entry point handles Ctrl-C before those heavy imports start.
_HOMES = {
    "IdleTracker": "gradient_lab.tracking",
    "Tracker": "gradient_lab.tracking",
    "TrackingError": "gradient_lab.errors",
    "atomic_save": "gradient_lab.files",
    "track": "gradient_lab.tracking",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'gradient_lab' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
