"""Publishing a Markdown document as a styled .docx and PDF (the `export-summary` session).

`session` is the session, which runs `python -m sessions.summary` in its venv; `source` reads
and checks the document, `appendix` adds a report (`--report`) as a section of its own, `fit`
sizes its tables and images for the page, `docx` and `pdf` render it, `files` writes outputs
so that an existing one is only ever replaced by a complete new one (and a failed export
creates nothing), and `cli` ties them together.
"""

from __future__ import annotations


class ExportError(Exception):
    """A problem with the input or the output folder, told in one sentence."""


def one_line(error: BaseException) -> str:
    """A tool's error message on one line, so every failure reads as one sentence."""
    return " ".join(str(error).split())
