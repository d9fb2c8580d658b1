"""Online mode fails fast with one sentence: no API key, or a server that does not answer.

No W&B server is reachable here: "unreachable" is a closed port on loopback with a fake key,
which is what a wrong WANDB_BASE_URL or a network that is down look like to W&B.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.wandb_runs import run_dirs

pytestmark = pytest.mark.slow


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE", "WANDB_"))}
    base |= {"HOME": str(tmp_path / "home"), "USERPROFILE": str(tmp_path / "home"),
             "NETRC": str(tmp_path / "no-netrc"), "WANDB_CONFIG_DIR": str(tmp_path / "cfg"),
             "WANDB_DATA_DIR": str(tmp_path / "data"), "WANDB_DIR": str(tmp_path / "runs"),
             "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "experiments.tiny_regression", "--steps", "10",
         "--models-dir", str(tmp_path / "models")],
        cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def one_sentence(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert lines[0].count(". ") == 0 and lines[0].endswith(".")
    assert "WANDB_MODE=offline" in lines[0] and "wandb sync <run folder>" in lines[0]
    return lines[0]


def test_online_without_a_key_is_one_sentence_and_the_offline_hint_works(tmp_path: Path) -> None:
    message = one_sentence(run_script(tmp_path, WANDB_MODE="online"))
    assert "finds no API key: run `wandb login` or set WANDB_API_KEY" in message
    assert not (tmp_path / "models").exists()
    # What the sentence says to do instead.
    result = run_script(tmp_path, WANDB_MODE="offline")
    assert result.returncode == 0, result.stderr
    assert len(run_dirs(tmp_path / "runs")) == 1


def test_an_unreachable_server_is_one_sentence_after_the_init_timeout(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = run_script(tmp_path, WANDB_MODE="online", WANDB_API_KEY="0" * 40,
                        WANDB_BASE_URL=url, WANDB_INIT_TIMEOUT="4")  # fmt: skip
    message = one_sentence(result)
    assert f"W&B's server {url} did not answer within 4 s" in message
    assert not (tmp_path / "models").exists()
