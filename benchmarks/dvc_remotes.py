"""DVC push and pull against S3 (SeaweedFS on loopback) vs a raw parallel botocore client.

Run with the tests' venv (it has DVC and SeaweedFS):
    .nox/tests-3-11/bin/python benchmarks/dvc_remotes.py [--sizes 50 300] [--mib-per-file 1]
        [--jobs 8]
For each file count, in one run on one server: the same random files are PUT and then GET
(written to disk) by botocore with JOBS threads, pushed and pulled by DVC with `--jobs JOBS`
inside one process (`Repo.push/pull`, start-up excluded) and by the `dvc` command line (a
whole process, start-up included). Prints seconds (best of --repeat runs) and the ratio
DVC / raw (target 1.3x).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions.files import remove_tree
from tests.support.dvc_repo import build_repo, dvc, isolated_env
from tests.support.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server

TARGET = 1.3


def seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def raw_s3(
    server: S3Server, files: list[Path], prefix: str, out: Path, jobs: int
) -> dict[str, float]:
    """The same files PUT and GET (to disk) with botocore, `jobs` at a time."""
    import botocore.config  # noqa: PLC0415 - from the data venv, like DVC
    import botocore.session  # noqa: PLC0415

    # As many pooled connections as threads, as DVC's client has.
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(max_pool_connections=jobs),
    )
    out.mkdir(parents=True, exist_ok=True)

    def put(path: Path) -> None:
        with path.open("rb") as body:
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/{path.name}", Body=body)

    def get(path: Path) -> None:
        body = client.get_object(Bucket=BUCKET, Key=f"{prefix}/{path.name}")["Body"]
        (out / path.name).write_bytes(body.read())

    with ThreadPoolExecutor(jobs) as pool:
        return {
            "push": seconds(lambda: list(pool.map(put, files))),
            "pull": seconds(lambda: list(pool.map(get, files))),
        }


def reset(repo: Path) -> None:
    remove_tree(repo / "data")
    remove_tree(repo / ".dvc" / "cache")


def dvc_in_process(repo: Path, remote: str, jobs: int) -> dict[str, float]:
    """`Repo.push/pull` with the S3 client made first (aiobotocore's import and session, about
    a second here, once per process), like the raw client, which is made before its clock."""
    from dvc.repo import Repo  # noqa: PLC0415 - DVC's import is not what is measured

    with Repo(str(repo)) as dvc_repo:
        _ = dvc_repo.cloud.get_remote(remote).fs
        push = seconds(lambda: dvc_repo.push(remote=remote, jobs=jobs))
    reset(repo)
    with Repo(str(repo)) as dvc_repo:
        _ = dvc_repo.cloud.get_remote(remote).fs
        pull = seconds(lambda: dvc_repo.pull(remote=remote, jobs=jobs))
    return {"push": push, "pull": pull}


def dvc_cli(repo: Path, remote: str, jobs: int) -> dict[str, float]:
    def run(*args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"dvc {' '.join(args)} failed:\n{proc.stderr.decode()}")

    push = seconds(lambda: run("push", "-r", remote, "-j", str(jobs)))
    reset(repo)
    pull = seconds(lambda: run("pull", "-r", remote, "-j", str(jobs)))
    return {"push": push, "pull": pull}


def measure(
    tmp: Path, server: S3Server, count: int, size: int, jobs: int
) -> dict[str, dict[str, float]]:
    base = tmp / f"n{count}"
    base.mkdir(parents=True)
    repo = build_repo(base, tracked=False) / "repo"
    (repo / "data").mkdir()
    for index in range(count):
        (repo / "data" / f"{index:04d}.bin").write_bytes(os.urandom(size))
    files = sorted((repo / "data").iterdir())
    dvc(repo, "add", "-q", "data")
    prefix = f"{base.parent.name}-{count}"
    rows = {"raw botocore": raw_s3(server, files, f"raw-{prefix}", base / "raw-out", jobs)}
    for name, runner in (("dvc in-process", dvc_in_process), ("dvc command", dvc_cli)):
        dvc(repo, "remote", "add", "-f", "s3", f"s3://{BUCKET}/{name.replace(' ', '-')}-{prefix}")
        dvc(repo, "remote", "modify", "s3", "endpointurl", server.endpoint)
        rows[name] = runner(repo, "s3", jobs)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 300])
    parser.add_argument("--mib-per-file", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1, help="keep each figure's best of N")
    args = parser.parse_args()
    size = int(args.mib_per_file * 2**20)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ.update(isolated_env(tmp))
        os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        server = S3Server(tmp / "weed").start()
        try:
            results = {}
            for count in args.sizes:
                runs = [
                    measure(tmp / f"run{run}", server, count, size, args.jobs)
                    for run in range(args.repeat)
                ]
                results[count] = {
                    name: {op: min(r[name][op] for r in runs) for op in ("push", "pull")}
                    for name in runs[0]
                }
        finally:
            server.stop()
    print(
        f"S3 on loopback (SeaweedFS), {args.mib_per_file:g} MiB files, {args.jobs} at a time; "
        f"seconds, best of {args.repeat}"
    )
    for count, rows in results.items():
        print(f"\n{count} files ({count * size / 2**20:.0f} MiB)")
        print(f"  {'client':16} {'push':>7} {'pull':>7}")
        for name, row in rows.items():
            print(f"  {name:16} {row['push']:7.2f} {row['pull']:7.2f}")
        raw = rows["raw botocore"]
        for name in ("dvc in-process", "dvc command"):
            for op in ("push", "pull"):
                ratio = rows[name][op] / raw[op]
                verdict = "within" if ratio <= TARGET else "OVER"
                print(f"  {name} {op}: {ratio:.2f}x raw ({verdict} the {TARGET}x target)")


if __name__ == "__main__":
    main()
