"""remove_tree deletes trees of read-only files, as DVC leaves them, on every system."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sessions.files import remove_tree
from tests.support.dvc_repo import copy_repo

READ_ONLY = stat.S_IREAD | stat.S_IRGRP | stat.S_IROTH


def read_only_tree(root: Path) -> Path:
    """Files and folders marked read-only, the way DVC marks its cache."""
    folder = root / "cache" / "files" / "md5" / "ab"
    folder.mkdir(parents=True)
    for name in ("cdef0123", "4567.dir"):
        (folder / name).write_bytes(b"content")
        (folder / name).chmod(READ_ONLY)
    folder.chmod(READ_ONLY | stat.S_IEXEC)
    return root / "cache"


@pytest.fixture
def windows_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows' rule on every system: a file whose write bit is clear cannot be deleted.

    (POSIX lets the owner, and root always, delete a read-only file; Windows refuses with
    "Access is denied", which rmtree reports as PermissionError to its error handler.)
    """
    real_unlink: Callable[..., Any] = os.unlink

    def unlink(path: Any, *, dir_fd: int | None = None) -> None:
        if not os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode & stat.S_IWRITE:
            raise PermissionError(errno.EACCES, "Access is denied", str(path))
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "remove", unlink)


@pytest.mark.usefixtures("windows_deletes")
def test_plain_rmtree_fails_on_read_only_files_under_windows_rules(tmp_path: Path) -> None:
    # The fault remove_tree exists for: without it, the removal stops half-way.
    tree = read_only_tree(tmp_path)
    with pytest.raises(PermissionError):
        shutil.rmtree(tree)
    assert tree.exists()


@pytest.mark.usefixtures("windows_deletes")
def test_remove_tree_deletes_read_only_files_under_windows_rules(tmp_path: Path) -> None:
    tree = read_only_tree(tmp_path)
    remove_tree(tree)
    assert not tree.exists()
    assert tmp_path.exists()


def test_remove_tree_deletes_a_read_only_tree(tmp_path: Path) -> None:
    tree = read_only_tree(tmp_path)
    remove_tree(tree)
    assert not tree.exists()


def test_remove_tree_leaves_a_symlinks_target_alone(tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    target.write_text("keep", encoding="utf-8")
    target.chmod(READ_ONLY)
    tree = tmp_path / "tree"
    tree.mkdir()
    try:
        (tree / "link").symlink_to(target)
    except OSError:
        pytest.skip("this system does not let this user create symlinks")
    remove_tree(tree)
    assert not tree.exists()
    assert target.read_text(encoding="utf-8") == "keep"
    assert not target.stat().st_mode & stat.S_IWRITE


def test_a_missing_tree_is_an_error_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        remove_tree(tmp_path / "absent")
    remove_tree(tmp_path / "absent", missing_ok=True)


@pytest.mark.slow
@pytest.mark.usefixtures("windows_deletes")
def test_remove_tree_deletes_a_real_dvc_repository_and_cache(
    dvc_templates: dict[str, Path], tmp_path: Path
) -> None:
    repo = copy_repo(dvc_templates["tracked"], tmp_path / "copy")
    cache = repo / ".dvc" / "cache"
    cached = [path for path in cache.rglob("*") if path.is_file()]
    assert cached and all(not path.stat().st_mode & stat.S_IWRITE for path in cached)
    with pytest.raises(PermissionError):
        shutil.rmtree(cache)
    remove_tree(cache)
    remove_tree(repo)
    assert not repo.exists()


def sharing_violation(path: object) -> PermissionError:
    """What Windows raises for a file another process holds open (WinError 32)."""
    error = PermissionError(errno.EACCES, "The process cannot access the file because it is "
                            "being used by another process", str(path))  # fmt: skip
    error.winerror = 32  # type: ignore[attr-defined]  # set by Windows only
    return error


@dataclass
class HeldFile:
    tree: Path  # holds the one file, `held`
    attempts: int = 0  # deletes that fail before the other process lets go
    tried: int = 0
    waited: list[float] = field(default_factory=list)


@pytest.fixture
def held_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HeldFile:
    """Windows' sharing rule on every system: a file named `held` cannot be deleted while
    another process holds it (the first `attempts` deletes); sleeps are recorded, not slept."""
    held = HeldFile(tmp_path / "tree")
    held.tree.mkdir()
    (held.tree / "held").write_bytes(b"open elsewhere")
    real_unlink: Callable[..., Any] = os.unlink

    def unlink(path: Any, *, dir_fd: int | None = None) -> None:
        if Path(path).name == "held":
            held.tried += 1
            if held.tried <= held.attempts:
                raise sharing_violation(path)
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "remove", unlink)
    monkeypatch.setattr("sessions.files.time.sleep", held.waited.append)
    return held


def test_a_file_held_for_a_moment_is_removed_after_a_wait(held_file: HeldFile) -> None:
    held_file.attempts = 4
    remove_tree(held_file.tree)
    assert not held_file.tree.exists()
    assert held_file.tried == 5


def test_a_file_held_for_good_fails_with_windows_error(held_file: HeldFile) -> None:
    held_file.attempts = 1000
    with pytest.raises(PermissionError, match="being used by another process"):
        remove_tree(held_file.tree)
    assert (held_file.tree / "held").exists()
    assert held_file.tried == 8  # rmtree's try, then the handler's seven
    assert 2 < sum(held_file.waited) < 5, "a few seconds, then the error"


def test_another_permission_error_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "locked").write_bytes(b"x")
    calls: list[str] = []

    def unlink(path: Any, *, dir_fd: int | None = None) -> None:
        calls.append(str(path))
        raise PermissionError(errno.EACCES, "Access is denied", str(path))

    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(PermissionError, match="Access is denied"):
        remove_tree(tmp_path / "tree")
    assert len(calls) == 2  # rmtree's try, and one after making the entry writable
