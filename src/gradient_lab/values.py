"""What `track()` accepts: a config in any common shape, and metric values of any common type."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy
import torch


def config_dict(config: object) -> dict[str, Any]:
    """A Mapping, an argparse.Namespace or a dataclass instance as a plain dict (None: empty)."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, argparse.Namespace):
        return dict(vars(config))
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    raise TypeError(
        f"config must be a Mapping, an argparse.Namespace or a dataclass instance, "
        f"not {type(config).__name__}."
    )


def _one(key: str, value: object) -> torch.Tensor | float:
    """One scalar: a one-element tensor (detached, left on its device) or a float."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.detach().reshape(())
    if isinstance(value, bool | int | float | numpy.number | numpy.bool_):
        return float(value)
    if isinstance(value, numpy.ndarray) and value.size == 1 and value.dtype.kind in "biuf":
        return float(value.item())
    raise TypeError(
        f"Metric {key!r} must be a number, a one-element tensor, a numpy scalar or a sequence "
        f"or dict of them (e.g. one learning rate per parameter group), not {_describe(value)}."
    )


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor | numpy.ndarray):
        return f"a {type(value).__name__} of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def scalars(key: str, value: object) -> dict[str, torch.Tensor | float]:
    """The scalars a metric value stands for: itself, `key/group<i>` for each item of a
    sequence (a list of learning rates, one per parameter group) or `key/<name>` for each
    item of a dict (`lr={"decay": ..., "no_decay": ...}`)."""
    if isinstance(value, Mapping):
        result: dict[str, torch.Tensor | float] = {}
        for name, item in value.items():
            result |= scalars(f"{key}/{name}", item)
        return result
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return {f"{key}/group{i}": _one(f"{key}/group{i}", item) for i, item in enumerate(value)}
    return {key: _one(key, value)}
