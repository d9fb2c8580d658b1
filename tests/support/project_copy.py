"""A copy of this project in a temporary folder, as a fresh clone of the working tree has it.

Tests that plant faults or run a nested nox session work on a copy, never on the checkout.
The template is built once per test process (each xdist worker has its own temporary root,
so no two processes share it) and each test gets its own copy of the template.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.tiers import ROOT

COMMITTER = {
    "GIT_AUTHOR_NAME": "tests", "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "tests", "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}  # fmt: skip


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout


def working_tree_files(root: Path = ROOT) -> list[str]:
    """Tracked and untracked-but-not-ignored files as they are on disk (edits included)."""
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=root)
    return [name for name in dict.fromkeys(listed.split("\0")) if name and (root / name).is_file()]


def build_template(dest: Path, root: Path = ROOT) -> Path:
    """dest: the working tree's files, committed in a new git repository."""
    for name in working_tree_files(root):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    env = os.environ | COMMITTER
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("-c", "commit.gpgsign=false", "commit", "-qm", "copy of the project", cwd=dest, env=env)
    return dest


def copy_of(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest
