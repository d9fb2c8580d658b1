"""The `train-tracked` session: run a training script through the W&B layer, unedited.

`nox -s train-tracked` trains the vanishing-gradients demo with its defaults, offline unless
W&B is configured. `nox -s train-tracked -- [--nproc N] [NAME_OR_PATH] [OPTIONS]` runs another
script: a name of experiments/ (any `experiments/<name>.py`; adding an experiment is adding a
file) or a path to a .py file, with the options passed on (`-- --help` lists the demo's). Every
script runs through `python -m gradient_lab run`, which tracks a script that never imports the
library and stays out of the way of one that calls `track()` itself (the demo). `--nproc N`
launches N processes on this machine through torch's launcher (`torch.distributed.run
--standalone`), which the scripts join with gloo on CPU and nccl on CUDA.

Stopping: Ctrl-C, `docker stop` or a cancelled CI job stops the training; the demo saves a
checkpoint at a step boundary and says on one line how to resume, any script's run closes with
the signal's exit code. The session gives it the time to do so and exits as the training did:
130 after Ctrl-C, 143 after SIGTERM. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sessions.project import ROOT
from sessions.stops import (
    INTERRUPT_TIMEOUT,
    TERMINATE_TIMEOUT,
    stop_if_signalled,
    stopped_by_signals,
)
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

DEFAULT_SCRIPT = "demo_vanishing_gradients"
EXPERIMENTS = ROOT / "experiments"
# What `train-smoke` (CI) adds: a run of a few seconds with a log-friendly console.
SMOKE_OPTIONS = ("--smoke", "--no-progress")


def training_scripts(folder: Path = EXPERIMENTS) -> list[str]:
    """The names of experiments/ (a module whose name starts with `_` or ends with `_options`
    is a helper, not an experiment)."""
    names = (path.stem for path in folder.glob("*.py"))
    return sorted(n for n in names if not n.startswith("_") and not n.endswith("_options"))


def split(posargs: list[str]) -> tuple[list[str], list[str], list[str]]:
    """The launcher (`--nproc N`: torch's), what to run (`-m experiments.<name>` or a path;
    the demo by default) and its options."""
    options = list(posargs)
    launcher: list[str] = []
    if options and (options[0] == "--nproc" or options[0].startswith("--nproc=")):
        flag = options.pop(0)
        value = flag.partition("=")[2] if "=" in flag else (options.pop(0) if options else "")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--nproc takes a number of processes (1 or more), got {value!r}.")
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", value]
    named = options.pop(0) if options and not options[0].startswith("-") else DEFAULT_SCRIPT
    path = Path(named)
    if path.suffix != ".py" and named in training_scripts():
        return launcher, ["-m", f"experiments.{named}"], options
    if path.suffix == ".py" and path.is_file():
        inside = path.resolve().parent == EXPERIMENTS and path.stem in training_scripts()
        return launcher, (["-m", f"experiments.{path.stem}"] if inside else [named]), options
    raise ValueError(
        f"There is no training script {named!r}: name one of experiments/ "
        f"({', '.join(training_scripts())}) or give the path of a .py file."
    )


def command(posargs: list[str]) -> list[str]:
    """The python command line for the posargs: `--nproc N`, a script, then its options.

    `python -m gradient_lab run` handles a signal from its first instant (no traceback when
    Ctrl-C comes while torch is importing) and tracks the script as it runs.
    """
    launcher, target, options = split(posargs)
    return ["python", *launcher, "-m", "gradient_lab", "run", *target, *options]


def check_options(script: str, options: list[str]) -> str | None:
    """Parse the options with the script's light options module, before anything slow runs.

    A bad option exits here (argparse's message, exit 2), as does `--help` (exit 0). Returns the
    name of the environment variable through which the script learns the resume command.
    """
    name = f"experiments.{script}_options"
    if importlib.util.find_spec(name) is None:
        return None
    module = importlib.import_module(name)
    module.parse_options(options)
    env_name: str | None = getattr(module, "RESUME_COMMAND_ENV", None)
    return env_name


# What runs nox, where that is not the user's shell: `docker compose run --rm train` in the
# image's compose service, so the resume command printed in a container is one to type outside.
LAUNCHER_ENV = "GRADIENT_LAB_LAUNCHER"


def resume_command(session: nox.Session, environ: Mapping[str, str] = os.environ) -> str:
    """The exact command that continues a stopped run: this session with `--resume` added."""
    launcher = shlex.split(environ.get(LAUNCHER_ENV, ""))
    nox_options = ["--no-venv"] if session.venv_backend == "none" else []
    posargs = [arg for arg in session.posargs if arg != "--resume"]
    return shlex.join(
        [*launcher, "nox", *nox_options, "-s", session.name, "--", *posargs, "--resume"]
    )


def run(session: nox.Session, *, smoke: bool = False) -> None:
    posargs = [*session.posargs, *(SMOKE_OPTIONS if smoke else ())]
    try:
        _launcher, target, options = split(posargs)
    except ValueError as error:
        session.error(str(error))
    # A script of experiments/ with an options module has its options checked first.
    script = target[1].removeprefix("experiments.") if target[0] == "-m" else ""
    resume_env = check_options(script, options) if script else None
    env = {resume_env: resume_command(session)} if resume_env else {}
    with stopped_by_signals() as received:
        train(session, command(posargs), env, received)


def train(session: nox.Session, args: list[str], env: dict[str, str], received: list[int]) -> None:
    install_groups(session, "data", project=True)
    # Train on the data set data.dvc records: pulled, restored or regenerated, never stale, as
    # DVC judges it. (nox runs from the project root, which `python -m` puts on sys.path.)
    session.run("python", "-m", "sessions.data", "ensure")
    stop_if_signalled(received)
    if not (os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY")):
        # The logging layer's own default; said here so the user knows before the run starts.
        session.log("W&B is not configured: tracking offline (set WANDB_API_KEY to go online).")
    session.run(*args, env=env, interrupt_timeout=INTERRUPT_TIMEOUT,
                terminate_timeout=TERMINATE_TIMEOUT)  # fmt: skip
    stop_if_signalled(received)
