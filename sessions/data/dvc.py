"""DVC's command line as the `data` session runs it: one child process per command, the
remotes it knows, and its failures turned into one sentence that names the remote and its URL.

DVC is only ever run as a child process, so importing this module costs nothing.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DataError(RuntimeError):
    """A DVC operation failed; the message is one sentence saying what to do."""


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def dvc_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment DVC runs in: ours, with DVC's usage analytics off (offline first) and
    this interpreter's scripts first on PATH, so `dvc repro` trains with this venv's python."""
    scripts = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in (scripts, environ.get("PATH", "")) if p)
    return {**environ, "DVC_NO_ANALYTICS": "1", "PATH": path}


def unmeasured(environ: Mapping[str, str]) -> dict[str, str]:
    """environ without coverage's subprocess hook (set when a test run measures this session):
    a DVC command that runs none of this project's code would only run a third slower."""
    return {k: v for k, v in environ.items() if not k.startswith("COVERAGE_PROCESS_")}


def dvc(*args: str, root: Path, env: Mapping[str, str] | None = None) -> Result:
    """Run `dvc ARGS` with this interpreter's DVC in `root`; never raises on a DVC failure.
    For the commands that only read and move data (`repro`, which runs the project's stages,
    is run directly with dvc_env)."""
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=dvc_env(unmeasured(os.environ if env is None else env)),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def json_report(result: Result) -> dict[str, Any]:
    """The JSON object a `dvc ... --json` command printed (after any warnings)."""
    start = result.stdout.find("{")
    report: dict[str, Any] = json.loads(result.stdout[start:]) if start >= 0 else {}
    return report


def command(action: str, args: Sequence[str] = ()) -> str:
    """The `nox -s data` command line that runs `action` with `args`, as a user types it."""
    return shlex.join(["nox", "-s", "data", "--", action, *args])


@dataclass(frozen=True)
class Remote:
    name: str
    url: str

    def __str__(self) -> str:
        return f"'{self.name}' ({self.url})"

    @property
    def folder(self) -> Path | None:
        """The folder of a local remote; None for a cloud one (s3://, gs://, ...)."""
        if re.match(r"^[a-z][a-z0-9+.-]+://", self.url):
            return None
        return Path(self.url)

    def missing(self, root: Path) -> bool:
        """A local remote whose folder does not exist yet (a cloud one is never said missing)."""
        return self.folder is not None and not (root / self.folder).is_dir()


def remote_flag(args: Sequence[str]) -> str | None:
    """The remote a DVC command line names with -r/--remote, if any."""
    for flag, value in itertools.pairwise(args):
        if flag in ("-r", "--remote"):
            return value
    return None


def resolve_remote(args: Sequence[str], root: Path, action: str) -> Remote | None:
    """The remote a command acts on: the one `-r` names, else the default; None if neither is
    configured. Read with DVC's own config loader (every level: repo, local, global, system;
    local URLs resolved to absolute paths), in this process: the data venv has DVC."""
    config_module = importlib.import_module("dvc.config")
    dvc_dir = str(root / ".dvc")
    try:
        config = config_module.Config(dvc_dir=dvc_dir, local_dvc_dir=dvc_dir)
    except Exception as error:  # DVC's ConfigError and whatever a broken file raises
        raise DataError(
            f"dvc {action} failed: DVC cannot read its configuration ({error})"
        ) from None
    remotes = config["remote"]
    name = remote_flag(args) or config["core"].get("remote")
    return Remote(name, str(remotes[name]["url"])) if name in remotes else None


# DVC failure text -> what happened and what to do. The first pattern that matches wins.
# {remote} is the remote's name and URL, {rerun} the command that repeats the user's.
# Linux's wording, macOS' unknown host, then Windows' (refused: WSAECONNREFUSED and the
# proactor's ERROR_CONNECTION_REFUSED; reset: WSAECONNRESET; unknown host: WSAHOST_NOT_FOUND),
# as botocore and aiohttp quote the OS's own message.
CONNECTION = (
    r"Could not connect to the endpoint URL|Connection refused|Cannot connect to host"
    r"|ConnectTimeout|Name or service not known|Connection reset|Server disconnected"
    r"|ConnectionClosed|EndpointConnectionError|ReadTimeout|Connection aborted"
    r"|nodename nor servname provided"
    r"|actively refused|refused the network connection|forcibly closed"
    r"|WinError (?:10061|1225|10054|11001)"
)
FAILURES: tuple[tuple[str, str], ...] = (
    (
        CONNECTION,
        "the remote {remote} is unreachable; start its server or fix its endpoint (the "
        "remote's endpointurl setting or AWS_ENDPOINT_URL_S3), then rerun `{rerun}`",
    ),
    (
        r"InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|Forbidden|\(403\)",
        "the remote {remote} rejected the credentials; set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY to keys it accepts and rerun `{rerun}`",
    ),
    (
        r"Unable to locate credentials|NoCredentialsError",
        "no S3 credentials were found for the remote {remote}; set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and rerun `{rerun}`",
    ),
    (
        r"NoSuchBucket|bucket does not exist",
        "the bucket of the remote {remote} does not exist and DVC does not create buckets; "
        "create that bucket or fix the remote's url, then rerun `{rerun}`",
    ),
    (
        r"Missing cache files|missing-files|Checkout failed",
        "the remote {remote} does not hold the data that the .dvc files record; run "
        "`nox -s data -- push` where that data exists, or `nox -s data -- ensure` to regenerate it",
    ),
    (
        r"No remote provided and no default remote set|no remote specified",
        "no DVC remote is configured; the committed .dvc/config sets the local remote, or add "
        "one as the README's data section shows",
    ),
    (
        r"remote '[^']*' doesn't exist",
        "that DVC remote is not configured; `nox -s data -- dvc remote list` shows the ones "
        "that are",
    ),
    (
        r"not a DVC repository|you are not inside of a DVC repository",
        "this folder is not a DVC repository; run the command from the repository root",
    ),
)


def explain(
    action: str, output: str, args: Sequence[str] = (), remote: Remote | None = None
) -> str:
    """One sentence for a failed `dvc ACTION`: what happened and what to do."""
    rerun = command(action, args)
    for pattern, advice in FAILURES:
        if re.search(pattern, output, re.IGNORECASE):
            named = str(remote) if remote else f"'{remote_flag(args)}'"
            text = advice.format(remote=named, rerun=rerun)
            return f"dvc {action} failed: {text}."
    detail = next(
        (line.strip() for line in output.splitlines() if line.startswith("ERROR")),
        output.strip().splitlines()[-1] if output.strip() else "no output",
    )
    return f"dvc {action} failed ({detail}); `{command(action, [*args, '-v'])}` shows DVC's log."


def is_connection_failure(output: str) -> bool:
    return re.search(CONNECTION, output, re.IGNORECASE) is not None
