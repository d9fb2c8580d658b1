"""The `train-tracked` session: run a training script in experiments/ through the W&B layer.

`nox -s train-tracked` trains the vanishing-gradients demo with its defaults, offline unless
W&B is configured. `nox -s train-tracked -- [--nproc N] [SCRIPT] [OPTIONS]` names another script
in experiments/ and passes the options on (`-- --help` lists the demo's); `--nproc N` launches N
processes on this machine through torch's launcher (`torch.distributed.run --standalone`), which
the scripts join with gloo on CPU and nccl on CUDA.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

DEFAULT_SCRIPT = "demo_vanishing_gradients"
# What `train-smoke` (CI) adds: a run of a few seconds with a log-friendly console.
SMOKE_OPTIONS = ("--smoke", "--no-progress")


# The training scripts a user can name, each experiments/<name>.py. Listed, not discovered, so
# a helper module is never offered as a training script.
TRAINING_SCRIPTS = ("demo_vanishing_gradients", "tiny_regression")


def command(posargs: list[str]) -> list[str]:
    """The python command line for the posargs: `--nproc N`, an optional script name, then
    its options."""
    options = list(posargs)
    launcher: list[str] = []
    if options and (options[0] == "--nproc" or options[0].startswith("--nproc=")):
        flag = options.pop(0)
        value = flag.partition("=")[2] if "=" in flag else (options.pop(0) if options else "")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--nproc takes a number of processes (1 or more), got {value!r}.")
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", value]
    script = DEFAULT_SCRIPT
    if options and not options[0].startswith("-"):
        script = options.pop(0).removesuffix(".py").replace("experiments/", "")
    available = TRAINING_SCRIPTS
    if script not in available:
        raise ValueError(
            f"There is no training script {script!r} in experiments/; "
            f"choose one of: {', '.join(available)}."
        )
    return ["python", *launcher, "-m", f"experiments.{script}", *options]


def run(session: nox.Session, *, smoke: bool = False) -> None:
    try:
        args = command(list(session.posargs)) + (list(SMOKE_OPTIONS) if smoke else [])
    except ValueError as error:
        session.error(str(error))
    install_groups(session, "data", project=True)
    # Train on the data set data.dvc records: pulled, restored or regenerated, never stale.
    # (nox runs from the project root, which `python -m` puts on sys.path.)
    session.run("python", "-m", "sessions.data", "ensure")
    if not (os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY")):
        # The logging layer's own default; said here so the user knows before the run starts.
        session.log("W&B is not configured: tracking offline (set WANDB_API_KEY to go online).")
    session.run(*args)
