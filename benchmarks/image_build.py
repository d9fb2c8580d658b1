"""Image build figures: a no-change rebuild against a code-only change, size and layers.

Builds the runtime image the way `nox -s build-image` does (`docker compose build`, BuildKit)
from a copy of the build context (tracked files plus docker/build-inputs/, as the last
`nox -s build-image` left them), so the working tree is never touched. In one run: a warm-up
build, then a rebuild with no change (the figure: it must keep the image ID), then a rebuild
after a code-only change (the baseline); with `--cold`, a `--no-cache` build first as a second
baseline. Prints each time, the ratios, the image size against the 1.1 GB aim and the size of
each layer.

    python benchmarks/image_build.py [--network host] [--cold]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions import build_image
from tests.test_docker_files import compose_command
from tests.test_image_engine import build_context

TAG = "benchmark"
IMAGE = f"{build_image.IMAGE}:{TAG}"
SIZE_AIM = 1.1e9


def compose() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return compose_command(Path(tempfile.mkdtemp(prefix="docker-config-")))


def timed_build(context: Path, network: str | None, *, no_cache: bool = False) -> float:
    options = build_image.Options(network=network, no_cache=no_cache)
    command, _ = build_image.compose_builds(compose(), options, "benchmark", None, root=context)
    env = {**os.environ, "IMAGE_TAG": TAG}
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env)  # fmt: skip
    return time.perf_counter() - start


def inspect(fmt: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "--format", fmt, IMAGE],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def layers() -> list[tuple[int, str]]:
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--human=false", "--format",
         "{{.Size}}\t{{.CreatedBy}}", IMAGE],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    rows = [line.split("\t", 1) for line in history]
    return [(int(size), step) for size, step in rows if int(size) > 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", choices=["host"])
    parser.add_argument("--cold", action="store_true", help="also time a --no-cache build")
    args = parser.parse_args()
    problem = build_image.engine_problem()
    if problem:
        sys.exit(problem)
    with tempfile.TemporaryDirectory() as folder:
        # Copies, not links: the code change below must not reach the working tree.
        context = build_context(Path(folder) / "context", dotenv=False, link=False)
        cold = timed_build(context, args.network, no_cache=True) if args.cold else None
        timed_build(context, args.network)  # warm-up: whatever the cache lacks
        before = inspect("{{.Id}}")
        same = timed_build(context, args.network)
        kept = inspect("{{.Id}}") == before
        source = context / "sessions" / "__init__.py"
        source.write_text(source.read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
        code = timed_build(context, args.network)
        shutil.rmtree(context, ignore_errors=True)
    # The code-only change untagged the image before it, as build-image's prune expects.
    for command in build_image.prune_commands():
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    size = int(inspect("{{.Size}}"))
    if cold is not None:
        print(f"cold build (--no-cache): {cold:.1f} s")
    print(f"rebuild after a code-only change (baseline): {code:.1f} s")
    print(f"rebuild with no change: {same:.1f} s; image ID kept: {'yes' if kept else 'NO'}")
    print(f"no-change rebuild / code-only rebuild: {same / code:.2f}")
    if cold is not None:
        print(f"code-only rebuild / cold build: {code / cold:.3f}")
    print(f"image size: {build_image.human_size(size)} ({size / SIZE_AIM:.2f} x the 1.1 GB aim)")
    print("layers (bytes, step):")
    for layer_size, step in layers():
        print(f"  {layer_size / 1e6:9.1f} MB  {step[:90]}")


if __name__ == "__main__":
    main()
