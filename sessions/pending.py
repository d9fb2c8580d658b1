"""Sessions that are declared but not built yet fail with one clear sentence."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nox


def not_built(session: nox.Session) -> None:
    session.error(f"`nox -s {session.name}` is not built yet; see the open issues for its plan.")
