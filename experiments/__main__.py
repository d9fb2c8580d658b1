"""Run a training script of experiments/ by name: `python -m experiments SCRIPT [OPTIONS]`.

What `nox -s train-tracked` starts. It differs from `python -m experiments.SCRIPT` in one
way: Ctrl-C or SIGTERM is handled from the first instant, so a signal that arrives while torch
and W&B are still importing ends the process at once with one line and 128 + the signal's
number, instead of a traceback (or, for SIGTERM, a silent death).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from gradient_lab.interrupt import exit_now, exit_on_signals


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        print("usage: python -m experiments SCRIPT [OPTIONS]", file=sys.stderr)
        return 2
    script, options = args[0], args[1:]
    with exit_on_signals():
        module = importlib.import_module(f"experiments.{script}")
    code: int = module.main(options)
    return code


if __name__ == "__main__":
    code = main()
    if code > 128:
        exit_now(code)  # stopped by a signal, its work saved: skip Python's slow teardown
    sys.exit(code)
