"""DVC as the `data` session uses it: its Python API for what the session reads (return
values, exception types, status dictionaries), its command line for what the user reads
(`dvc ARGS`, `dvc status`'s own words), and its failures turned into one sentence that names
the remote and its URL.

DVC is imported only inside the functions that use it: the noxfile imports this module, and
nox's own environment has no DVC.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessions.files import tool_path

# The loggers of DVC and of its data libraries, whose records carry the exceptions it caught.
DVC_LOGGERS = ("dvc", "dvc_data", "dvc_objects")


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
    """Run `dvc ARGS` with this interpreter's DVC in `root` as a child process and capture what
    it prints; never raises on a DVC failure."""
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


def options(action: str, args: Sequence[str]) -> Any:
    """`dvc ACTION ARGS` read by DVC's own argument parser (what `dvc ACTION` would accept)."""
    from dvc.cli import DvcParserError, parse_args  # noqa: PLC0415 - DVC: the data venv only

    try:
        return parse_args([action, *args])
    except DvcParserError:
        raise DataError(
            f"dvc {action} does not take those options: DVC's message above names them and "
            "lists the ones it takes"
        ) from None


class Captured(logging.Handler):
    """DVC's log records while it works: kept, not printed, since the session says in its own
    words what happened (`-v` prints them too, as DVC's own `-v` does)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def errors(self) -> list[BaseException]:
        """The exceptions DVC caught and logged (a file that failed to transfer, say)."""
        return [r.exc_info[1] for r in self.records if r.exc_info and r.exc_info[1]]


@contextlib.contextmanager
def repository(root: Path, *, verbose: bool = False) -> Iterator[tuple[Any, Captured]]:
    """DVC's `Repo` for root, opened there as DVC's command line opens it (targets are read
    from the working directory), and the log records DVC writes while it is open: kept, not
    printed (`verbose`: printed too, by DVC's own handlers, with its debug messages)."""
    from dvc.exceptions import NotDvcRepoError  # noqa: PLC0415 - DVC: the data venv only
    from dvc.repo import Repo  # noqa: PLC0415

    captured = Captured()
    loggers = [logging.getLogger(name) for name in DVC_LOGGERS]
    saved = [(logger, logger.level, logger.handlers[:]) for logger in loggers]
    for logger in loggers:
        # DVC draws no progress bars unless its level lets INFO through (-v does).
        logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
        logger.handlers = [*(logger.handlers if verbose else []), captured]
    try:
        with contextlib.chdir(root):
            try:
                repo = Repo(str(root))
            except NotDvcRepoError:
                raise DataError(
                    "this folder is not a DVC repository; run the command from the repository root"
                ) from None
            with repo:
                yield repo, captured
    finally:
        for logger, level, handlers in saved:
            logger.setLevel(level)
            logger.handlers = handlers


def repo_path(repo: Any, out: Any) -> str:
    """An output's path in the repository, '/'-separated on every system."""
    return tool_path(os.path.relpath(out.fs_path, repo.root_dir))


def workspace_states(repo: Any, paths: Collection[str]) -> dict[str, str]:
    """Repository path -> how the workspace differs from the record ("deleted", "modified"),
    for the cached outputs at `paths` that differ: DVC's own comparison of each output."""
    states: dict[str, str] = {}
    for out in repo.index.outs:
        path = repo_path(repo, out)
        if out.use_cache and path in paths:
            states.update((path, state) for state in out.workspace_status().values())
    return states


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


def resolve_remote(name: str | None, root: Path, action: str) -> Remote | None:
    """The remote a command acts on: `name` (from -r), else the default; None if neither is
    configured. Read with DVC's own config loader (every level: repo, local, global, system;
    local URLs resolved to absolute paths)."""
    from dvc.config import Config  # noqa: PLC0415 - DVC: the data venv only

    dvc_dir = str(root / ".dvc")
    try:
        config = Config(dvc_dir=dvc_dir, local_dvc_dir=dvc_dir)
    except Exception as error:  # DVC's ConfigError and whatever a broken file raises
        raise DataError(
            f"dvc {action} failed: DVC cannot read its configuration ({error})"
        ) from None
    remotes = config["remote"]
    name = name or config["core"].get("remote")
    return Remote(name, str(remotes[name]["url"])) if name in remotes else None


# --- why a DVC operation failed, from the exceptions it raised or logged ---------------------

# What happened -> what to do. {remote} is the remote's name and URL, {rerun} the command that
# repeats the user's.
ADVICE = {
    "unreachable": "the remote {remote} is unreachable; start its server or fix its endpoint "
    "(the remote's endpointurl setting or AWS_ENDPOINT_URL_S3), then rerun `{rerun}`",
    "credentials": "the remote {remote} rejected the credentials; set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY to keys it accepts and rerun `{rerun}`",
    "no credentials": "no S3 credentials were found for the remote {remote}; set "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and rerun `{rerun}`",
    "bucket": "the bucket of the remote {remote} does not exist and DVC does not create "
    "buckets; create that bucket or fix the remote's url, then rerun `{rerun}`",
}
# S3's error codes (ClientError.response["Error"]["Code"]; a HEAD request's is its status).
REJECTED = frozenset(
    {
        "403",
        "Forbidden",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
    }
)
NO_BUCKET = frozenset({"NoSuchBucket"})


def chain(error: BaseException) -> Iterator[BaseException]:
    """error and the exceptions it was raised from or while handling."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def failure_types() -> dict[str, tuple[type[BaseException], ...]]:
    """Exception types -> which failure they are. A connection that failed or dropped, on every
    system: the OS's (refused, reset, timed out, unknown host), botocore's and aiohttp's."""
    import socket  # noqa: PLC0415

    types: dict[str, tuple[type[BaseException], ...]] = {
        "unreachable": (ConnectionError, TimeoutError, socket.gaierror),
    }
    try:
        import aiohttp  # noqa: PLC0415 - the S3 remote's HTTP client (dvc[s3])
        from botocore import exceptions  # noqa: PLC0415
    except ImportError:  # DVC without its S3 support: the OS's types are all there is
        return types
    types["no credentials"] = (exceptions.NoCredentialsError, exceptions.PartialCredentialsError)
    types["unreachable"] += (
        exceptions.ConnectionError,  # endpoint unreachable, connect timeout
        exceptions.HTTPClientError,  # connection closed, read timeout
        aiohttp.ClientConnectionError,
    )
    return types


def failure_kind(errors: Iterable[BaseException]) -> str | None:
    """Which of ADVICE's failures the exceptions are, by their types and S3's error codes."""
    types = failure_types()
    for error in errors:
        for link in chain(error):
            response = getattr(link, "response", None)
            code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
            if code in REJECTED:
                return "credentials"
            if code in NO_BUCKET:
                return "bucket"
            kind = next((kind for kind, found in types.items() if isinstance(link, found)), None)
            if kind is not None:
                return kind
    return None


def explain(
    action: str,
    error: BaseException,
    args: Sequence[str],
    remote: Remote,
    logged: Iterable[BaseException] = (),
) -> str:
    """One sentence for a failed `dvc ACTION`: what happened and what to do. `logged`: the
    exceptions DVC caught and logged on the way (see Captured)."""
    kind = failure_kind([error, *logged])
    if kind is not None:
        text = ADVICE[kind].format(remote=remote, rerun=command(action, args))
        return f"dvc {action} failed: {text}."
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"dvc {action} failed ({detail}); `{command(action, [*args, '-v'])}` shows DVC's log."
