"""From a Markdown file to the requested formats, written whole into the output folder."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from sessions.summary import ExportError, appendix, docx, files, fit, pdf, source

FORMATS = ("docx", "pdf")


def parse_formats(value: str) -> list[str]:
    """`docx,pdf` -> ["docx", "pdf"]; anything else is an error naming the choices."""
    formats = [item.strip().lower() for item in value.split(",") if item.strip()]
    unknown = [item for item in formats if item not in FORMATS]
    if unknown or not formats:
        raise ExportError(
            f"Unknown output format {', '.join(unknown) or repr(value)}: "
            f"choose from {', '.join(FORMATS)} (e.g. --to docx,pdf)."
        )
    return list(dict.fromkeys(formats))


def rasterize_svgs(resources: Path) -> dict[str, Path]:
    """A PNG copy of every SVG in `resources`, by the SVG's file name (Word shows the PNG)."""
    rasters: dict[str, Path] = {}
    for svg in sorted(resources.glob("*.svg")):
        rasters[svg.name] = svg.with_suffix(".png")
        pdf.rasterize(svg, rasters[svg.name])
    return rasters


def docx_tree(document: source.Document, rasters: dict[str, Path]) -> str:
    """The syntax tree for Word: SVG images swapped for PNG copies that every Word can show,
    wide tables with column widths from their content and smaller type."""
    ast = copy.deepcopy(document.ast)
    for element in source.walk(ast["blocks"]):
        if element["t"] == "Image" and element["c"][2][0] in rasters:
            element["c"][2][0] = rasters[element["c"][2][0]].name
    fit.word_columns(ast)
    return json.dumps(ast)


def pdf_tree(document: source.Document) -> str:
    """The syntax tree for typst, which sizes table columns itself."""
    ast = copy.deepcopy(document.ast)
    fit.auto_columns(ast)
    return json.dumps(ast)


def export(
    input_path: Path,
    out_dir: Path,
    formats: list[str],
    *,
    toc: bool | None = None,
    report: Path | None = None,
    fonts: pdf.Fonts | None = None,
    warn: Callable[[str], None] = lambda message: None,
) -> list[Path]:
    """Convert `input_path` into each format in `out_dir`; return the written paths.

    Checks everything that can be checked before converting (output folder, input text,
    images), converts into a scratch folder, and only then creates the output folder and
    moves the outputs into place, all of them or none. A `report` (Markdown) is appended as
    a section of its own, its images relative to its own folder. Problems that do not stop
    the export (emoji that no font can draw) are passed to `warn`, one sentence each.
    """
    fonts = fonts or pdf.Fonts.from_env()
    files.check_folder(out_dir)
    document = source.parse(input_path)
    if report is not None:
        appendix.append(document, appendix.read(report))
    if toc is None:
        toc = len(document.headings) >= source.TOC_MIN_HEADINGS
    if "pdf" in formats:
        text = json.dumps(document.ast, ensure_ascii=False)
        warning = pdf.emoji_warning(input_path.name, text, fonts)
        if warning:
            warn(warning)
    title, date = document.meta_text("title"), document.meta_text("date")
    targets = [out_dir / f"{input_path.stem}.{fmt}" for fmt in formats]
    with tempfile.TemporaryDirectory(prefix="export-summary-") as scratch:
        resources = Path(scratch)
        source.stage_images(document, resources)
        rasters = rasterize_svgs(resources)
        fit.size_images(document.ast, resources, rasters, pdf.RASTER_PPI)
        rendered = resources / "rendered"
        rendered.mkdir()
        for fmt in formats:
            result = rendered / f"document.{fmt}"
            if fmt == "docx":
                docx.render(
                    docx_tree(document, rasters), resources, result,
                    toc=toc, title=title, date=date,
                )  # fmt: skip
            else:
                pdf.render(
                    pdf_tree(document), resources, result, toc=toc,
                    title=title, author=document.meta_text("author"), fonts=fonts,
                )  # fmt: skip
        with files.created_folder(out_dir), files.staged(targets) as temps:
            for fmt, temp in zip(formats, temps, strict=True):
                try:
                    shutil.copyfile(rendered / f"document.{fmt}", temp)
                except OSError as error:
                    reason = error.strerror or type(error).__name__
                    raise ExportError(
                        f"Cannot write into the output folder {out_dir}: {reason}."
                    ) from error
    return targets
