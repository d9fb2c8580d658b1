"""export-summary --report: the `report` session's REPORT.md as a section of the exported files.

The report lives in another folder than the summary, with matplotlib figures as PNG and SVG
twins beside it, as the report session writes them; it is exported through the command line
the session runs (`python -m sessions.summary`) and read back with pdfplumber and zipfile.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sessions.summary import appendix
from sessions.summary.source import Ast, Document
from tests.conftest import ROOT, measured_in
from tests.test_export_summary import assert_fails, zip_text

SUMMARY = """\
---
title: Session summary
---

# Results

The summary's own results; see [results](#results).

# Next steps

Text of the summary's last section.
"""
# Enough text that the report begins low on a page, where its first figure does not fit below
# its heading: a figure free to float would rise above the heading into the summary.
FILLER = "Filler text of the summary, long enough to wrap over a line or two of the page. " * 6
REPORT = """\
# Training report: this tree against main

## Results

| metric     | old  | new  | delta |
|------------|-----:|-----:|------:|
| final_loss | 1.20 | 0.90 | -0.30 |

A link to [the results](#results) of the report.

## Figures

![Loss, old vs new](figures/loss.png)

![Gradient norms per layer](figures/gradient_norms.png)
"""
FIGURES = ("loss", "gradient_norms")
PLOT_BLUE = (0x1F / 255, 0x77 / 255, 0xB4 / 255)  # matplotlib's first line colour (C0)


def write_figures(folder: Path) -> None:
    """A line plot per figure, as PNG and as its SVG twin, the way the report session saves
    them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    for name in FIGURES:
        figure, axes = plt.subplots(figsize=(4, 2.4))
        axes.plot([0, 1, 2, 3], [3.0, 2.0, 1.5, 1.2], label="old")
        axes.plot([0, 1, 2, 3], [3.0, 1.8, 1.1, 0.9], label="new")
        axes.set_title(name)
        axes.legend()
        figure.savefig(folder / f"{name}.png", dpi=100)
        figure.savefig(folder / f"{name}.svg")
        plt.close(figure)


def write_inputs(folder: Path, report: str = REPORT) -> tuple[Path, Path]:
    """The summary in `folder`, the report and its figures in `folder`/build/report."""
    summary = folder / "SUMMARY.md"
    summary.write_text(SUMMARY + f"\n{FILLER}\n" * 8, encoding="utf-8")
    report_dir = folder / "build" / "report"
    write_figures(report_dir / "figures")
    (report_dir / "REPORT.md").write_text(report, encoding="utf-8")
    return summary, report_dir / "REPORT.md"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("report")
    summary, report = write_inputs(folder)
    out = folder / "out"
    result = subprocess.run(
        [sys.executable, "-m", "sessions.summary", "--input", str(summary),
         "--report", str(report), "--out", str(out)],
        cwd=ROOT, env=measured_in(ROOT, os.environ), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(out / "SUMMARY.docx"), str(out / "SUMMARY.pdf")]
    return {"docx": out / "SUMMARY.docx", "pdf": out / "SUMMARY.pdf"}


@pytest.mark.slow
def test_pdf_has_the_report_with_its_table_and_vector_figures(exported: dict[str, Path]) -> None:
    import pdfplumber

    with pdfplumber.open(exported["pdf"]) as opened:
        texts = [page.extract_text() for page in opened.pages]
        start = next(i for i, text in enumerate(texts) if "Training report" in text)
        page = opened.pages[start]
        assert "final_loss" in texts[start] and "0.90" in texts[start]
        # The figures are their SVG twins, drawn as vector paths in the plot's own colour.
        blue = [c for c in page.curves + page.lines
                if c["stroking_color"] == pytest.approx(PLOT_BLUE, abs=0.01)]  # fmt: skip
        assert blue, "no plot line drawn as vectors on the report's page"
        report_pages = opened.pages[start:]
        assert not [image for p in report_pages for image in p.images], "a PNG in the PDF"
        rest = "\n".join(texts[start:])
        # Both figures, after the report's heading, and nothing of the summary after it.
        assert "Loss, old vs new" in rest and "Gradient norms per layer" in rest
        assert "summary's last section" not in rest.split("Training report", 1)[1]
        before = "\n".join(texts[:start]) + texts[start].split("Training report", 1)[0]
        assert "Loss, old vs new" not in before and "Gradient norms per layer" not in before


@pytest.mark.slow
def test_docx_has_the_report_section_table_and_figures(exported: dict[str, Path]) -> None:
    import zipfile

    xml = zip_text(exported["docx"], "word/document.xml")
    styles = re.findall(
        r'<w:pStyle w:val="(Heading\d)" />\s*</w:pPr>\s*<w:r>\s*<w:t[^>]*>([^<]*)', xml
    )
    assert styles == [("Heading1", "Results"), ("Heading1", "Next steps"),
                      ("Heading1", "Training report: this tree against main"),
                      ("Heading2", "Results"), ("Heading2", "Figures")]  # fmt: skip
    assert "final_loss" in xml and "Loss, old vs new" in xml
    with zipfile.ZipFile(exported["docx"]) as archive:
        media = [
            archive.read(name) for name in archive.namelist() if name.startswith("word/media/")
        ]
    assert len(media) == 2 and all(blob.startswith(b"\x89PNG") for blob in media)
    # Each section keeps its own "results" bookmark, and each link goes to its own.
    assert re.findall(r'w:anchor="([^"]+)"', xml) == ["results", "report-results"]


# --- bad input: one sentence, exit 1, nothing written -------------------------------------------


@pytest.mark.slow
def test_missing_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary, _ = write_inputs(tmp_path)
    gone = tmp_path / "nope" / "REPORT.md"
    assert_fails(capsys, tmp_path / "out", "--input", str(summary), "--report", str(gone),
                 says=f"The report file {gone} does not exist (pass --report PATH).")  # fmt: skip


@pytest.mark.slow
def test_missing_figure_is_looked_for_beside_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary, report = write_inputs(tmp_path, REPORT + "\n![Ratio](figures/ratio.png)\n")
    write_figures(tmp_path / "figures")  # beside the summary: not where the report's paths lead
    (tmp_path / "figures" / "loss.png").rename(tmp_path / "figures" / "ratio.png")
    assert_fails(capsys, tmp_path / "out", "--input", str(summary), "--report", str(report),
                 says=f"REPORT.md refers to missing image(s) figures/ratio.png (paths are "
                      f"relative to {report.parent.resolve()}).")  # fmt: skip


@pytest.mark.slow
def test_report_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary, report = write_inputs(tmp_path)
    report.write_bytes("# Report\n\nCaf\u00e9\n".encode("cp1252"))
    assert_fails(capsys, tmp_path / "out", "--input", str(summary), "--report", str(report),
                 says=f"{report} is not UTF-8 text: byte 0xe9 at line 3")  # fmt: skip


# --- the section's headings (no pandoc: syntax trees written here) ------------------------------


def header(level: int, text: str, identifier: str = "") -> Ast:
    return {"t": "Header", "c": [level, [identifier, [], []], [{"t": "Str", "c": text}]]}


def report_of(blocks: list[Ast], meta: Ast | None = None) -> Document:
    return Document(Path("build/report/REPORT.md"), {"meta": meta or {}, "blocks": blocks})


def levels(blocks: list[Ast]) -> list[tuple[int, str]]:
    return [(b["c"][0], b["c"][2][0]["c"]) for b in blocks if b["t"] == "Header"]


def test_the_report_top_heading_takes_the_level_of_the_documents_top_sections() -> None:
    report = [header(1, "Report"), header(2, "Metrics"), header(3, "Detail")]
    document = report_of([header(2, "Intro"), header(3, "More")])
    appendix.append(document, report_of(report))
    assert levels(document.ast["blocks"]) == [
        (2, "Intro"), (3, "More"), (2, "Report"), (3, "Metrics"), (4, "Detail")
    ]  # fmt: skip


def test_a_report_title_or_file_name_becomes_its_heading() -> None:
    title = {"title": {"t": "MetaInlines", "c": [{"t": "Str", "c": "Titled"}]}}
    titled = appendix.section(report_of([header(1, "Metrics")], title), 1)
    assert levels(titled) == [(1, "Titled"), (2, "Metrics")]
    bare = appendix.section(report_of([{"t": "Para", "c": []}]), 1)
    assert levels(bare) == [(1, "Report")]


def test_report_identifiers_and_links_to_them_get_a_prefix() -> None:
    link: Ast = {"t": "Link", "c": [["", [], []], [], ["#metrics", ""]]}
    web: Ast = {"t": "Link", "c": [["", [], []], [], ["https://example.org/#a", ""]]}
    blocks = [header(1, "Metrics", "metrics"), {"t": "Para", "c": [link, web]}]
    appendix.prefix_identifiers(blocks)
    assert blocks[0]["c"][1][0] == "report-metrics"
    assert (link["c"][2][0], web["c"][2][0]) == ("#report-metrics", "https://example.org/#a")
