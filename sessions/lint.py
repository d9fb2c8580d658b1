"""The `lint` gate: ruff (rules and formatting) and mypy --strict, configured in pyproject."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox


def run(session: nox.Session) -> None:
    install_groups(session, "lint", project=True)
    if "--fix" in session.posargs:
        session.run("ruff", "check", "--fix", ".")
        session.run("ruff", "format", ".")
    else:
        session.run("ruff", "check", "--output-format=concise", ".")
        session.run("ruff", "format", "--check", ".")
    # Files, strictness and per-module overrides for untyped packages: [tool.mypy].
    session.run("mypy")
