"""Command line of the `export-summary` session."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sessions.project import BUILD, SUMMARY
from sessions.summary import ExportError
from sessions.summary.export import FORMATS, export, parse_formats

DEFAULT_OUT = BUILD / "summary"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="nox -s export-summary --",
        description="Publish a Markdown document as a styled .docx and PDF.",
    )
    cli.add_argument("--to", default=",".join(FORMATS), help="formats, comma-separated: docx,pdf")
    cli.add_argument("--input", type=Path, default=SUMMARY, help="the Markdown file")
    cli.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the output folder")
    cli.add_argument(
        "--report", type=Path, metavar="PATH",
        help="a Markdown report (e.g. build/report/REPORT.md) appended as a section of its own",
    )  # fmt: skip
    cli.add_argument(
        "--toc", action=argparse.BooleanOptionalAction, default=None,
        help="table of contents (default: only for documents with many headings)",
    )  # fmt: skip
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        written = export(
            args.input, args.out, parse_formats(args.to), toc=args.toc, report=args.report,
            warn=lambda message: print(f"export-summary: warning: {message}", file=sys.stderr),
        )  # fmt: skip
    except ExportError as error:
        print(f"export-summary: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
