"""What `gradient-lab run` costs a script nobody edited: the demo's loop (`benchmarks.demo_loop`)
as a plain process and through the runner (an offline W&B run), taking turns.

    python -m benchmarks.run_overhead [--repeats 5] [--epochs 10]

Each pair starts both processes one after the other, alternating which goes first; each prints
the ms/step of its loop after a warm-up epoch (W&B's start falls in the warm-up). Printed:
every pair's ms/step and the ratio of the medians, tracked over plain.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

LOOP = ["-m", "benchmarks.demo_loop"]


def ms_per_step(command: list[str], env: dict[str, str]) -> float:
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return float(out.rsplit("ms/step", 1)[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="pairs of runs")
    parser.add_argument("--epochs", type=int, default=10, help="timed epochs per run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as runs:
        env = os.environ | {"WANDB_MODE": "offline", "WANDB_DIR": runs, "WANDB_SILENT": "true"}
        arms = {
            "plain": [sys.executable, *LOOP, "--epochs", str(args.epochs)],
            "tracked": [
                sys.executable,
                "-m",
                "gradient_lab",
                "run",
                *LOOP,
                "--epochs",
                str(args.epochs),
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in arms}
        for pair in range(args.repeats):
            for name in list(arms)[:: 1 if pair % 2 == 0 else -1]:
                times[name].append(ms_per_step(arms[name], env))
    for name, values in times.items():
        print(f"{name:>8}: {'  '.join(f'{v:.3f}' for v in values)} ms/step")
    ratio = statistics.median(times["tracked"]) / statistics.median(times["plain"])
    print(f"ratio gradient-lab run / plain (medians): {ratio:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
