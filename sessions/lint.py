"""The `lint` gate: ruff (rules and formatting), the platform guard, the GitHub workflows
(actionlint with shellcheck, zizmor), and mypy --strict once for each system the CI matrix runs
on, configured in pyproject."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sessions.project import CI_PLATFORMS
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
    session.run("python", "-m", "sessions.platform_rules")
    # The workflows (.github/workflows) and what they use (.github/actions, dependabot.yml).
    # zizmor audits them for security; its settings and any deliberate ignores: zizmor.yml.
    session.run("zizmor", "--offline", "--quiet", ".github")
    # actionlint checks the composite action only through the steps that use it, and runs
    # shellcheck on every `run:` script, but skips that silently when none is on PATH.
    session.run("shellcheck", "--version", silent=True)
    session.run("actionlint", "-oneline")
    # Files, strictness and per-module overrides for untyped packages: [tool.mypy]. Each
    # platform sees its own side of every `sys.platform` test (typeshed's too), and keeps its
    # own cache: the platform is part of what a cache entry was checked for.
    cache = Path(os.environ.get("MYPY_CACHE_DIR", ".mypy_cache"))
    for platform in dict.fromkeys(CI_PLATFORMS.values()):
        session.run("mypy", f"--platform={platform}", f"--cache-dir={cache / platform}")
