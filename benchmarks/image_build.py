"""Image build figures: cold build, rebuild after a code-only change, image size.

Builds a copy of the build context (tracked files plus docker/build-inputs/, as the last
`nox -s build-image` left them), so the working tree is never touched. Prints each time and
the rebuild/cold ratio measured in the same run, and the size against the 1.2 GB aim.

    python benchmarks/image_build.py [--network host] [--skip-cold]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions import build_image
from tests.test_image_engine import build_context, reuse_options

TAG = "gradient-lab:benchmark"
SIZE_AIM = 1.2e9


def timed_build(context: Path, network: str | None, *, no_cache: bool) -> float:
    options = replace(reuse_options(), network=network, no_cache=no_cache)
    command = build_image.build_command(options, None, "benchmark", context=context, tags=[TAG])
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network")
    parser.add_argument("--skip-cold", action="store_true", help="time a cached build instead")
    args = parser.parse_args()
    problem = build_image.engine_problem()
    if problem:
        sys.exit(problem)
    with tempfile.TemporaryDirectory() as folder:
        context = build_context(Path(folder))
        (context / ".env").unlink()
        baseline = timed_build(context, args.network, no_cache=not args.skip_cold)
        label = "cached build (no change)" if args.skip_cold else "cold build (--no-cache)"
        source = context / "sessions" / "__init__.py"
        source.write_text(source.read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
        rebuild = timed_build(context, args.network, no_cache=False)
    size = int(subprocess.run(
        build_image.size_command(TAG), capture_output=True, text=True, check=True
    ).stdout)  # fmt: skip
    print(f"{label}: {baseline:.1f} s")
    print(f"rebuild after a code-only change: {rebuild:.1f} s (aim <= 10 s)")
    print(f"rebuild / {label.split(' (', 1)[0]}: {rebuild / baseline:.3f}")
    print(f"image size: {build_image.human_size(size)} ({size / SIZE_AIM:.2f} x the 1.2 GB aim)")


if __name__ == "__main__":
    main()
