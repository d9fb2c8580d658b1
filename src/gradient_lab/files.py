"""Writes that never leave half a file behind."""

from __future__ import annotations

from pathlib import Path

import torch


def atomic_save(obj: object, path: Path) -> Path:
    """torch.save through a temporary file, so an interruption never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    torch.save(obj, partial)
    partial.replace(path)
    return path
