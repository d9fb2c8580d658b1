"""Files and paths on every system: tools' paths in one form, and tree removal.

Tools print paths joined with the host's separator (DVC's `data\\`, detect-secrets' and
bandit's `experiments\\login.py` on Windows); `tool_path` turns each into the form git, the
.dvc files and our reports use, so a comparison never depends on the OS that printed it.

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
import time
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any


def tool_path(printed: str) -> str:
    """A path as a tool printed it, '/'-separated, without `./` or a trailing separator."""
    return PurePath(printed.replace(os.sep, "/")).as_posix()


WRITABLE = stat.S_IREAD | stat.S_IWRITE | stat.S_IEXEC


def make_writable(path: Path) -> None:
    """Add the owner's read, write and search bits (on Windows: clear the read-only mark)."""
    if path.is_symlink():
        return  # chmod would change the link's target, which is not ours to touch
    with contextlib.suppress(OSError):
        path.chmod(stat.S_IMODE(path.lstat().st_mode) | WRITABLE)


# Windows: "The process cannot access the file because it is being used by another process"
# (a child that is still exiting, an indexer or a virus scanner holding it for a moment).
SHARING_VIOLATION = 32
# Seconds to wait before each new attempt on a held file: about 3 s in all.
HELD_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


def retry_writable(function: Callable[..., Any], name: str, error: BaseException) -> None:
    """rmtree's error handler: a refused entry is made writable, then removed again; one
    that another process holds open (Windows) is retried for a few seconds."""
    if not isinstance(error, PermissionError):
        raise error
    path = Path(name)
    make_writable(path.parent)
    make_writable(path)
    for delay in HELD_RETRIES:
        try:
            function(name)
            return
        except PermissionError as again:
            if getattr(again, "winerror", None) != SHARING_VIOLATION:
                raise
        time.sleep(delay)
    function(name)


def remove_tree(path: Path, *, missing_ok: bool = False) -> None:
    """Delete `path` and everything under it, read-only files and folders included."""
    if missing_ok and not os.path.lexists(path):
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry_writable)
    else:
        shutil.rmtree(path, onerror=lambda f, n, info: retry_writable(f, n, info[1]))
