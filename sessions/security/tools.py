"""Finding and running a scanner, and reading what it wrote."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sessions.security.policy import GateError

# Colour and cursor codes: scanners colour their messages whatever NO_COLOR says, and a
# sentence quoted from them must read the same in a log file as in a terminal.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def plain(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)


def find_tool(name: str, bin_paths: Sequence[str] | None) -> Path:
    """The scanner's executable: in the session's venv, else on PATH or beside this Python."""
    search = [*(bin_paths or []), os.environ.get("PATH", ""), str(Path(sys.executable).parent)]
    found = shutil.which(name, path=os.pathsep.join(search))
    if found is None:
        raise GateError(f"{name} is not installed here: run `nox -s security`, which installs it.")
    return Path(found)


def run_tool(
    command: Sequence[str | Path], cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    child_env = {**os.environ, **(env or {}), "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd, env=child_env, capture_output=True, text=True, encoding="utf-8",
        errors="replace",
    )  # fmt: skip


def last_line(text: str) -> str:
    lines = [line.strip() for line in plain(text).splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def read_report(path: Path, tool: str, result: subprocess.CompletedProcess[str]) -> Any:
    if not path.is_file():
        raise GateError(
            f"{tool} wrote no report (exit code {result.returncode}: "
            f"{last_line(result.stderr + result.stdout)}): run it by hand to see why."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise GateError(f"{tool}'s report {path.name} is not JSON ({error}): rerun it.") from error
