"""The gate legs of the CI matrix that this machine cannot run, measured here as they would run.

Only Linux runs here. The Windows and macOS legs run the same `nox -s tests -- -m "not docker"`
less the tests that skip there: TESTS_SKIP_AS=win32 (or darwin) applies exactly those skips on
Linux (tests/support/platforms.py). Each leg's wall time, CPU-seconds (user + system of nox
and everything it waited for), and what ran and skipped (with the reasons, from the JUnit
report) are printed, with each leg's time as a ratio against the Linux leg of the same run.
`--lint` also times a cold `nox -s lint` (mypy for the three platforms, no cache), which every
leg runs in a fresh runner.

    python benchmarks/platform_legs.py [--lint]
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the project's modules are not on the path

from benchmarks.tests_session import ctrl_c_back  # noqa: E402

NOX = [sys.executable, "-m", "nox", "--reuse-venv=yes"]
SYSTEMS = ("linux", "win32", "darwin")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command; a failing command stops the benchmark."""
    cpu, start = children_cpu(), time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return wall, children_cpu() - cpu


def outcomes(junit: Path) -> tuple[int, collections.Counter[str]]:
    """Tests that ran, and the skips by reason."""
    ran, skipped = 0, collections.Counter[str]()
    for case in ET.parse(junit).getroot().iter("testcase"):
        skip = case.find("skipped")
        if skip is None:
            ran += 1
        else:
            skipped[skip.get("message", "").removeprefix("Skipped: ")] += 1
    return ran, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lint", action="store_true", help="also time a cold nox -s lint")
    parser.add_argument(
        "--systems", nargs="+", choices=SYSTEMS, default=SYSTEMS,
        help="the legs to run, in this order (the first is the baseline of the ratios); in a "
        "fresh clone the first leg also pays for the files' first timing (schedule.py)",
    )  # fmt: skip
    args = parser.parse_args()
    ctrl_c_back()
    print(f"cores: {os.cpu_count()}  load before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    walls: dict[str, float] = {}
    for system in args.systems:
        env = {**os.environ, "TESTS_SKIP_AS": system}
        wall, cpu = run([*NOX, "-s", "tests", "--", "-m", "not docker"], env)
        ran, skipped = outcomes(ROOT / "reports" / "junit-linux.xml")
        walls[system] = wall
        ratio = f"{wall / walls[args.systems[0]]:.2f}x the {args.systems[0]} leg"
        print(f"{system:7} tests leg: {wall:6.1f} s wall, {cpu:6.1f} CPU-s, {ran} ran, "
              f"{sum(skipped.values())} skipped  ({ratio})")  # fmt: skip
        for reason, count in sorted(skipped.items()):
            print(f"          {count:3} skipped: {reason}")
    if args.lint:
        with tempfile.TemporaryDirectory() as cache:
            wall, cpu = run([*NOX, "-s", "lint"], {**os.environ, "MYPY_CACHE_DIR": cache})
        print(f"lint, cold mypy for {', '.join(SYSTEMS)}: {wall:.1f} s wall, {cpu:.1f} CPU-s")
    print(f"load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
