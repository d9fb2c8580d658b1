"""The synthetic data set: written with its sample picture, headless and reproducible."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradient_lab import synthetic_data
from tests.conftest import ROOT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_generate_writes_the_set_and_its_picture(tmp_path: Path) -> None:
    data = synthetic_data.generate(tmp_path / "data", n_samples=300, n_classes=3, seed=1)
    assert data.path == tmp_path / "data" / "synthetic.npz"
    assert data.features.shape == (300, 2) and data.n_classes == 3
    assert np.bincount(data.labels).tolist() == [100, 100, 100]
    assert (tmp_path / "data" / "synthetic_data_sample.png").read_bytes()[:8] == PNG_MAGIC
    loaded = synthetic_data.load(tmp_path / "data")
    assert np.array_equal(loaded.features, data.features)
    assert not list((tmp_path / "data").glob(".*partial"))


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = (synthetic_data.make_spirals(64, seed=s)[0] for s in (5, 5, 6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_load_generates_a_missing_set(tmp_path: Path) -> None:
    assert synthetic_data.load(tmp_path).path.is_file()


@pytest.mark.slow
def test_cli_is_headless_and_rejects_bad_input(tmp_path: Path) -> None:
    # With no display and a GUI backend requested, any pyplot window would fail the run.
    env = {**os.environ, "MPLBACKEND": "TkAgg", "DISPLAY": ""}
    ok = subprocess.run([sys.executable, "-m", "gradient_lab.synthetic_data", "--out-dir",
                         str(tmp_path), "--samples", "50"], cwd=ROOT, capture_output=True,
                        text=True, env=env)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "synthetic_data_sample.png").is_file()
    assert synthetic_data.main(["--out-dir", str(tmp_path), "--classes", "1"]) == 2


def test_bad_sizes_raise() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        synthetic_data.make_spirals(1, n_classes=3)
