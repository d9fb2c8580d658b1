"""Writes that never leave half a file behind."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import torch


def partial_name(path: Path) -> Path:
    """A temporary name beside `path` that no other process (pid) or call (random) shares."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(temporary path)`, then rename onto `path`: readers see the whole file or none,
    and processes writing the same file at once never collide."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_name(path)
    try:
        write(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def atomic_save(obj: object, path: Path) -> Path:
    """torch.save through a temporary file, so an interruption never leaves half a file. The
    same object gives the same bytes: saved to a path, torch names the archive's records after
    that (temporary, unique) file; saved to an open file, "archive/" each time."""

    def save(partial: Path) -> None:
        with partial.open("wb") as handle:
            torch.save(obj, handle)

    return atomic_write(path, save)


def link_or_copy(source: Path, target: Path) -> Path:
    """`target` with `source`'s content: a hard link where the file system allows, else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)
    return target
