"""The `train-tracked` session: run a training script in experiments/ through the W&B layer.

`nox -s train-tracked` trains the vanishing-gradients demo with its defaults, offline unless
W&B is configured. `nox -s train-tracked -- [--nproc N] [SCRIPT] [OPTIONS]` names another script
in experiments/ and passes the options on (`-- --help` lists the demo's); `--nproc N` launches N
processes on this machine through torch's launcher (`torch.distributed.run --standalone`), which
the scripts join with gloo on CPU and nccl on CUDA.

Stopping: Ctrl-C, `docker stop` or a cancelled CI job stops the training at a step boundary;
it saves a checkpoint, closes its run and says on one line how to resume. The session gives it
the time to do so and exits as the training did: 130 after Ctrl-C, 143 after SIGTERM. A second
Ctrl-C aborts at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING

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
# What `train-smoke` (CI) adds: a run of a few seconds with a log-friendly console.
SMOKE_OPTIONS = ("--smoke", "--no-progress")


# The training scripts a user can name, each experiments/<name>.py. Listed, not discovered, so
# a helper module is never offered as a training script.
TRAINING_SCRIPTS = ("demo_vanishing_gradients", "tiny_regression")


def split(posargs: list[str]) -> tuple[list[str], str, list[str]]:
    """The launcher (`--nproc N`: torch's), the script (the demo by default) and its options."""
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
    if script not in TRAINING_SCRIPTS:
        raise ValueError(
            f"There is no training script {script!r} in experiments/; "
            f"choose one of: {', '.join(TRAINING_SCRIPTS)}."
        )
    return launcher, script, options


def command(posargs: list[str]) -> list[str]:
    """The python command line for the posargs: `--nproc N`, an optional script name, then
    its options.

    `python -m experiments SCRIPT` handles a signal from its first instant (no traceback when
    Ctrl-C comes while torch is importing).
    """
    launcher, script, options = split(posargs)
    return ["python", *launcher, "-m", "experiments", script, *options]


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
    try:
        launcher, script, options = split(list(session.posargs))
    except ValueError as error:
        session.error(str(error))
    options += list(SMOKE_OPTIONS) if smoke else []
    resume_env = check_options(script, options)
    env = {resume_env: resume_command(session)} if resume_env else {}
    args = ["python", *launcher, "-m", "experiments", script, *options]
    with stopped_by_signals() as received:
        train(session, args, env, received)


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
