"""How long a stop takes: from the signal to the exit of what was signalled, per entry point.

Each entry point trains the demo (or, for torchrun, a two-rank data-parallel loop) in a copy of
the project, is signalled the way its users or machines stop it once training is under way,
and is timed until it exits, checkpoint saved and W&B run closed; median of `--repeats`.

- terminal Ctrl-C: SIGINT to `nox -s train-tracked`'s process group
- SIGTERM to the group: `docker stop` on an image whose init signals the group, or any
  supervisor that does
- SIGTERM to nox alone: `docker stop` on an image whose PID 1 is nox (nox passes it on)
- cancelled GitHub Actions job: SIGINT to the step's process (nox, which the workflow
  `exec`s), SIGTERM 7.5 s later, the tree killed 2.5 s later
- torchrun, 2 ranks: SIGINT to torchrun's group (torchrun passes it to the ranks)
- with `--docker-tag TAG` (an image `nox -s build-image` built, an engine at DOCKER_HOST):
  `docker stop` on `docker compose run train`, with PID 1 as the compose file has it and
  with an init that signals the process group

The baseline, measured in the same run: a Python process that has imported torch and W&B,
killed by Ctrl-C with Python's default handling (a KeyboardInterrupt and the interpreter's
teardown, nothing saved). Also timed: a bad option refused by the session, against
`nox --version`. POSIX only (process groups).

    python -m benchmarks.stop_latency [--repeats 5] [--docker-tag TAG]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["--activation", "relu", "--width", "32", "--samples", "512", "--epochs", "100000",
         "--log-every", "5", "--no-progress"]  # fmt: skip
Signaller = Callable[[subprocess.Popen[bytes]], None]


def copy_project(to: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, to / name)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        subprocess.run([*git, *args], cwd=to, check=True)
    subprocess.run([sys.executable, "-m", "sessions.data", "ensure"], cwd=to, env=env_for(to),
                   check=True, capture_output=True)  # fmt: skip
    return to


def env_for(project: Path, runs: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "COVERAGE"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(project / "src"), str(project)])
    runs = runs or project / "runs"
    env |= {"WANDB_DIR": str(runs), "WANDB_CONFIG_DIR": str(runs / "config"),
            "WANDB_MODE": "offline", "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip
    return env


def start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # not inherited ignored
    try:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{proc.args!r} ended or stalled before it was ready")
        time.sleep(0.01)


Timing = tuple[float, float, int]  # signal -> checkpoint written, signal -> exit, exit code


def timed_stop(proc: subprocess.Popen[bytes], signaller: Signaller, saved: Path) -> Timing:
    began, began_wall = time.perf_counter(), time.time()
    signaller(proc)
    proc.wait(timeout=60)
    exited = time.perf_counter() - began
    return (
        (saved.stat().st_mtime - began_wall if saved.exists() else float("nan")),
        exited,
        proc.returncode,
    )


def nox_entry(project: Path, run: int, signaller: Signaller) -> Timing:
    runs = Path(tempfile.mkdtemp(prefix="runs-", dir=project))
    proc = start([sys.executable, "-m", "nox", "--no-venv", "-s", "train-tracked", "--", *TRAIN,
                  "--name", f"bench-{run}"], project, env_for(project, runs))  # fmt: skip
    wait_for(lambda: any(f.stat().st_size >= 64 * 1024 for f in runs.glob("wandb/*/*.wandb")),
             proc)  # fmt: skip
    return timed_stop(proc, signaller, project / "models" / f"bench-{run}.ckpt")


def torchrun_entry(project: Path, run: int, signaller: Signaller) -> Timing:
    out = Path(tempfile.mkdtemp(prefix="ddp-", dir=project))
    script = project / "tests" / "support" / "distributed_stop.py"
    torchrun = str(Path(sys.executable).parent / "torchrun")
    proc = start([torchrun, "--standalone", "--nproc-per-node", "2", str(script), str(out)],
                 project, env_for(project))  # fmt: skip
    wait_for((out / "ready").exists, proc)
    return timed_stop(proc, signaller, out / "stop.ckpt")


def baseline_entry(project: Path, run: int, signaller: Signaller) -> Timing:
    ready = Path(tempfile.mkdtemp(dir=project)) / "ready"
    code = (
        f"import torch, wandb, time, pathlib; pathlib.Path({str(ready)!r}).touch(); time.sleep(600)"
    )
    proc = start([sys.executable, "-c", code], project, env_for(project))
    wait_for(ready.exists, proc)
    return timed_stop(proc, signaller, ready.with_name("nothing-saved"))


def to_group(signum: int) -> Signaller:
    return lambda proc: os.killpg(proc.pid, signum)


def to_nox(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGTERM)


def actions_cancel(proc: subprocess.Popen[bytes]) -> None:
    """The runner's sequence, to the step's process (`exec nox`, as the workflow runs it); the
    wait ends as soon as it has exited. The kill takes the whole tree."""
    for signum, wait in ((signal.SIGINT, 7.5), (signal.SIGTERM, 2.5), (signal.SIGKILL, 0)):
        if proc.poll() is not None:
            return
        if signum == signal.SIGKILL:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        with_deadline = time.monotonic() + wait
        while proc.poll() is None and time.monotonic() < with_deadline:
            time.sleep(0.005)


INIT_SIGNALS_GROUP = """services:
  train:
    init: true
    environment:
      TINI_KILL_PROCESS_GROUP: "1"
