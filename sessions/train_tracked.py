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
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from sessions.data.record import holds_recorded_version
from sessions.data.sync import DATA_DIR
from sessions.project import ROOT
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

DEFAULT_SCRIPT = "demo_vanishing_gradients"
# What `train-smoke` (CI) adds: a run of a few seconds with a log-friendly console.
SMOKE_OPTIONS = ("--smoke", "--no-progress")


# The training scripts a user can name, each experiments/<name>.py. Listed, not discovered, so
# a helper module is never offered as a training script.
TRAINING_SCRIPTS = ("demo_vanishing_gradients", "tiny_regression")

# After a signal, how long nox waits for the training to stop before it sends SIGTERM, then
# how long before it kills it. A terminal, CI and Docker (with an init that signals the process
# group) reach the training directly, so the first wait only matters where nox alone got the
# signal (`docker stop` on an image whose PID 1 is nox): nox passes SIGTERM on after it. The
# training treats that second signal as "hurry" and keeps stopping; a stop takes under 2 s,
# and the sum stays below Docker's 10 s grace and the 10 s a cancelled GitHub job gets.
INTERRUPT_TIMEOUT = 1.0
TERMINATE_TIMEOUT = 8.0


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


@contextmanager
def signals_stop_nox() -> Iterator[list[int]]:
    """While the block runs, SIGINT and SIGTERM interrupt nox the way Ctrl-C does.

    nox then waits for the running command and escalates (INTERRUPT_TIMEOUT...). Without this a
    SIGTERM kills nox outright (or is ignored when nox is PID 1 in a container), leaving the
    training without a parent. A second SIGTERM is ignored (the stop is under way); a second
    Ctrl-C interrupts the wait, so nox leaves at once. Yields the signals received, in order.
    """
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1 or signum == signal.SIGINT:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    signals = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(session: nox.Session, *, smoke: bool = False) -> None:
    try:
        launcher, script, options = split(list(session.posargs))
    except ValueError as error:
        session.error(str(error))
    options += list(SMOKE_OPTIONS) if smoke else []
    resume_env = check_options(script, options)
    env = {resume_env: resume_command(session)} if resume_env else {}
    args = ["python", *launcher, "-m", "experiments", script, *options]
    with signals_stop_nox() as received:
        try:
            train(session, args, env, received)
        except KeyboardInterrupt:
            # The command stopped with a non-zero code (nox re-raises only then): leave as the
            # training did, 128 + the first signal, not as a failed session.
            raise SystemExit(128 + (received[0] if received else signal.SIGINT)) from None


def stop_if_signalled(received: list[int]) -> None:
    """After a command: a signal that came while it ran stops the session, whatever nox made of
    the command's exit. nox passes a stop on only when the command failed, and a command that a
    signal stopped can look successful: CPython's Popen.wait, when the signal's handler runs just
    after it reaped the child (the child, signalled too, was quicker), loses the exit status
    and reports 0."""
    if received:
        raise KeyboardInterrupt


def train(session: nox.Session, args: list[str], env: dict[str, str], received: list[int]) -> None:
    install_groups(session, "data", project=True)
    # Train on the data set data.dvc records: pulled, restored or regenerated, never stale.
    # Where data/ already is that version (read here, without DVC), there is nothing to do;
    # else the data session's DVC does it. (nox runs from the project root, which `python -m`
    # puts on sys.path.)
    if holds_recorded_version(ROOT, DATA_DIR):
        session.log(f"{DATA_DIR}/ matches {DATA_DIR}.dvc.")
    else:
        session.run("python", "-m", "sessions.data", "ensure")
        stop_if_signalled(received)
    if not (os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY")):
        # The logging layer's own default; said here so the user knows before the run starts.
        session.log("W&B is not configured: tracking offline (set WANDB_API_KEY to go online).")
    session.run(*args, env=env, interrupt_timeout=INTERRUPT_TIMEOUT,
                terminate_timeout=TERMINATE_TIMEOUT)  # fmt: skip
    stop_if_signalled(received)
