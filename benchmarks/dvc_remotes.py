"""Push and pull ~50 MiB with DVC: S3 (SeaweedFS on loopback) against the local remote.

Run with the tests' venv (it has DVC and SeaweedFS):
    .nox/tests/bin/python benchmarks/dvc_remotes.py [--files 50] [--mib-per-file 1]
Prints seconds per operation and the S3/local ratio, all measured in this one run.
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

from tests.dvc_repo import dvc, make_repo
from tests.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server


def timed(repo: Path, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{proc.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--mib-per-file", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ.update(
            DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(tmp / "site"),
            DVC_GLOBAL_CONFIG_DIR=str(tmp / "global"), DVC_SYSTEM_CONFIG_DIR=str(tmp / "system"),
            AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_CONFIG_FILE=str(tmp / "aws"), AWS_SHARED_CREDENTIALS_FILE=str(tmp / "aws"),
        )  # fmt: skip
        server = S3Server(tmp / "weed").start()
        try:
            repo = make_repo(tmp / "repo")
            dvc(repo, "remote", "add", "s3", f"s3://{BUCKET}/bench")
            dvc(repo, "remote", "modify", "s3", "endpointurl", server.endpoint)
            size = int(args.mib_per_file * 2**20)
            (repo / "data").mkdir()
            for index in range(args.files):
                (repo / "data" / f"{index:04d}.bin").write_bytes(os.urandom(size))
            total = args.files * size / 2**20
            dvc(repo, "add", "-q", "data")
            times: dict[str, dict[str, float]] = {}
            for remote in ("local", "s3"):
                push = timed(repo, "push", "-r", remote)
                shutil.rmtree(repo / "data")
                shutil.rmtree(repo / ".dvc" / "cache")
                pull = timed(repo, "pull", "-r", remote)
                times[remote] = {"push": push, "pull": pull}
        finally:
            server.stop()
    print(f"{args.files} files, {total:.1f} MiB; dvc push/pull, seconds (one run)")
    print(f"{'remote':8} {'push':>8} {'pull':>8}")
    for remote, row in times.items():
        print(f"{remote:8} {row['push']:8.2f} {row['pull']:8.2f}")
    for op in ("push", "pull"):
        ratio = times["s3"][op] / times["local"][op]
        verdict = "within" if ratio <= 2 else "OVER"
        print(f"{op}: s3/local = {ratio:.2f}x ({verdict} the 2x target)")


if __name__ == "__main__":
    main()
