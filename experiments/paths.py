"""Where experiments read and write: data under data/, weights under models/ (both git-ignored)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
MODELS_DIR = ROOT / "models"
# W&B writes its runs into <run dir>/wandb/; the repository root keeps them in ./wandb/.
DEFAULT_RUN_DIR = ROOT
# Present once the data set is versioned with DVC.
DATA_DVC = ROOT / "data.dvc"