"""


def docker_entry(tag: str, init: bool) -> Callable[[Path, int, Signaller], Timing]:
    """`docker compose run train` stopped with `docker stop` (the signaller is unused)."""

    def entry(project: Path, run: int, signaller: Signaller) -> Timing:
        from tests.test_docker_files import compose_command  # noqa: PLC0415 - the plugin

        work = Path(tempfile.mkdtemp(prefix="docker-", dir=project))
        files = ["docker-compose.yml", "docker-compose.host-network.yml"]
        for name in files:
            shutil.copy2(project / name, work / name)
        if init:
            (work / "init.yml").write_text(INIT_SIGNALS_GROUP, encoding="utf-8")
            files.append("init.yml")
        for folder in ("data", "models", "wandb"):
            (work / folder).mkdir()
        uid = f"{os.getuid()}" if hasattr(os, "getuid") else "1000"
        gid = f"{os.getgid()}" if hasattr(os, "getgid") else "1000"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
        env |= {"IMAGE_TAG": tag, "HOST_UID": uid, "HOST_GID": gid}
        name = f"stop-bench-{os.getpid()}-{run}-{int(init)}"
        compose = [*compose_command(work / "docker-config"), "--project-directory", str(work)]
        for file in files:
            compose += ["-f", str(work / file)]
        proc = start([*compose, "run", "--rm", "--no-deps", "--name", name, "train", "nox",
                      "--no-venv", "-s", "train-tracked", "--", *TRAIN], work, env)  # fmt: skip
        logs = work / "wandb" / "wandb"
        wait_for(lambda: any(f.stat().st_size >= 64 * 1024 for f in logs.glob("*/*.wandb")),
                 proc)  # fmt: skip

        def docker_stop(proc: subprocess.Popen[bytes]) -> None:
            subprocess.run(["docker", "stop", name], capture_output=True, check=True)

        return timed_stop(proc, docker_stop, work / "models" / "vanishing-gradients.ckpt")

    return entry


def refused_option(project: Path, args: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nox", *args], cwd=project, env=env_for(project),
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--docker-tag", help="also time `docker stop` on this image's train")
    parser.add_argument("--only", help="time the entries whose label holds this text only")
    args = parser.parse_args(argv)
    if not hasattr(os, "killpg"):
        parser.error("needs POSIX process groups")
    entries: list[tuple[str, Callable[[Path, int, Signaller], Timing], Signaller]] = [
        ("baseline: python+torch+wandb, default Ctrl-C", baseline_entry, to_group(signal.SIGINT)),
        ("terminal Ctrl-C on nox -s train-tracked", nox_entry, to_group(signal.SIGINT)),
        ("SIGTERM to the group (docker stop, init -g)", nox_entry, to_group(signal.SIGTERM)),
        ("SIGTERM to nox alone (docker stop, nox PID 1)", nox_entry, to_nox),
        ("cancelled GitHub Actions job", nox_entry, actions_cancel),
        ("torchrun, 2 ranks, Ctrl-C", torchrun_entry, to_group(signal.SIGINT)),
    ]  # fmt: skip
    if args.docker_tag:
        to_stop = to_group(signal.SIGTERM)  # unused: `docker stop` signals
        docker = [("docker stop, PID 1 as in docker-compose.yml", docker_entry(args.docker_tag,
                                                                               False), to_stop),
                  ("docker stop, init signalling the group", docker_entry(args.docker_tag, True),
                   to_stop)]  # fmt: skip
        entries += docker
    if args.only:
        entries = entries[:1] + [e for e in entries[1:] if args.only in e[0]]
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp))
        print(f"median of {args.repeats}, load {os.getloadavg()[0]:.1f}; "
              "signal -> checkpoint written, signal -> exit (x baseline's exit)")  # fmt: skip
        baseline = 0.0
        for label, entry, signaller in entries:
            runs = [entry(project, i, signaller) for i in range(args.repeats)]
            saved = statistics.median(run[0] for run in runs)
            median = statistics.median(run[1] for run in runs)
            baseline = baseline or median
            codes = sorted({run[2] for run in runs})
            print(f"  {label:<46} {saved:5.2f} s {median:6.2f} s  x{median / baseline:5.2f}"
                  f"  exit {codes}", flush=True)  # fmt: skip
        bad = statistics.median(refused_option(project, ["--no-venv", "-s", "train-tracked",
                                                         "--", "--epochs", "0"])
                                for _ in range(args.repeats))  # fmt: skip
        bare = statistics.median(refused_option(project, ["--no-venv", "--version"])
                                 for _ in range(args.repeats))  # fmt: skip
        print(f"  bad option refused by nox -s train-tracked: {bad:.2f} s "
              f"(nox --version: {bare:.2f} s, x{bad / bare:.2f})")  # fmt: skip
        print(f"(load {os.getloadavg()[0]:.1f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
