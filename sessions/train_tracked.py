"""The `train-tracked` session: run a training script in experiments/ through the W&B layer.

`nox -s train-tracked` trains the vanishing-gradients demo with its defaults, offline unless
W&B is configured. `nox -s train-tracked -- [SCRIPT] [OPTIONS]` names another script in
experiments/ and passes the options on (`-- --help` lists the demo's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sessions.project import ROOT
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

EXPERIMENTS = ROOT / "experiments"
DEFAULT_SCRIPT = "demo_vanishing_gradients"
# What `train-smoke` (CI) adds: a run of a few seconds with a log-friendly console.
SMOKE_OPTIONS = ("--smoke", "--no-progress")


def training_scripts(folder: Path = EXPERIMENTS) -> list[str]:
    """Modules in experiments/ that a user can run: those with a `main` entry point."""
    return sorted(
        path.stem
        for path in folder.glob("*.py")
        if not path.stem.startswith("_") and "\ndef main(" in path.read_text(encoding="utf-8")
    )


def command(posargs: list[str], folder: Path = EXPERIMENTS) -> list[str]:
    """The python command line for the posargs: an optional script name, then its options."""
    script, options = DEFAULT_SCRIPT, list(posargs)
    if options and not options[0].startswith("-"):
        script = options.pop(0).removesuffix(".py").replace("experiments/", "")
    available = training_scripts(folder)
    if script not in available:
        raise ValueError(
            f"There is no training script {script!r} in experiments/; "
            f"choose one of: {', '.join(available)}."
        )
    return ["python", "-m", f"experiments.{script}", *options]


def run(session: nox.Session, *, smoke: bool = False) -> None:
    try:
        args = command(list(session.posargs)) + (list(SMOKE_OPTIONS) if smoke else [])
    except ValueError as error:
        session.error(str(error))
    install_groups(session, "train", "data")
    # Train on the data set data.dvc records: pulled, restored or regenerated, never stale.
    session.run("python", "-m", "sessions.data", "ensure", env={"PYTHONPATH": str(ROOT)})
    if not (os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY")):
        # The logging layer's own default; said here so the user knows before the run starts.
        session.log("W&B is not configured: tracking offline (set WANDB_API_KEY to go online).")
    session.run(*args, env={"PYTHONPATH": str(ROOT)})
