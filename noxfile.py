"""The delivery pipeline: one session per task. `nox -l` lists them, `nox` runs the CI gates.

Each session is declared here with the sentence `nox -l` shows; the work lives in
`sessions/<task>.py`, or `sessions/<task>/session.py` for a task of several modules, where the
tests can reach it. Sessions tagged `ci` are the CI gates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

# nox does not put the noxfile's folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sessions.build_image
import sessions.coverage
import sessions.data.session
import sessions.docs
import sessions.lint
import sessions.lock
import sessions.report.session
import sessions.security.session
import sessions.summary.session
import sessions.tests
import sessions.train_tracked
from sessions.project import PYTHON, TESTS_PYTHONS
from sessions.venv import torch_venv_backend

nox.needs_version = ">=2026.10.20"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.error_on_external_run = True

TORCH_BACKEND = torch_venv_backend()


@nox.session(python=TESTS_PYTHONS, venv_backend=TORCH_BACKEND, tags=["ci"])
def tests(session: nox.Session) -> None:
    """Run every test in parallel with coverage; fail below the coverage floor (Rule 5)."""
    sessions.tests.run(session)


@nox.session(python=PYTHON, tags=["ci-coverage"], default=False)
def coverage(session: nox.Session) -> None:
    """Combine the tests' coverage data of every system, report it and gate it (Rule 5)."""
    sessions.coverage.run(session)


@nox.session(name="tests-fast", python=PYTHON, venv_backend=TORCH_BACKEND, default=False)
def tests_fast(session: nox.Session) -> None:
    """Run the fast tier: tests that start no tool, server, training run or nox (seconds)."""
    sessions.tests.run_fast(session)


@nox.session(python=PYTHON, tags=["ci"])
def security(session: nox.Session) -> None:
    """Scan code with bandit, locked pins with safety, tracked files for secrets (Rule 6)."""
    sessions.security.session.run(session)


@nox.session(python=PYTHON, venv_backend=TORCH_BACKEND, tags=["ci"])
def lint(session: nox.Session) -> None:
    """Check style, formatting and types with ruff and mypy; `-- --fix` applies ruff's fixes."""
    sessions.lint.run(session)


@nox.session(name="train-tracked", python=PYTHON, venv_backend=TORCH_BACKEND, default=False)
def train_tracked(session: nox.Session) -> None:
    """Train an experiment with W&B tracking (offline by default); `-- --help` for options."""
    sessions.train_tracked.run(session)


@nox.session(
    name="train-smoke", python=PYTHON, venv_backend=TORCH_BACKEND, tags=["ci-linux"], default=False
)
def train_smoke(session: nox.Session) -> None:
    """Train the demo for a few seconds through train-tracked, as CI does."""
    sessions.train_tracked.run(session, smoke=True)


@nox.session(python=PYTHON, venv_backend=TORCH_BACKEND, tags=["ci-linux"], default=False)
def docs(session: nox.Session) -> None:
    """Build docs/ into a site under build/docs/; a broken link or reference fails it."""
    sessions.docs.run(session)


@nox.session(name="build-image", python=PYTHON, tags=["ci-linux"], default=False)
def build_image(session: nox.Session) -> None:
    """Build the PyTorch workspace image, smoke-run it and report its size."""
    sessions.build_image.run(session)


@nox.session(name="export-summary", python=PYTHON, tags=["ci-linux"], default=False)
def export_summary(session: nox.Session) -> None:
    """Publish SESSION_SUMMARY.md as a styled .docx and PDF (Rule 4); `-- --help` for options."""
    sessions.summary.session.run(session)


@nox.session(python=PYTHON, venv_backend=TORCH_BACKEND, default=False)
def data(session: nox.Session) -> None:
    """DVC-versioned data and weights: `-- pull|push|status|ensure`, or `-- dvc ARGS`."""
    sessions.data.session.run(session)


@nox.session(python=PYTHON, venv_backend=TORCH_BACKEND, tags=["ci-report"], default=False)
def report(session: nox.Session) -> None:
    """Report what this tree does to training against REF (default: merge base, or CI's event)."""
    sessions.report.session.run(session)


@nox.session(python=PYTHON, default=False)
def lock(session: nox.Session) -> None:
    """Re-resolve the dependency groups into the locks (needs PyPI)."""
    sessions.lock.run(session)
