"""The PDF: pandoc writes typst markup with our template, the `typst` package compiles it.

No LaTeX and no system libraries: pandoc comes from pypandoc_binary and typst from its wheel,
both on Linux, Windows and macOS. Text fonts are typst's own; emoji use the system's font.
"""

from __future__ import annotations

from pathlib import Path

from sessions.summary import ExportError, one_line

TEMPLATE = Path(__file__).with_name("template.typ")


def typst_string(text: str) -> str:
    """`text` as the inside of a typst string literal."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render(
    document_json: str, resources: Path, target: Path, *, toc: bool, title: str, author: str
) -> None:
    """Write the PDF for a pandoc syntax tree whose images lie in `resources`."""
    import pypandoc  # noqa: PLC0415 - heavy, and only in the summary venv
    import typst  # noqa: PLC0415

    args = [
        f"--template={TEMPLATE}",
        "--standalone",
        f"--variable=pdf-title:{typst_string(title)}",
        f"--variable=pdf-author:{typst_string(author)}",
    ]
    if toc:
        args += ["--toc", "--toc-depth=2"]
    try:
        markup = pypandoc.convert_text(document_json, "typst", format="json", extra_args=args)
    except RuntimeError as error:
        raise ExportError(f"pandoc could not write typst markup: {one_line(error)}") from error
    main = resources / "document.typ"
    main.write_text(markup, encoding="utf-8")
    try:
        typst.compile(str(main), output=str(target), root=str(resources), format="pdf")
    except typst.TypstError as error:
        raise ExportError(f"typst could not compile the PDF: {one_line(error)}") from error


def rasterize(svg: Path, png: Path, ppi: int = 200) -> None:
    """An SVG as a PNG (for Word versions that cannot show SVG), drawn by typst."""
    import typst  # noqa: PLC0415 - heavy, and only in the summary venv

    page = svg.with_suffix(".raster.typ")
    page.write_text(
        f'#set page(width: auto, height: auto, margin: 0pt)\n#image("{svg.name}")\n',
        encoding="utf-8",
    )
    try:
        typst.compile(str(page), output=str(png), root=str(svg.parent), format="png", ppi=ppi)
    except typst.TypstError as error:
        raise ExportError(f"typst could not draw {svg.name} as PNG: {one_line(error)}") from error
