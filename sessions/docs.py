"""The `docs` session: docs/ built into a site under build/docs/ by Sphinx.

The pages are Markdown (MyST); the library's reference comes from its docstrings (autodoc,
which imports the library, so the project is installed). Any warning fails the build: a link
to a page or heading that does not exist, a reference to nothing. Settings: docs/conf.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sessions.project import BUILD, ROOT
from sessions.venv import install_groups

if TYPE_CHECKING:
    import nox

DOCS = ROOT / "docs"
SITE = BUILD / "docs"


def run(session: nox.Session) -> None:
    install_groups(session, "docs", project=True)
    # Every warning an error, all of them reported before the build fails.
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        str(DOCS),
        str(SITE),
        *session.posargs,
    )
    session.log(f"Docs: {SITE / 'index.html'}")
