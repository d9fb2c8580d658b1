"""The `lock` session: re-resolve the dependency groups into the locks.

`requirements.lock.txt` pins every group together, for every venv and the image. The security
scanners get a lock of their own, resolved from their group alone, so their venv installs
whatever the main lock pins, even pins that conflict with the scanners' own dependencies.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from sessions.project import LOCK, PYPROJECT, SCANNER_LOCK
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

# The locks are universal (valid on Linux, Windows and macOS) for this Python.
LOCK_PYTHON = "3.11"
SCANNER_GROUP = "security"


def all_groups() -> list[str]:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    return sorted(data["dependency-groups"])


def compile_command(*extra: str, groups: list[str] | None = None, output: Path = LOCK) -> list[str]:
    chosen = all_groups() if groups is None else groups
    options = [arg for group in chosen for arg in ("--group", f"pyproject.toml:{group}")]
    # The main lock also resolves pyproject.toml itself: the library's run-time dependencies.
    project = [PYPROJECT.name] if groups is None else []
    return [
        "uv", "pip", "compile", "--universal", "--python-version", LOCK_PYTHON,
        "--quiet", *project, *options, "--output-file", output.name, *extra,
    ]  # fmt: skip


def lock_commands(*extra: str) -> list[list[str]]:
    """The main lock, then the scanners' lock."""
    scanners = compile_command(*extra, groups=[SCANNER_GROUP], output=SCANNER_LOCK)
    return [compile_command(*extra), scanners]


def run(session: nox.Session) -> None:
    install_groups(session, "lock")
    for command in lock_commands(*session.posargs):
        session.run(*command)
    session.log(f"Wrote {LOCK} and {SCANNER_LOCK}")
