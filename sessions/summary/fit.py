"""Making a document's tables and images fit an A4 page, in both formats.

Tables: the PDF lets typst size columns from their content (see the template); Word gets
column widths computed here from the same idea, and wide tables get smaller type in both.
Images: none is taller than `MAX_IMAGE_HEIGHT_CM`, so a figure that moves to the next page
leaves at most that much of a page empty (the PDF also floats figures, which fills the gap).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessions.summary.source import Ast, plain_text, walk

TEXT_WIDTH_CM = 21 - 2 * 2.2  # A4 less both margins, in both formats
MAX_IMAGE_HEIGHT_CM = 11.0  # under half of the text height (about 25 cm)
# Characters of table text that fit across the text width at the tables' type size, the most
# one column's content counts for when the width is shared out, and a cell's padding.
LINE_CHARS = 95
COLUMN_CAP_CHARS = 56
CELL_PADDING_CHARS = 3
SMALL_TABLE_STYLE = "Small Table Text"  # the .docx character style of wide tables


def table_rows(table: Ast) -> list[list[Any]]:
    """The cells of a pandoc Table (head, bodies and foot), row by row."""
    _attr, _caption, _specs, head, bodies, foot = table["c"]
    rows = list(head[1])
    for body in bodies:
        rows += body[2] + body[3]
    rows += foot[1]
    return [row[1] for row in rows]


def natural_chars(table: Ast) -> list[int]:
    """Per column, the length of its longest cell on one line, plus the cell's padding."""
    widths = [0] * len(table["c"][2])
    for row in table_rows(table):
        column = 0
        for cell in row:
            span = cell[3]
            if column < len(widths) and span == 1:
                widths[column] = max(widths[column], len(plain_text(cell[4])))
            column += span
    return [width + CELL_PADDING_CHARS for width in widths]


def shares(natural: list[int], line: int = LINE_CHARS) -> list[float]:
    """Fractions of the text width per column, from content, like typst's auto columns.

    Columns that fit in an equal share keep their natural width; the others share what is
    left in proportion to their content (capped, so one long cell cannot starve the rest).
    """
    narrow = {i: w for i, w in enumerate(natural) if w <= line / len(natural)}
    left = line - sum(narrow.values())
    wide = {i: min(w, COLUMN_CAP_CHARS) for i, w in enumerate(natural) if i not in narrow}
    total = sum(wide.values())
    widths = [narrow[i] if i in narrow else left * wide[i] / total for i in range(len(natural))]
    return [width / line for width in widths]


def is_wide(table: Ast) -> bool:
    return sum(natural_chars(table)) > LINE_CHARS


def auto_columns(ast: Ast) -> None:
    """Every table's columns sized by the renderer from their content (the PDF's typst)."""
    for table in (e for e in walk(ast["blocks"]) if e["t"] == "Table"):
        table["c"][2] = [[spec[0], {"t": "ColWidthDefault"}] for spec in table["c"][2]]


def word_columns(ast: Ast) -> None:
    """Wide tables get column widths from their content and smaller type (for Word)."""
    for table in (e for e in walk(ast["blocks"]) if e["t"] == "Table"):
        if not is_wide(table):
            continue
        fractions = shares(natural_chars(table))
        table["c"][2] = [
            [spec[0], {"t": "ColWidth", "c": fraction}]
            for spec, fraction in zip(table["c"][2], fractions, strict=True)
        ]
        small = ["", [], [["custom-style", SMALL_TABLE_STYLE]]]
        for row in table_rows(table):
            for cell in row:
                for block in cell[4]:
                    if block["t"] in ("Plain", "Para"):
                        block["c"] = [{"t": "Span", "c": [small, block["c"]]}]


def image_size_cm(path: Path, dpi: float | None = None) -> tuple[float, float]:
    """An image's natural size: its pixels at `dpi`, else its own resolution, else 96 dpi.

    That is the size pandoc gives it in Word; typst would assume 72 dpi, so every image gets
    its size written out and both formats show it alike.
    """
    from docx.image.image import Image  # noqa: PLC0415 - only in the summary venv

    image = Image.from_file(str(path))
    # python-docx reports 72 dpi when the file states none; pandoc then assumes 96.
    horizontal = dpi or (image.horz_dpi if image.horz_dpi != 72 else 96)
    vertical = dpi or (image.vert_dpi if image.vert_dpi != 72 else 96)
    return image.px_width / horizontal * 2.54, image.px_height / vertical * 2.54


def size_images(ast: Ast, resources: Path, rasters: dict[str, Path], raster_dpi: float) -> None:
    """Give every image without a size of its author's one: its natural size, within the text
    width and no taller than `MAX_IMAGE_HEIGHT_CM`.

    `rasters` maps an SVG's file name to its PNG copy drawn at `raster_dpi`, whose size is the
    SVG's.
    """
    for image in (e for e in walk(ast["blocks"]) if e["t"] == "Image"):
        name = image["c"][2][0]
        attributes = image["c"][0][2]
        if any(key in ("width", "height") for key, _ in attributes):
            continue
        if name in rasters:
            width, height = image_size_cm(rasters[name], raster_dpi)
        else:
            width, height = image_size_cm(resources / name)
        shown = min(width, TEXT_WIDTH_CM)
        if shown * height / width > MAX_IMAGE_HEIGHT_CM:
            attributes.append(["height", f"{MAX_IMAGE_HEIGHT_CM:.2f}cm"])
        else:
            attributes.append(["width", f"{shown:.2f}cm"])
