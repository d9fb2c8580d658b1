"""Where training reads and writes by default, relative to the working directory.

A script run from any repository keeps its data, weights and runs beside it: `data/`,
`models/` and `wandb/` under the folder it was started from. Every default can be overridden
(options, `WANDB_DIR`).
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path("data")
MODELS_DIR = Path("models")
# W&B writes its runs into <run dir>/wandb/.
DEFAULT_RUN_DIR = Path()
# Present once the data set is versioned with DVC.
DATA_DVC = Path("data.dvc")
