"""The `lock` session: re-resolve every dependency group into requirements.lock.txt."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING

from sessions.project import LOCK, PYPROJECT
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

# The lock is universal (valid on Linux, Windows and macOS) for this Python.
LOCK_PYTHON = "3.11"


def all_groups() -> list[str]:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    return sorted(data["dependency-groups"])


def compile_command(*extra: str) -> list[str]:
    groups = [arg for group in all_groups() for arg in ("--group", f"pyproject.toml:{group}")]
    # pyproject.toml itself: the library's run-time dependencies ([project].dependencies).
    return [
        "uv", "pip", "compile", "--universal", "--python-version", LOCK_PYTHON,
        "--quiet", PYPROJECT.name, *groups, "--output-file", LOCK.name, *extra,
    ]  # fmt: skip


def run(session: nox.Session) -> None:
    install_groups(session, "lock")
    session.run(*compile_command(*session.posargs))
    session.log(f"Wrote {LOCK}")
