"""Sessions whose task is not built yet fail with one clear sentence, never pass."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT

PENDING: list[str] = ["security", "train-tracked", "export-summary"]


@pytest.mark.parametrize("name", PENDING)
def test_pending_session_fails_clearly(name: str, nox_cmd: list[str]) -> None:
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", name], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "is not built yet" in result.stderr + result.stdout
