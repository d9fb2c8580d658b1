"""`python -m sessions.report [REF] [--out DIR]`: what the `report` session runs.

Exit codes: 0 written (changed or not); 1 failed, with one sentence on stderr and no report
written (an earlier report in the output folder is left as it was); 2 usage.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from sessions.files import remove_tree
from sessions.project import BUILD, ROOT
from sessions.report import ReportError
from sessions.report.compare import compare
from sessions.report.figures import draw
from sessions.report.markdown import render

DEFAULT_OUT = BUILD / "report"
REPORT = "REPORT.md"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="nox -s report --",
        description="Report what the working tree does to training, against a git ref.",
    )
    cli.add_argument("ref", nargs="?", default=None,
                     help="commit, branch or tag (default: the merge base with main)")  # fmt: skip
    cli.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the output folder")
    return cli


def write(root: Path, ref: str | None, out: Path) -> Path:
    """Make the report in a scratch folder beside `out`, then put it in place whole."""
    comparison = compare(root, ref)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".report-", dir=out.parent))
    try:
        figures_dir = scratch / "figures"
        figures_dir.mkdir()
        figures = {}
        if comparison.changed:
            figures = {
                path: draw(Path(path).stem, sides, figures_dir)
                for path, sides in comparison.plots.items()
            }
        (scratch / REPORT).write_text(render(comparison, figures), encoding="utf-8")
        if out.exists():
            remove_tree(out)
        shutil.move(scratch, out)
    finally:
        remove_tree(scratch, missing_ok=True)
    return out / REPORT


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        report = write(ROOT, args.ref, args.out)
    except ReportError as error:
        print(f"report: {error}", file=sys.stderr)
        return 1
    print(f"Report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
