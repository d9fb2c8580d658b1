"""Throw-away git + DVC repositories for the data tests, isolated from the user's DVC and AWS.

Every DVC command is a new Python process (about a second on a busy 2-core machine), so the
repositories are built once per test run and copied for each test.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

# The default remote of every test repository: a folder beside it, like the committed one.
CONFIG = """[core]
    remote = local
    analytics = false
['remote "local"']
    url = ../../local-store
"""


def isolated_env(tmp: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """DVC and botocore read only what the test gives them; retries are kept short."""
    drop = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN")
    env = {k: v for k, v in environ.items() if k not in drop and not k.startswith("COVERAGE")}
    for name in ("DVC_SITE_CACHE_DIR", "DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR"):
        env[name] = str(tmp / name.lower())
    env.update(
        DVC_NO_ANALYTICS="1",
        AWS_CONFIG_FILE=str(tmp / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "aws-credentials"),
        AWS_MAX_ATTEMPTS="2",
    )
    return env


def isolate(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """isolated_env for this test's child processes. They skip coverage too: DVC is not our
    code, and a child measured from a throw-away repo would count the wrong folder."""
    drop = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN")
    for name in [*drop, *(k for k in os.environ if k.startswith("COVERAGE"))]:
        monkeypatch.delenv(name, raising=False)
    for name, value in isolated_env(tmp, {}).items():
        monkeypatch.setenv(name, value)


def dvc(root: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def build_repo(base: Path, *, tracked: bool) -> Path:
    """base/repo: git + DVC with the local remote base/local-store; with `tracked`, data/ is
    recorded in data.dvc and pushed."""
    env = isolated_env(base)
    repo = base / "repo"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q", env=env)
    (repo / ".dvc" / "config").write_text(CONFIG, encoding="utf-8")
    if tracked:
        write_data(repo / "data")
        dvc(repo, "add", "-q", "data", env=env)
        dvc(repo, "push", "-q", env=env)
    return base


def copy_repo(template: Path, dest: Path) -> Path:
    """A private copy of a built repo (and its local remote) under dest; returns the repo."""
    shutil.copytree(template, dest, symlinks=True, dirs_exist_ok=True)
    return dest / "repo"


def write_data(path: Path, files: int = 3, size: int = 64 * 1024, seed: int = 0) -> None:
    """A stand-in for the synthetic data generator: deterministic for a given seed."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        (path / f"part-{index:03d}.bin").write_bytes(rng.randbytes(size))
    (path / "README.txt").write_text(f"synthetic, seed {seed}\n", encoding="utf-8")


def digest_tree(path: Path) -> dict[str, str]:
    """Relative file name -> sha256 of its bytes, for every file under `path`."""
    return {
        file.relative_to(path).as_posix(): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }
