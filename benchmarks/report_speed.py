"""How long `nox -s report` takes, against the bare DVC calls it is built on, in one run.

Run with a Python that has nox, DVC, torch and the project (e.g. the tests venv):

    .nox/tests-3-11/bin/python -m benchmarks.report_speed [--repeat 3]

In a throw-away copy of this working tree (a git repository with `main` at its one commit,
its data generated once), on a branch, it times:

- baseline: `dvc metrics diff main` then `dvc plots diff main --json`, one after the other;
- `nox --no-venv -s report` on a README-only change (nothing to retrain);
- the same on a change of one stage's learning rate (that stage retrained first; the change is
  reverted and the lock restored between repeats, so every repeat retrains).

Prints medians and each as a ratio of the baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.project_copy import COMMITTER, build_template

ROOT = Path(__file__).resolve().parent.parent


def run(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{proc.stdout}{proc.stderr}")


def timed(
    repeat: int, action: Callable[[], None], reset: Callable[[], None] = lambda: None
) -> float:
    """Median wall time of `action` in seconds; `reset` runs untimed before each repeat."""
    times = []
    for _ in range(repeat):
        reset()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--repeat", type=int, default=3)
    repeat = cli.parse_args().repeat
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        project = build_template(base / "project")
        scripts = str(Path(sys.executable).parent)
        env = {
            **os.environ, **COMMITTER, "DVC_NO_ANALYTICS": "1", "WANDB_MODE": "offline",
            "WANDB_SILENT": "true", "WANDB_DIR": str(base), "PYTHONPATH": str(project / "src"),
            "PATH": os.pathsep.join([scripts, os.environ["PATH"]]),
        }  # fmt: skip
        env.pop("WANDB_API_KEY", None)
        git = ["git", "-c", "commit.gpgsign=false"]
        run([*git, "branch", "-M", "main"], project, env)
        run([*git, "checkout", "-qb", "change"], project, env)
        (project / "README.md").write_text("# README only\n", encoding="utf-8")
        run([*git, "commit", "-qam", "README only"], project, env)
        report = [sys.executable, "-m", "nox", "--no-venv", "-s", "report"]
        run(report, project, env)  # data generated once, as on a user's machine

        def bare() -> None:
            run([sys.executable, "-m", "dvc", "metrics", "diff", "main"], project, env)
            run([sys.executable, "-m", "dvc", "plots", "diff", "main", "--json"], project, env)

        baseline = timed(repeat, bare)
        nothing = timed(repeat, lambda: run(report, project, env))

        params, lock = project / "params.yaml", project / "dvc.lock"
        kept = {path: path.read_bytes() for path in (params, lock)}

        def one_stage() -> None:
            for path, data in kept.items():
                path.write_bytes(data)
            params.write_text(kept[params].decode().replace("lr: 0.1", "lr: 0.2"), "utf-8")
            shutil.rmtree(project / "build", ignore_errors=True)

        retrain = timed(repeat, lambda: run(report, project, env), reset=one_stage)
    print(f"baseline  dvc metrics diff + dvc plots diff  {baseline:6.2f} s")
    print(f"report    nothing to retrain                 {nothing:6.2f} s  "
          f"({nothing / baseline:5.2f}x baseline)")  # fmt: skip
    print(f"report    one stage retrained                {retrain:6.2f} s  "
          f"({retrain / baseline:5.2f}x baseline)")  # fmt: skip


if __name__ == "__main__":
    main()
