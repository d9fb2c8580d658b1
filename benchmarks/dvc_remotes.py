"""Push and pull ~50 MiB with DVC: S3 (SeaweedFS on loopback) against the local remote.

Run with the tests' venv (it has DVC and SeaweedFS):
    .nox/tests/bin/python benchmarks/dvc_remotes.py [--files 50] [--mib-per-file 1]
Prints seconds per operation (each a whole `dvc` process, start-up included), the S3/local
ratio, and the server's own floor (the same files through botocore), all from this one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions.files import remove_tree
from tests.dvc_repo import build_repo, dvc, isolated_env
from tests.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server


def timed(repo: Path, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{proc.stderr.decode()}")
    return elapsed


def raw_s3(server: S3Server, data: Path) -> dict[str, float]:
    """The server's own floor: the same files PUT and GET with botocore, 8 at a time."""
    client = server.client()
    files = sorted(data.iterdir())

    def put(path: Path) -> None:
        client.put_object(Bucket=BUCKET, Key=f"raw/{path.name}", Body=path.read_bytes())

    def get(path: Path) -> None:
        client.get_object(Bucket=BUCKET, Key=f"raw/{path.name}")["Body"].read()

    floor = {}
    with ThreadPoolExecutor(8) as pool:
        for op, func in (("push", put), ("pull", get)):
            start = time.perf_counter()
            list(pool.map(func, files))
            floor[op] = time.perf_counter() - start
    return floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--mib-per-file", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ.update(isolated_env(tmp))
        os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        server = S3Server(tmp / "weed").start()
        try:
            repo = build_repo(tmp, tracked=False) / "repo"
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
                remove_tree(repo / "data")
                remove_tree(repo / ".dvc" / "cache")
                pull = timed(repo, "pull", "-r", remote)
                times[remote] = {"push": push, "pull": pull}
            floor = raw_s3(server, repo / "data")
        finally:
            server.stop()
    print(f"{args.files} files, {total:.1f} MiB; dvc push/pull, seconds (one run)")
    print(f"{'remote':8} {'push':>8} {'pull':>8}")
    for remote, row in times.items():
        print(f"{remote:8} {row['push']:8.2f} {row['pull']:8.2f}")
    print(f"{'raw S3':8} {floor['push']:8.2f} {floor['pull']:8.2f}   (botocore, 8 threads, no DVC)")
    for op in ("push", "pull"):
        ratio = times["s3"][op] / times["local"][op]
        verdict = "within" if ratio <= 2 else "OVER"
        print(f"{op}: s3/local = {ratio:.2f}x ({verdict} the 2x target)")


if __name__ == "__main__":
    main()
