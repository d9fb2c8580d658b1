"""Throw-away git + DVC repositories for the data tests, isolated from the user's DVC and AWS."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from pathlib import Path

import pytest

# A sibling of the repository, like the committed default remote.
LOCAL_REMOTE = "local-store"


def isolate(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """DVC and botocore read only what the test gives them; retries are kept short."""
    for name in ("DVC_SITE_CACHE_DIR", "DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR"):
        monkeypatch.setenv(name, str(tmp / name.lower()))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "aws-credentials"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def dvc(root: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def make_repo(root: Path) -> Path:
    """A git repository with DVC initialised and a local default remote beside it."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    dvc(root, "remote", "add", "-d", "local", str(root.parent / LOCAL_REMOTE))
    return root


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
