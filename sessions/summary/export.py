"""From a Markdown file to the requested formats, written whole into the output folder."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

from sessions.summary import ExportError, docx, pdf, source
from sessions.summary.files import staged, writable_folder

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


def docx_tree(document: source.Document, resources: Path) -> str:
    """The syntax tree for Word: SVG images swapped for PNG copies that every Word can show."""
    ast = copy.deepcopy(document.ast)
    for element in source.walk(ast["blocks"]):
        if element["t"] == "Image" and element["c"][2][0].endswith(".svg"):
            svg = resources / element["c"][2][0]
            png = svg.with_suffix(".png")
            pdf.rasterize(svg, png)
            element["c"][2][0] = png.name
    return json.dumps(ast)


def export(
    input_path: Path, out_dir: Path, formats: list[str], *, toc: bool | None = None
) -> list[Path]:
    """Convert `input_path` into each format in `out_dir`; return the written paths.

    Checks everything that can be checked before converting (output folder, input text,
    images), then writes all outputs beside their targets and renames them into place only
    when every one of them is complete.
    """
    writable_folder(out_dir)
    document = source.parse(input_path)
    if toc is None:
        toc = len(document.headings) >= source.TOC_MIN_HEADINGS
    targets = [out_dir / f"{input_path.stem}.{fmt}" for fmt in formats]
    with tempfile.TemporaryDirectory(prefix="export-summary-") as scratch:
        resources = Path(scratch)
        source.stage_images(document, resources)
        with staged(targets) as temps:
            for fmt, temp in zip(formats, temps, strict=True):
                if fmt == "docx":
                    docx.render(docx_tree(document, resources), resources, temp, toc=toc)
                else:
                    pdf.render(
                        document.to_json(), resources, temp, toc=toc,
                        title=document.meta_text("title"), author=document.meta_text("author"),
                    )  # fmt: skip
    return targets
