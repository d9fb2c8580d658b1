"""Removing folder trees on every system, read-only files included.

DVC marks the files in its cache read-only, and copies keep that mark. On Windows a read-only
file cannot be deleted (Python 3.11's `shutil.rmtree` stops with "Access is denied"); on POSIX a
read-only folder cannot lose its entries. `remove_tree` makes the entry (and its folder)
writable and tries again, so the same call works on Linux, macOS and Windows.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

WRITABLE = stat.S_IREAD | stat.S_IWRITE | stat.S_IEXEC


def make_writable(path: Path) -> None:
    """Add the owner's read, write and search bits (on Windows: clear the read-only mark)."""
    if path.is_symlink():
        return  # chmod would change the link's target, which is not ours to touch
    with contextlib.suppress(OSError):
        path.chmod(stat.S_IMODE(path.lstat().st_mode) | WRITABLE)


def retry_writable(function: Callable[..., Any], name: str, error: BaseException) -> None:
    """rmtree's error handler: a refused entry is made writable, then removed again."""
    if not isinstance(error, PermissionError):
        raise error
    path = Path(name)
    make_writable(path.parent)
    make_writable(path)
    function(name)


def remove_tree(path: Path, *, missing_ok: bool = False) -> None:
    """Delete `path` and everything under it, read-only files and folders included."""
    if missing_ok and not os.path.lexists(path):
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry_writable)
    else:
        shutil.rmtree(path, onerror=lambda f, n, info: retry_writable(f, n, info[1]))
