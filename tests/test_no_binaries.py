"""git holds source and text only: data, images, tensors and weights go to DVC."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

BINARY_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".pt", ".pth", ".ckpt", ".safetensors",
    ".onnx", ".npy", ".npz", ".pkl", ".pickle", ".h5", ".hdf5", ".bin", ".parquet", ".zip",
    ".tar", ".gz", ".docx", ".pdf", ".whl",
}  # fmt: skip
# Binary files that belong in git, each with its reason. Keep this short.
ALLOWED: dict[str, str] = {}


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [name for name in out.decode("utf-8").split("\0") if name]


def is_binary(path: Path) -> bool:
    return path.suffix.lower() in BINARY_SUFFIXES or b"\0" in path.read_bytes()[:8192]


@pytest.mark.slow
def test_git_holds_no_binary_artifact_outside_the_allow_list() -> None:
    files = tracked_files()
    assert "pyproject.toml" in files
    binaries = [
        name
        for name in files
        if name not in ALLOWED and (ROOT / name).is_file() and is_binary(ROOT / name)
    ]
    assert not binaries, f"binary files in git (track them with DVC instead): {binaries}"


def test_the_check_sees_binaries(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"header")
    sneaky = tmp_path / "tensor.txt"
    sneaky.write_bytes(b"\x80\x02\0\0data")
    text = tmp_path / "notes.md"
    text.write_text("# notes\n", encoding="utf-8")
    assert is_binary(weights)
    assert is_binary(sneaky)
    assert not is_binary(text)


@pytest.mark.slow
def test_dvc_tracked_outputs_are_ignored_by_git() -> None:
    for path in ("data/synthetic_data_sample.png", "data/train.pt", "models/sigmoid_deep.pt"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert ignored.returncode == 0, f"git would track {path}"
