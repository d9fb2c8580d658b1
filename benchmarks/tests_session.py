"""How much the `tests` session costs on top of plain pytest.

Warm: `nox -s tests` on a reused venv against `python -m pytest` in that same venv, median of
N runs each, interleaved so both see the same machine load. `--cold` also times the first
`nox -s tests` in a fresh clone (venv creation and installs included).

    python benchmarks/tests_session.py [--runs 3] [--cold]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOX = [sys.executable, "-m", "nox"]
sys.path.insert(0, str(ROOT))  # run as a script: the project's modules are not on the path

from sessions.tests import coverage_file, pytest_args  # noqa: E402


def venv_python(project: Path) -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    return project / ".nox" / "tests" / scripts / ("python.exe" if os.name == "nt" else "python")


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def warm(runs: int) -> None:
    timed([*NOX, "-s", "tests"], ROOT)  # make sure the venv exists and is up to date
    python = str(venv_python(ROOT))
    env = os.environ | {"COVERAGE_FILE": coverage_file()}
    with_cov = [python, "-m", "pytest", *pytest_args([])]
    session, plain, covered = [], [], []
    for _ in range(runs):
        session.append(timed([*NOX, "-s", "tests"], ROOT))
        plain.append(timed([python, "-m", "pytest", "-q", "-p", "no:cov"], ROOT))
        covered.append(timed(with_cov, ROOT, env))
    s, p, c = (statistics.median(x) for x in (session, plain, covered))
    print(f"warm nox -s tests              : {s:7.2f} s (median of {runs})")
    print(f"plain pytest, same venv        : {p:7.2f} s")
    print(f"pytest + the session's coverage: {c:7.2f} s")
    print(f"nox -s tests / plain pytest    : {s / p:7.2f}x  (aim <= 1.30x)")
    print(f"nox -s tests / pytest + cov    : {s / c:7.2f}x  (what nox itself adds)")


def cold() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        seconds = timed([*NOX, "-s", "tests"], clone)
    print(f"cold nox -s tests (fresh clone, new venv): {seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time a fresh clone")
    args = parser.parse_args()
    warm(args.runs)
    if args.cold:
        cold()


if __name__ == "__main__":
    main()
