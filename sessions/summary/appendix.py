"""A second Markdown document appended to the first as a section of its own (`--report`).

The `report` session's REPORT.md is the case it is made for: its top heading becomes a section
of the exported document at the level of the document's own top sections, its headings below
follow, and its figures keep their paths relative to the report's folder (they are found when
it is read). A PNG figure with an SVG twin beside it is drawn from the SVG: as vectors in the
PDF, and as a PNG that the exporter draws from it for Word.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from sessions.summary.source import Ast, Document, load, walk

OPTION = "--report PATH"
ID_PREFIX = "report-"
# Where a pandoc element keeps its attributes ([identifier, classes, key-values]) in "c".
ATTRIBUTES_AT = {"Header": 1, "CodeBlock": 0, "Div": 0, "Span": 0, "Code": 0, "Link": 0,
                 "Image": 0, "Table": 0, "Figure": 0}  # fmt: skip
# For the PDF only (Word drops raw typst): the document's figures still waiting for a place are
# set before the report begins, and the report's figures do not float: each stays under its
# own heading, where the report puts it (a floating one rose above the "Figures" heading).
PDF_FIGURES_STAY_IN_THE_SECTION = (
    "#place.flush()\n#show figure.where(kind: image): set figure(placement: none)"
)


def read(path: Path) -> Document:
    """The report, its figures checked; its own metadata are not the exported document's."""
    report = load(path, role="report", option=OPTION)
    use_svg_twins(report)
    prefix_identifiers(report.ast["blocks"])
    return report


def prefix_identifiers(blocks: list[Ast]) -> None:
    """Prefix the report's identifiers (pandoc makes one per heading) and its links to them,
    so that a heading named like one of the document's ("Results") keeps its own: typst
    refuses a link to a label that occurs twice."""
    for element in walk(blocks):
        index = ATTRIBUTES_AT.get(element["t"])
        if index is not None and element["c"][index][0]:
            element["c"][index][0] = ID_PREFIX + element["c"][index][0]
        if element["t"] == "Link" and element["c"][2][0].startswith("#"):
            element["c"][2][0] = "#" + ID_PREFIX + element["c"][2][0][1:]


def use_svg_twins(document: Document) -> None:
    """Point every PNG image that has an SVG of the same name beside it at the SVG."""
    elements = [e for e in walk(document.ast["blocks"]) if e["t"] == "Image"]
    for index, (element, image) in enumerate(zip(elements, document.images, strict=True)):
        twin = image.with_suffix(".svg")
        if image.suffix.lower() == ".png" and twin.is_file():
            document.images[index] = twin
            element["c"][2][0] = str(PurePosixPath(element["c"][2][0]).with_suffix(".svg"))


def heading(level: int, inlines: list[Ast]) -> Ast:
    return {"t": "Header", "c": [level, ["", [], []], inlines]}


def section(report: Document, level: int) -> list[Ast]:
    """The report's blocks as one section whose top heading is at `level`.

    The top heading is the report's front-matter title when it has one, else its shallowest
    heading, else one made from its file name; every heading keeps its depth below the top.
    """
    blocks = list(report.ast["blocks"])
    depths = [b["c"][0] for b in walk(blocks) if b["t"] == "Header"]
    title = report.ast["meta"].get("title")
    if title is not None:
        text = [{"t": "Str", "c": report.meta_text("title")}]
        inlines = title["c"] if title["t"] == "MetaInlines" else text
        blocks.insert(0, heading(min(depths, default=1) - 1, inlines))
    elif not depths:
        name = report.path.stem.replace("_", " ").capitalize()
        blocks.insert(0, heading(1, [{"t": "Str", "c": name}]))
    headers = [b for b in walk(blocks) if b["t"] == "Header"]
    shift = level - min(h["c"][0] for h in headers)
    for header in headers:
        header["c"][0] += shift
    return [{"t": "RawBlock", "c": ["typst", PDF_FIGURES_STAY_IN_THE_SECTION]}, *blocks]


def append(document: Document, report: Document) -> None:
    """Put `report` after `document`'s content, a section at the level of its top sections."""
    level = min((depth for depth, _ in document.headings), default=1)
    document.ast["blocks"] += section(report, level)
    document.images += report.images
