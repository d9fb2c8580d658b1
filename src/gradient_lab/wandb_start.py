"""Starting a W&B run: online failures become one `TrackingError` sentence each, at once.

Online, a missing key, or a server that refuses the connection or whose name does not resolve
(a short probe finds both before `wandb.init`; not through a proxy), stop the run at once; a
server that does not answer within `INIT_TIMEOUT` seconds (`WANDB_INIT_TIMEOUT` overrides)
stops it then. A failed `wandb.init` leaves the run folder as it found it.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import wandb

from gradient_lab.errors import TrackingError

# Seconds an online run may take to start: W&B's own default (90) is a long wait for a typo in
# WANDB_BASE_URL or a network that is down.
INIT_TIMEOUT = 15
# Seconds the probe waits for a verdict (Windows takes about 2 s to report a refusal); without
# one, wandb.init waits for the server as before.
PROBE_TIMEOUT = 4.0
OFFLINE_HINT = (
    "or train offline with WANDB_MODE=offline and upload the run later with "
    "`wandb sync <run folder>`"
)


def start_run(mode: Literal["online", "offline", "disabled"], **init: Any) -> Any:
    """wandb.init, with online failures turned into one sentence each, within INIT_TIMEOUT."""
    if mode == "online" and not wandb.login(prompt=False, verify=False):
        raise TrackingError(
            "W&B is set to log online but finds no API key: run `wandb login` or set "
            f"WANDB_API_KEY, {OFFLINE_HINT}."
        )
    timeout = float(os.environ.get("WANDB_INIT_TIMEOUT") or INIT_TIMEOUT)
    root = Path(init.get("dir") or os.environ.get("WANDB_DIR") or Path.cwd())
    server = os.environ.get("WANDB_BASE_URL") or wandb.Settings().base_url
    try:
        if mode == "online":
            # What wandb.init will use: WANDB_BASE_URL, else `wandb login --host`, else W&B's
            # default; the service it starts is the one wandb.init goes on with.
            settings = wandb.setup().settings
            server = settings.base_url
            if reason := unreachable(settings, min(PROBE_TIMEOUT, timeout)):
                check = "that the server runs" if "refused" in reason else "the network"
                raise TrackingError(
                    f"W&B's server {server} {reason}: check WANDB_BASE_URL and {check}, "
                    f"{OFFLINE_HINT}."
                )
        with _undone_on_failure(root):
            return wandb.init(mode=mode, settings=wandb.Settings(init_timeout=timeout), **init)
    except wandb.errors.CommError as error:
        raise TrackingError(
            f"W&B's server {server} did not answer within {timeout:.0f} s: check the network "
            f"and WANDB_BASE_URL (WANDB_INIT_TIMEOUT waits longer), {OFFLINE_HINT}."
        ) from error
    except wandb.errors.Error as error:
        reason = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else ""
        raise TrackingError(f"W&B could not start the run ({reason}): {OFFLINE_HINT}.") from error


def proxied(url: str, settings: wandb.Settings) -> bool:
    """Whether W&B reaches `url` through a proxy (W&B's own setting, or the environment's and
    the system's as urllib reads them), where the direct route may be closed by design."""
    parts = urlsplit(url)
    if settings.https_proxy if parts.scheme == "https" else settings.http_proxy:
        return True
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def unreachable(settings: wandb.Settings, timeout: float) -> str | None:
    """Why W&B's server cannot be reached, where a connection says so within `timeout`: it
    "refused the connection" or "cannot be found (the name does not resolve)". None when it
    takes the connection, when no verdict comes in time, or when a proxy applies."""
    url = settings.base_url
    try:
        parts = urlsplit(url)
        address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    except ValueError:  # a port that is no number: wandb.init says what it makes of it
        return None
    if not address[0] or proxied(url, settings):
        return None
    verdict: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout, all_errors=True).close()
            verdict.append(None)
        except socket.gaierror:
            verdict.append("cannot be found (the name does not resolve)")
        except ExceptionGroup as group:  # every address of the name failed
            # Refused, and no address left to wait for (an IPv6 one may be unreachable).
            errors = group.exceptions
            refused = any(isinstance(e, ConnectionRefusedError) for e in errors)
            waited = any(isinstance(e, TimeoutError) for e in errors)
            verdict.append("refused the connection" if refused and not waited else None)
        except OSError:
            verdict.append(None)

    # In a thread: a name lookup takes no timeout, and a DNS server that does not answer
    # must not hold the start longer than the probe's.
    probe = threading.Thread(target=connect, name="wandb-server-probe", daemon=True)
    probe.start()
    probe.join(timeout)
    return verdict[0] if verdict else None


@contextmanager
def _undone_on_failure(root: Path) -> Iterator[None]:
    """When the block fails, remove what it added under `root/wandb/` (or `.wandb/`): the
    stub run folders this process's logs are in, links to them (a link that pointed elsewhere
    before points there again), and the folder itself if the block made it and it is empty.
    Nothing that was there before, nor another process's run, is touched."""
    folders = [root / "wandb", root / ".wandb"]
    before = {folder: _entries(folder) for folder in folders}
    try:
        yield
    except BaseException:
        if wandb.run is None:
            with suppress(Exception):
                wandb.teardown()  # W&B's service lets go of the run's logs (Windows)
        for folder, entries in before.items():
            _undo(folder, entries)
        raise


def _entries(folder: Path) -> dict[str, str | None] | None:
    """Each name in `folder` with its link's target (None: not a link); None: no folder."""
    if not folder.is_dir():
        return None
    return {p.name: str(p.readlink()) if p.is_symlink() else None for p in folder.iterdir()}


def _undo(folder: Path, before: dict[str, str | None] | None) -> None:
    if not folder.is_dir():
        return
    known = before or {}
    for path in folder.iterdir():
        if path.name not in known and not path.is_symlink() and _ours(path):
            shutil.rmtree(path, ignore_errors=True)
    for path in folder.iterdir():
        if not path.is_symlink() or path.exists():  # a link into a live run stays
            continue
        with suppress(OSError):
            target = known.get(path.name)
            if target is None:
                path.unlink()
            elif str(path.readlink()) != target:
                restored = path.with_name(f"{path.name}.{os.getpid()}")
                restored.symlink_to(target)
                restored.replace(path)
    if before is None:
        with suppress(OSError):
            folder.rmdir()  # only when empty


def _ours(run: Path) -> bool:
    """Whether `run` is a run folder this process logged to: W&B writes the process id into
    each line of a run's debug log. (Another process starting in the same folder keeps its.)"""
    try:
        with (run / "logs" / "debug.log").open(encoding="utf-8", errors="replace") as log:
            return f":{os.getpid()} [" in log.readline()
    except OSError:
        return False
