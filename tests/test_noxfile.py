"""The noxfile is a table of contents: every task is a session with a description and tags."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import nox.registry
import pytest

from tests.conftest import ROOT

# An ANSI escape sequence that sets a text style or colour.
ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")

TASKS = {"tests", "security", "train-tracked", "build-image", "export-summary"}


def list_sessions(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", *args],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    listed: list[dict[str, object]] = json.loads(out)
    return listed


def test_noxfile_registers_every_task_with_a_docstring() -> None:
    import noxfile  # noqa: F401 - importing registers the sessions

    registered = nox.registry.get()
    assert set(registered) >= TASKS
    for name, func in registered.items():
        assert func.__doc__, f"session {name} has no description for `nox -l`"
        assert len(func.__doc__.strip().splitlines()) == 1, f"keep {name}'s description to one line"


@pytest.mark.slow
def test_list_json_describes_every_session() -> None:
    listed = {entry["name"]: entry for entry in list_sessions("-k", "True")}
    assert set(listed) >= TASKS
    assert all(entry["description"] for entry in listed.values())


@pytest.mark.slow
def test_default_run_is_the_ci_gates() -> None:
    defaults = {entry["name"] for entry in list_sessions()}
    ci = {entry["name"] for entry in list_sessions("--tags", "ci")}
    assert {"tests", "security", "lint"} <= defaults
    assert defaults == ci
    assert "train-tracked" not in ci


@pytest.mark.slow
def test_nox_l_prints_the_descriptions() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nox", "-l"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    # CI forces colour (FORCE_COLOR): the descriptions are what is read, not their colours.
    out = ANSI_STYLE.sub("", out)
    for task in TASKS:
        # `tests` runs on several Pythons: nox lists it once per Python (`tests-3.11`).
        pattern = rf"^[*-] {task}(-3\.\d+)?( \[[^]]*\])? -> \S"
        assert re.search(pattern, out, re.MULTILINE), out
