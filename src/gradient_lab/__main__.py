"""`gradient-lab run [OPTIONS] (SCRIPT | -m MODULE) [ARGS...]` (also `python -m gradient_lab run`):
run a PyTorch training script unchanged, tracked in one W&B run (see `gradient_lab.runner`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gradient_lab.interrupt import exit_now, exit_on_signals

USAGE = (
    "gradient-lab run [--experiment NAME] [--log-every N] [--mode MODE] (SCRIPT | -m MODULE) "
    "[ARGS...]"
)
TAKES_A_VALUE = ("--experiment", "--log-every", "--mode")


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, str, bool, list[str]]:
    """The options, the script or module, whether it is a module, and the script's arguments."""
    parser = argparse.ArgumentParser(prog="gradient-lab", usage=USAGE, description=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--experiment", help="the run's experiment name (default: the script's)")
    parser.add_argument("--log-every", type=int, default=10, help="steps per logged row")
    parser.add_argument("--mode", choices=("online", "offline", "disabled"), help="W&B's mode")
    args = list(argv)
    end = 1
    while end < len(args) and args[end].startswith("--"):
        end += 1 if "=" in args[end] or args[end] not in TAKES_A_VALUE else 2
    options = parser.parse_args(args[:end])
    target = args[end:]
    module = target[:1] == ["-m"]
    if module:
        target = target[1:]
    if not target or target[0].startswith("-"):
        parser.error("name a script to run (or -m MODULE)")
    if options.log_every < 1:
        parser.error("--log-every must be at least 1")
    return options, target[0], module, target[1:]


def main(argv: Sequence[str] | None = None) -> int:
    options, target, module, args = parse(sys.argv[1:] if argv is None else argv)
    with exit_on_signals():  # a signal while torch and W&B import ends here, at once
        from gradient_lab import runner  # noqa: PLC0415 - after the handler is in place
    return runner.run(
        target,
        args,
        module=module,
        experiment=options.experiment,
        log_every=options.log_every,
        mode=options.mode,
        exit_on_stop=False,
    )


if __name__ == "__main__":
    code = main()
    if code > 128:
        exit_now(code)  # stopped by a signal, the run closed: skip Python's slow teardown
    sys.exit(code)
