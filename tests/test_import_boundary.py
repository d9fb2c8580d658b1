"""The library points one way: nothing under src/gradient_lab imports the pipeline or scripts."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

LIBRARY = ROOT / "src" / "gradient_lab"
FORBIDDEN = ("sessions", "experiments", "nox", "noxfile", "tests", "benchmarks")


def imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_library_module_imports_sessions_experiments_or_nox() -> None:
    files = sorted(LIBRARY.rglob("*.py"))
    assert len(files) >= 10
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in imported_modules(path.read_text(encoding="utf-8"))
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders


def test_the_check_sees_an_offending_import() -> None:
    assert "sessions.venv" in imported_modules("import os\nfrom sessions.venv import x\n")
    assert "nox" in imported_modules("def f():\n    import nox\n")


@pytest.mark.slow
def test_importing_every_library_module_loads_none_of_them() -> None:
    modules = [
        f"gradient_lab.{p.stem}" for p in sorted(LIBRARY.glob("*.py")) if p.stem != "__init__"
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    # Run from outside the checkout, with only the library's folder on the path.
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=LIBRARY.parent.parent.parent,
        env=os.environ | {"PYTHONPATH": str(LIBRARY.parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_gradient_monitor_and_the_accumulator_work_without_wandb() -> None:
    """Only the W&B sink (and the start it uses) loads wandb: the measuring parts are torch's."""
    code = (
        "import sys\n"
        "import gradient_lab.checkpoints, gradient_lab.gradients, gradient_lab.health\n"
        "import gradient_lab.intervals\n"
        "print('wandb' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(LIBRARY.parent)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
