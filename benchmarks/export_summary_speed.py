"""How long a warm `nox -s export-summary` takes for SESSION_SUMMARY.md, against bare pandoc.

Run with a Python that has nox, pypandoc-binary, typst and python-docx (e.g. the tests venv):

    .nox/tests-3-11/bin/python benchmarks/export_summary_speed.py [--repeat 3]

It warms the session's venv once, then times: the whole session (nox start-up, venv check,
docx + PDF), the export alone in one process, and the baseline, pandoc's plain Markdown -> HTML
conversion of the same file (one pandoc process), all in this run. Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pypandoc

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = ROOT / "SESSION_SUMMARY.md"


def timed(command: list[str], repeat: int) -> float:
    """Median wall time of `command` in seconds; fails loudly if it fails."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--repeat", type=int, default=3)
    repeat = cli.parse_args().repeat
    with tempfile.TemporaryDirectory() as out:
        session = [sys.executable, "-m", "nox", "-s", "export-summary", "--", "--out", out]
        subprocess.run(session, cwd=ROOT, check=True, capture_output=True)  # create/warm venv
        export = [sys.executable, "-m", "sessions.summary", "--out", out]
        html = [pypandoc.get_pandoc_path(), str(SUMMARY), "-s", "-o", str(Path(out) / "s.html")]
        baseline = timed(html, repeat)
        alone = timed(export, repeat)
        warm = timed(session, repeat)
    print(f"baseline  pandoc md->html            {baseline:6.2f} s")
    print(
        f"export    docx+pdf, one process      {alone:6.2f} s  ({alone / baseline:5.1f}x baseline)"
    )
    print(f"session   nox -s export-summary warm {warm:6.2f} s  ({warm / baseline:5.1f}x baseline)")


if __name__ == "__main__":
    main()
