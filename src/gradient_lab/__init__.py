"""gradient_lab: track any PyTorch training loop with W&B.

from gradient_lab import track

with track("my-experiment", config, model) as tracker:
    ...
    tracker.step(step, loss=loss, lr=lr)  # after backward, before zero_grad, per optimizer step
    tracker.save_weights(model)

Runs go to ./wandb/, weights to ./models/; provenance comes from the script's git repository.
Under torchrun (`gradient_lab.distributed`), rank 0 logs the job's one run.
"""

from gradient_lab.errors import TrackingError
from gradient_lab.files import atomic_save
from gradient_lab.tracking import IdleTracker, Tracker, track

__all__ = ["IdleTracker", "Tracker", "TrackingError", "atomic_save", "track"]
