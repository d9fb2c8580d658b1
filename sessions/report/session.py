"""The `report` session: `nox -s report [-- REF]` writes build/report/REPORT.md and COMMENT.md.

The work happens in `python -m sessions.report`, inside the session's venv, where DVC, the
project (for `dvc repro`) and matplotlib are installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sessions.stops import run_until_stopped
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox


def run(session: nox.Session) -> None:
    install_groups(session, "data", project=True)
    run_until_stopped(session, "python", "-m", "sessions.report", *session.posargs)
