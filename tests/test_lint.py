"""The `lint` gate fails on each kind of planted fault and names it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import measured_in

CLEAN = '''"""A clean module."""


def double(x: int) -> int:
    return 2 * x
'''

FAULTS = {
    "unused-import": ('"""Planted."""\n\nimport os\n\n\ndef f() -> int:\n    return 1\n', "F401"),
    "bad-format": (
        '"""Planted."""\n\n\ndef f( x:int)->int:\n    return x\n',
        "would be reformatted",
    ),
    "wrong-return": ('"""Planted."""\n\n\ndef f() -> int:\n    return "one"\n', "return-value"),
}


def lint_project(project: Path, module: str, nox_cmd: list[str], env: dict[str, str]) -> str:
    (project / "experiments" / "planted.py").write_text(module, encoding="utf-8")
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "lint"],
        cwd=project, env=measured_in(project, env), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    return output if result.returncode == 0 else f"FAILED\n{output}"


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_planted_fault_fails_and_is_named(
    fault: str, project_copy: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    module, marker = FAULTS[fault]
    output = lint_project(project_copy, module, nox_cmd, child_env)
    assert output.startswith("FAILED"), output
    assert marker in output and "planted.py" in output


@pytest.mark.slow
def test_clean_code_passes(
    project_copy: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    output = lint_project(project_copy, CLEAN, nox_cmd, child_env)
    assert not output.startswith("FAILED"), output


def test_fix_applies_ruff_fixes_and_formatting(tmp_path: Path) -> None:
    from sessions import lint
    from tests.conftest import RecordingSession

    session = RecordingSession(tmp_path, venv_backend="none", posargs=["--fix"])
    lint.run(session)  # type: ignore[arg-type]
    assert session.runs == [("ruff", "check", "--fix", "."), ("ruff", "format", "."), ("mypy",)]
