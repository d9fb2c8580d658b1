"""Online mode fails fast with one sentence: no API key, or a server that cannot be reached.

No W&B server is reachable here. A wrong WANDB_BASE_URL or a network that is down look to W&B
like one of three: a closed port on loopback (refused, said at once), a name under `.invalid`
(does not resolve, said at once), or a port that takes connections and never answers (said
after the init timeout). A failed start leaves the run folder as it found it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.wandb_runs import run_dirs

UNRESOLVABLE = "https://nosuch.invalid"  # RFC 6761: .invalid names never resolve


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def silent_server() -> Iterator[str]:
    """A port that takes connections and never answers (a hung server): listening, the system
    completes each connection, and nothing ever reads from it or writes to it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def run_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # The servers here are on loopback or nowhere: this machine's proxies are no part of it.
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COVERAGE", "WANDB_")) and not k.lower().endswith("_proxy")
    }
    base |= {"HOME": str(tmp_path / "home"), "USERPROFILE": str(tmp_path / "home"),
             "NETRC": str(tmp_path / "no-netrc"), "WANDB_CONFIG_DIR": str(tmp_path / "cfg"),
             "WANDB_DATA_DIR": str(tmp_path / "data"), "WANDB_DIR": str(tmp_path / "runs"),
             "no_proxy": "*",
             "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "experiments.tiny_regression", "--steps", "10",
         "--models-dir", str(tmp_path / "models")],
        cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def timed_online(tmp_path: Path, url: str, timeout: int) -> tuple[str, float]:
    """The sentence of an online run against `url`, and the seconds from start to exit."""
    began = time.perf_counter()
    result = run_script(tmp_path, WANDB_MODE="online", WANDB_API_KEY="0" * 40,
                        WANDB_BASE_URL=url, WANDB_INIT_TIMEOUT=str(timeout))  # fmt: skip
    return one_sentence(result), time.perf_counter() - began


def one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert lines[0].count(". ") == 0 and lines[0].endswith(".")
    assert "WANDB_MODE=offline" in lines[0] and "wandb sync <run folder>" in lines[0]
    return lines[0]


def folder_state(runs: Path) -> dict[str, str | None]:
    """What `runs/wandb/` holds: each name, with its link's target (None: not a link)."""
    folder = runs / "wandb"
    return {p.name: str(p.readlink()) if p.is_symlink() else None for p in folder.iterdir()}


@pytest.mark.slow
def test_online_without_a_key_is_one_sentence_and_the_offline_hint_works(tmp_path: Path) -> None:
    message = one_sentence(run_script(tmp_path, WANDB_MODE="online"))
    assert "finds no API key: run `wandb login` or set WANDB_API_KEY" in message
    assert not (tmp_path / "models").exists()
    # What the sentence says to do instead.
    result = run_script(tmp_path, WANDB_MODE="offline")
    assert result.returncode == 0, result.stderr
    assert len(run_dirs(tmp_path / "runs")) == 1


# Well under the init timeout, on a slow machine too: a run that waited for it takes longer.
AT_ONCE = 15


@pytest.mark.slow
def test_a_refused_connection_is_one_sentence_at_once(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    message, seconds = timed_online(tmp_path, url, timeout=30)
    assert f"W&B's server {url} refused the connection: check WANDB_BASE_URL" in message
    assert seconds < AT_ONCE, f"{seconds:.1f} s"
    assert not (tmp_path / "runs" / "wandb").exists()  # wandb.init never ran
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_a_server_name_that_does_not_resolve_is_one_sentence_at_once(tmp_path: Path) -> None:
    message, seconds = timed_online(tmp_path, UNRESOLVABLE, timeout=30)
    assert f"W&B's server {UNRESOLVABLE} cannot be found (the name does not resolve)" in message
    assert seconds < AT_ONCE, f"{seconds:.1f} s"
    assert not (tmp_path / "runs" / "wandb").exists()


@pytest.mark.slow
def test_a_server_that_does_not_answer_is_one_sentence_after_the_init_timeout(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    with silent_server() as url:
        message, seconds = timed_online(tmp_path, url, timeout=4)
        assert f"W&B's server {url} did not answer within 4 s" in message
        assert seconds >= 4
        # The stub run wandb.init had begun is gone, and so is the folder it made for it.
        assert not (runs / "wandb").exists(), sorted((runs / "wandb").rglob("*"))
        assert not (tmp_path / "models").exists()
        # Beside an earlier run, only what the failed start made goes: the run, and where
        # `latest-run` and the debug logs' links point, are as before.
        assert run_script(tmp_path, WANDB_MODE="offline").returncode == 0
        before = folder_state(runs)
        assert len(run_dirs(runs)) == 1
        one_sentence(run_script(tmp_path, WANDB_MODE="online", WANDB_API_KEY="0" * 40,
                                WANDB_BASE_URL=url, WANDB_INIT_TIMEOUT="4"))  # fmt: skip
    assert folder_state(runs) == before
    assert not list((runs / "wandb").glob("run-*"))


@pytest.fixture
def direct(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy from the environment: this machine's own (or its system settings') aside."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("no_proxy", "*")
    return monkeypatch


@pytest.mark.slow
def test_the_probe_tells_refused_and_unresolvable_from_a_server_that_may_answer(
    direct: pytest.MonkeyPatch,
) -> None:
    import wandb

    from gradient_lab.wandb_start import PROBE_TIMEOUT, unreachable

    def verdict(url: str) -> str | None:
        return unreachable(wandb.Settings(base_url=url), PROBE_TIMEOUT)

    assert verdict(f"http://127.0.0.1:{closed_port()}") == "refused the connection"
    assert verdict(UNRESOLVABLE) == "cannot be found (the name does not resolve)"
    with silent_server() as url:
        assert verdict(url) is None  # the wait for its answer is wandb.init's


def test_a_proxy_skips_the_probe(direct: pytest.MonkeyPatch) -> None:
    import wandb

    from gradient_lab.wandb_start import proxied

    url = "https://api.example.com"
    assert not proxied(url, wandb.Settings())
    # A proxy for the scheme, from the environment (urllib's reading of it)...
    direct.delenv("no_proxy")
    direct.setenv("https_proxy", "http://proxy.invalid:3128")
    assert proxied(url, wandb.Settings())
    assert not proxied("http://api.example.com", wandb.Settings())  # no http_proxy
    direct.setenv("no_proxy", "localhost,example.com")
    assert not proxied(url, wandb.Settings())  # bypassed: the probe goes direct, as W&B does
    # ...or from W&B's own settings (WANDB_HTTPS_PROXY).
    direct.setenv("no_proxy", "*")
    assert proxied(url, wandb.Settings(https_proxy="http://proxy.invalid:3128"))
