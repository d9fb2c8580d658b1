"""The `data` session as a user meets it: a fresh copy of the project, its commands run as
printed, and the commands its messages print picked out to be run in turn."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, measured_in, without_coverage
from tests.support.dvc_repo import isolated_env
from tests.support.platforms import own_process_group

# What the session's messages tell the user to type.
PRINTED = re.compile(r"`(nox -s data -- [^`]+)`")


def fresh_copy(base: Path) -> Path:
    """base/clone/project: the project's files as a fresh clone has them (no data, cache,
    weights or remote store), under git; its default local remote is base/clone/<store>."""
    project = base / "clone" / "project"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / name)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    return project


def data_env(base: Path) -> dict[str, str]:
    """DVC, AWS and W&B isolated in base; this interpreter (DVC, torch) first on PATH."""
    env = isolated_env(base)
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DIR=str(base / "wandb"),
    )
    env.pop("WANDB_API_KEY", None)
    return env


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def printed(self) -> list[str]:
        """The `nox -s data -- ...` commands this run told the user to type, in order."""
        return list(dict.fromkeys(PRINTED.findall(self.output)))


def nox_data(project: Path, env: dict[str, str], *args: str, measured: bool = True) -> Ran:
    """`nox -s data -- ARGS` in `project`, in this interpreter's environment (`--no-venv`:
    the venv is what the tests run in) with the copy's own library on the path; the session
    is measured by this run's coverage (unless `measured` is False: a training run whose lines
    other tests measure), the DVC processes it starts measure nothing of ours."""
    env = measured_in(project, env) if measured else without_coverage(env)
    env |= {"PYTHONPATH": str(project / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "--no-venv", "-s", "data", "--", *args],
        cwd=project, env=env, capture_output=True, text=True, encoding="utf-8",
    )  # fmt: skip
    # nox's own lines ("nox > ...") go to stderr; keep the session's words only.
    stderr = "".join(
        line for line in proc.stderr.splitlines(keepends=True) if not line.startswith("nox >")
    )
    return Ran(proc.returncode, proc.stdout, stderr)


def run_printed(project: Path, env: dict[str, str], printed: str, *, measured: bool = True) -> Ran:
    """Run a command exactly as a message printed it (only nox's venv is swapped for ours)."""
    words = shlex.split(printed)
    assert words[:4] == ["nox", "-s", "data", "--"], printed
    return nox_data(project, env, *words[4:], measured=measured)


def start_push(repo: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`python -m sessions.data push ARGS` (what the session runs) in its own process group
    with default Ctrl-C handling, so a test can stop it the way a terminal does."""
    return subprocess.Popen(
        [sys.executable, "-m", "sessions.data", "push", *args],
        cwd=repo, env={**env, "PYTHONPATH": str(ROOT)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **own_process_group(),
    )  # fmt: skip


def wait_until(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# A stored object in a local remote: files/md5/<2 hex>/<30 hex>[.dir]. An upload cut off midway
# can leave a temporary file beside them, which is not an object the remote holds.
STORED_OBJECT = re.compile(r"[0-9a-f]{30}(\.dir)?")


def files_under(folder: Path) -> int:
    """The objects a local remote holds (temporary files of an interrupted upload left out)."""
    if not folder.is_dir():
        return 0
    return sum(
        1 for path in folder.rglob("*") if path.is_file() and STORED_OBJECT.fullmatch(path.name)
    )
