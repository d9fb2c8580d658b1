"""What the test tiers cost, measured in one run on one machine.

Default: warm `nox -s tests-fast` (the fast tier), warm `nox -s tests` (the full gate, in
parallel) and warm `nox -s tests -- -n 0` (the full gate serially, as it ran before it was
parallel), median of N runs each, interleaved so all see the same machine load. Prints the
seconds, the ratios against the serial gate, each run's total coverage and the load average.

`--overhead` also times what nox adds on top of plain pytest in the same venv; `--cold` the
first `nox -s tests` in a fresh clone (venv creation and installs included).

    python benchmarks/tests_session.py [--runs 1] [--overhead] [--cold]
"""

from __future__ import annotations

import argparse
import os
import re
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

FAST_AIM_S = 20.0
PARALLEL_AIM = 0.5
TOTAL = re.compile(r"^TOTAL\s.*?(\d+(?:\.\d+)?)%\s*$", re.MULTILINE)


def venv_python(project: Path, session: str = "tests") -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    return project / ".nox" / session / scripts / ("python.exe" if os.name == "nt" else "python")


def load() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a on this platform"
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Seconds a command took and its output; a failing command stops the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return seconds, result.stdout


def coverage(output: str) -> str:
    found = TOTAL.findall(output)
    return f"{found[-1]} %" if found else "not reported"


def tiers(runs: int) -> None:
    # Create or refresh both venvs without running the suite.
    timed([*NOX, "-s", "tests-fast", "--", "--collect-only", "-q", "--no-cov"], ROOT)
    timed([*NOX, "-s", "tests", "--", "--collect-only", "-q", "--no-cov", "-n", "0"], ROOT)
    commands = {
        "fast tier   nox -s tests-fast": [*NOX, "-s", "tests-fast"],
        "full gate   nox -s tests": [*NOX, "-s", "tests"],
        "serial gate nox -s tests -- -n 0": [*NOX, "-s", "tests", "--", "-n", "0"],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    covered: dict[str, str] = {}
    print(f"load average before (1, 5, 15 min): {load()}  cores: {os.cpu_count()}", flush=True)
    for _ in range(runs):
        for name, command in commands.items():
            took, output = timed(command, ROOT)
            seconds[name].append(took)
            covered[name] = coverage(output)
            print(f"  {name:34s} {took:7.1f} s  load {load()}", flush=True)
    fast, full, serial = (statistics.median(values) for values in seconds.values())
    print(f"load average after  (1, 5, 15 min): {load()}")
    for name, values in seconds.items():
        print(f"{name:34s}: {statistics.median(values):7.1f} s  coverage {covered[name]}"
              f"  (median of {runs})")  # fmt: skip
    print(f"fast tier                         : {fast:7.1f} s   (aim <= {FAST_AIM_S:.0f} s)")
    print(f"fast tier / serial gate           : {fast / serial:7.2f}x")
    print(f"full gate / serial gate           : {full / serial:7.2f}x  (aim <= {PARALLEL_AIM}x)")


def overhead(runs: int) -> None:
    python = str(venv_python(ROOT))
    env = os.environ | {"COVERAGE_FILE": coverage_file()}
    with_cov = [python, "-m", "pytest", *pytest_args([])]
    session, plain, covered = [], [], []
    for _ in range(runs):
        session.append(timed([*NOX, "-s", "tests"], ROOT)[0])
        plain.append(timed([python, "-m", "pytest", "-q", "-p", "no:cov", "-n", "auto"], ROOT)[0])
        covered.append(timed(with_cov, ROOT, env)[0])
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
        took, _ = timed([*NOX, "-s", "tests"], clone)
    print(f"cold nox -s tests (fresh clone, new venv): {took:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--overhead", action="store_true", help="also time nox against pytest")
    parser.add_argument("--cold", action="store_true", help="also time a fresh clone")
    args = parser.parse_args()
    tiers(args.runs)
    if args.overhead:
        overhead(args.runs)
    if args.cold:
        cold()


if __name__ == "__main__":
    main()
