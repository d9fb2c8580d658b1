"""gradient_lab: track any PyTorch training loop with W&B.

from gradient_lab import track

with track("my-experiment", config, model) as tracker:
    ...
    tracker.step(step, loss=loss, lr=lr)  # after backward, before zero_grad
"""

from gradient_lab.errors import TrackingError
from gradient_lab.files import atomic_save
from gradient_lab.tracking import Tracker, track

__all__ = ["Tracker", "TrackingError", "atomic_save", "track"]
