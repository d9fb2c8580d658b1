"""`python -m sessions.report [REF] [--out DIR]`: what the `report` session runs.

It writes REPORT.md (figures beside it) and COMMENT.md: the same report for GitHub, each figure
a line naming the run's `report` artifact, which the CI job posts as the pull request's comment.
In GitHub Actions, COMMENT.md's text is appended to the job summary (GITHUB_STEP_SUMMARY) too.

Exit codes: 0 written (changed or not); 1 failed, with one sentence on stderr and no report
written (an earlier report in the output folder is left as it was); 2 usage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from sessions.files import remove_tree
from sessions.project import BUILD, ROOT
from sessions.report import ReportError
from sessions.report.compare import Comparison, compare
from sessions.report.figures import draw
from sessions.report.markdown import in_artifact, render

DEFAULT_OUT = BUILD / "report"
REPORT = "REPORT.md"
COMMENT = "COMMENT.md"
# GitHub refuses a comment over 65536 characters; the report is far shorter, but if one is
# not, its cut keeps room for this note (and for UTF-16's pairs, which GitHub counts as two).
COMMENT_LIMIT = 64000
CUT = "\n\n…\n\nCut here, at GitHub's limit: the whole report is in the `report` artifact.\n"


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="nox -s report --",
        description="Report what the working tree does to training, against a git ref.",
    )
    cli.add_argument(
        "ref",
        nargs="?",
        default=None,
        help="commit, branch or tag (default: the merge base with main; in GitHub Actions, the "
        "pull request's base or the commit before the push)",
    )
    cli.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the output folder")
    return cli


def run_url(env: Mapping[str, str]) -> str | None:
    """The GitHub Actions run's page, where its artifacts are listed; None outside one."""
    parts = [env.get(name) for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    return "{}/{}/actions/runs/{}".format(*parts) if all(parts) else None


def write(root: Path, ref: str | None, out: Path, env: Mapping[str, str]) -> Path:
    """Compare with `ref` (without one, the commit `choose` picks), then `publish` the report."""
    return publish(compare(root, ref, env), out, env)


def publish(comparison: Comparison, out: Path, env: Mapping[str, str]) -> Path:
    """REPORT.md, its figures and COMMENT.md, made in a scratch folder beside `out` and then put
    in place whole; then, in GitHub Actions, COMMENT.md's text appended to the job summary."""
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
        github = render(comparison, figures, figure=in_artifact(run_url(env)))
        comment = github if len(github) <= COMMENT_LIMIT else github[:COMMENT_LIMIT] + CUT
        (scratch / COMMENT).write_text(comment, encoding="utf-8")
        if out.exists():
            remove_tree(out)
        shutil.move(scratch, out)
    finally:
        remove_tree(scratch, missing_ok=True)
    if summary := env.get("GITHUB_STEP_SUMMARY"):
        with Path(summary).open("a", encoding="utf-8") as file:  # other steps write there too
            file.write(github)
    return out / REPORT


def main(argv: list[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    args = parser().parse_args(argv)
    try:
        report = write(ROOT, args.ref, args.out, env)
    except ReportError as error:
        annotation = "::error::" if env.get("GITHUB_ACTIONS") == "true" else ""
        print(f"{annotation}report: {error}", file=sys.stderr)
        return 1
    print(f"Report: {report}")
    if env.get("GITHUB_STEP_SUMMARY"):
        print(f"Appended {report.parent / COMMENT} to the job summary.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
