"""Checkpoints: what resuming a tracked run needs, written whole or not at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradient_lab import distributed
from gradient_lab.errors import TrackingError
from gradient_lab.files import atomic_save

KEY = "gradient_lab"  # the tracker's own part of a checkpoint: the run, the next step, the RNG


def save(path: Path, objects: dict[str, Any], *, run_id: str | None, next_step: int) -> Path:
    """The state dict of each object that has one (model, optimizer, scheduler, GradScaler),
    every other value as it is, torch's random state, the next step and the run's id."""
    state = {name: _state_of(value) for name, value in objects.items()}
    state[KEY] = {"run_id": run_id, "next_step": next_step, "rng": torch.get_rng_state()}
    return atomic_save(state, path)


def _state_of(value: Any) -> Any:
    if isinstance(value, nn.Module):
        return distributed.state_dict(value)
    return value.state_dict() if hasattr(value, "state_dict") else value


def read(path: Path) -> dict[str, Any]:
    """A checkpoint `save` wrote; a missing or foreign file is one sentence."""
    if not path.is_file():
        raise TrackingError(f"Nothing to resume: there is no checkpoint at {path}.")
    try:
        state: dict[str, Any] = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:
        raise TrackingError(f"The checkpoint {path} cannot be read ({error}).") from error
    if not isinstance(state, dict) or KEY not in state:
        raise TrackingError(
            f"{path} was not written by tracker.save_checkpoint: it names no run to resume."
        )
    return state


def restore(path: Path, objects: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Load the checkpoint into the objects that have `load_state_dict` and torch's random
    state; the step to continue from, and every value restored by name (plain values too)."""
    state = read(path)
    missing = sorted(set(objects) - set(state))
    if missing:
        saved = ", ".join(sorted(set(state) - {KEY}))
        raise TrackingError(
            f"The checkpoint {path} holds no {', '.join(missing)}: restore the names it was "
            f"saved with ({saved})."
        )
    restored = {}
    for name, target in objects.items():
        inner = distributed.unwrap(target) if isinstance(target, nn.Module) else target
        if hasattr(inner, "load_state_dict"):
            inner.load_state_dict(state[name])
            restored[name] = target
        else:
            restored[name] = state[name]
    torch.set_rng_state(state[KEY]["rng"])
    return int(state[KEY]["next_step"]), restored
