"""The `export-summary` session (Rule 4): SESSION_SUMMARY.md to a styled .docx and PDF.

The work happens in `sessions.summary`, run inside the session's venv, where pypandoc (with
pandoc from pypandoc_binary), typst and python-docx are installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sessions.stops import run_until_stopped
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox


def run(session: nox.Session) -> None:
    install_groups(session, "summary")
    run_until_stopped(session, "python", "-m", "sessions.summary", *session.posargs)
