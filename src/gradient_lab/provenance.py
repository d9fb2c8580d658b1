"""Where a run came from: code version, data version, device and library versions."""

from __future__ import annotations

import platform
import re
import sys
from pathlib import Path
from typing import Any

import numpy
import torch
import wandb

from gradient_lab.git import git
from gradient_lab.layout import DATA_DVC


def data_version(dvc_file: Path = DATA_DVC) -> str:
    """The data set's content hash from its DVC file, or "untracked" before DVC versions it."""
    if not dvc_file.is_file():
        return "untracked"
    found = re.search(r"^\s*-?\s*md5:\s*(\S+)", dvc_file.read_text(encoding="utf-8"), re.MULTILINE)
    return found.group(1) if found else "unknown"


def script_path() -> Path:
    """The file of the running script (`python x.py`, `python -m pkg.x`, torchrun), else the
    working directory (an interactive session)."""
    file = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(file) if file else Path.cwd()


def provenance(
    device: str, dvc_file: Path | None = None, source: Path | None = None
) -> dict[str, Any]:
    """Code version of the git repository that `source` (default: the running script) lives
    in, the data version its `data.dvc` records, the device and library versions.

    A script outside any repository (an installed command, `python -m pytest`, a notebook) is
    represented by the working directory's repository. Outside any (or without git) the commit
    is "none" and the dirty flag None; the data version then comes from `./data.dvc`.
    """
    where = (source or script_path()).resolve()
    folder = where if where.is_dir() else where.parent
    top = git("rev-parse", "--show-toplevel", cwd=folder)
    if top is None and source is None:
        folder = Path.cwd()
        top = git("rev-parse", "--show-toplevel", cwd=folder)
    commit = git("rev-parse", "HEAD", cwd=folder) if top else None
    status = git("status", "--porcelain", "--untracked-files=no", cwd=folder) if top else None
    return {
        "git_repository": Path(top).name if top else None,  # the folder's name: no local path
        "git_commit": commit or "none",
        "git_dirty": bool(status) if status is not None else None,
        "data_version": data_version(dvc_file or (Path(top) if top else Path()) / DATA_DVC),
        "device": device,
        "cuda_device": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "wandb": wandb.__version__,
        "numpy": numpy.__version__,
    }
