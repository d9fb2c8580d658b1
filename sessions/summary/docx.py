"""The .docx: pandoc with a reference document that this module builds from pandoc's own.

The reference document is a binary, so it is not kept in git: `build_reference` makes it from
pandoc's default reference.docx at export time, restyled with python-docx. The style values
live here, as text, and the PDF's template uses the same accent colour.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessions.summary import ExportError, fit, one_line

if TYPE_CHECKING:
    from docx.section import Section
    from docx.styles.style import BaseStyle
    from docx.text.paragraph import Paragraph

ACCENT = "1F4E79"  # headings, title, table header; the PDF template's `accent`
RULE = "9FB6CD"  # table lines
BAND = "EEF3F8"  # table header and code background
BODY_FONT = "Calibri"
HEADING_FONT = "Calibri Light"
CODE_FONT = "Consolas"
MARGIN_CM = 2.2
HEADING_SIZES_PT = {1: 16, 2: 13, 3: 11.5}
SMALL_TABLE_PT = 7.5  # wide tables, as in the PDF


def pandoc_default_reference() -> bytes:
    import pypandoc  # noqa: PLC0415 - heavy, and only in the summary venv

    result = subprocess.run(  # nosec B603 - pandoc from pypandoc_binary, fixed arguments
        [pypandoc.get_pandoc_path(), "--print-default-data-file", "reference.docx"],
        capture_output=True, check=True,
    )  # fmt: skip
    return result.stdout


def set_font(style: BaseStyle, name: str) -> None:
    """Set a style's font by name, dropping theme fonts (Word prefers those over names)."""
    from docx.oxml.ns import qn  # noqa: PLC0415

    fonts = style.element.get_or_add_rPr().get_or_add_rFonts()
    for attribute in ("asciiTheme", "hAnsiTheme", "eastAsiaTheme", "cstheme"):
        fonts.attrib.pop(qn(f"w:{attribute}"), None)
    for attribute in ("ascii", "hAnsi", "cs"):
        fonts.set(qn(f"w:{attribute}"), name)


def style_table(style: BaseStyle) -> None:
    """Lines under every row, a shaded bold header row in the accent colour."""
    from docx.oxml import parse_xml  # noqa: PLC0415
    from docx.oxml.ns import nsdecls, qn  # noqa: PLC0415

    element = style.element
    for old in element.findall(qn("w:tblStylePr")):
        element.remove(old)
    tbl_pr = element.find(qn("w:tblPr"))
    tbl_pr.append(
        parse_xml(
            f"<w:tblBorders {nsdecls('w')}>"
            f'<w:top w:val="single" w:sz="8" w:color="{ACCENT}"/>'
            f'<w:bottom w:val="single" w:sz="8" w:color="{ACCENT}"/>'
            f'<w:insideH w:val="single" w:sz="4" w:color="{RULE}"/>'
            "</w:tblBorders>"
        )
    )
    element.append(
        parse_xml(
            f'<w:tblStylePr {nsdecls("w")} w:type="firstRow">'
            f'<w:rPr><w:b/><w:color w:val="{ACCENT}"/></w:rPr>'
            "<w:tcPr>"
            f'<w:tcBorders><w:bottom w:val="single" w:sz="8" w:color="{ACCENT}"/></w:tcBorders>'
            f'<w:shd w:val="clear" w:color="auto" w:fill="{BAND}"/>'
            '<w:vAlign w:val="bottom"/>'
            "</w:tcPr></w:tblStylePr>"
        )
    )


def paragraph_border(element: Any, side: str, colour: str, eighths: int) -> None:
    """A line on one side of a paragraph or a style's paragraphs (`eighths` of a point).

    `element` is the XML of either (`style.element`, `paragraph._p`): both hold a w:pPr.
    """
    from docx.oxml import parse_xml  # noqa: PLC0415
    from docx.oxml.ns import nsdecls  # noqa: PLC0415

    p_pr = element.get_or_add_pPr()
    p_pr.append(
        parse_xml(
            f'<w:pBdr {nsdecls("w")}><w:{side} w:val="single" w:sz="{eighths}" '
            f'w:space="8" w:color="{colour}"/></w:pBdr>'
        )
    )


def add_field(paragraph: Paragraph, instruction: str, shown: str) -> None:
    """A Word field (PAGE, NUMPAGES) that Word fills in when it lays out the pages."""
    from docx.oxml import parse_xml  # noqa: PLC0415
    from docx.oxml.ns import nsdecls  # noqa: PLC0415

    for xml in (
        '<w:fldChar w:fldCharType="begin"/>',
        f'<w:instrText xml:space="preserve"> {instruction} </w:instrText>',
        '<w:fldChar w:fldCharType="separate"/>',
        f"<w:t>{shown}</w:t>",
        '<w:fldChar w:fldCharType="end"/>',
    ):
        paragraph._p.append(parse_xml(f"<w:r {nsdecls('w')}>{xml}</w:r>"))


def header_and_footer(section: Section, title: str, date: str) -> None:
    """As in the PDF: title and date over a rule from page 2 on, "Page n of N" on every page."""
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_TAB_ALIGNMENT  # noqa: PLC0415
    from docx.shared import Cm, Pt, RGBColor  # noqa: PLC0415

    section.different_first_page_header_footer = True
    grey = RGBColor(0x5A, 0x5A, 0x5A)
    header = section.header.paragraphs[0]
    header.paragraph_format.tab_stops.add_tab_stop(Cm(21 - 2 * MARGIN_CM), WD_TAB_ALIGNMENT.RIGHT)
    run = header.add_run(f"{title}\t{date}")
    run.font.size, run.font.color.rgb = Pt(8.5), grey
    paragraph_border(header._p, "bottom", RULE, 4)
    for footer in (section.footer, section.first_page_footer):
        line = footer.paragraphs[0]
        line.alignment = WD_ALIGN_PARAGRAPH.CENTER
        line.add_run("Page ")
        add_field(line, "PAGE", "1")
        line.add_run(" of ")
        add_field(line, "NUMPAGES", "1")
        for part in line.runs:
            part.font.size, part.font.color.rgb = Pt(8.5), grey


def build_reference(target: Path, *, title: str = "", date: str = "") -> Path:
    """Write the styled reference document, with `title` and `date` in its header, to `target`."""
    import docx  # noqa: PLC0415 - heavy, and only in the summary venv
    from docx.enum.style import WD_STYLE_TYPE  # noqa: PLC0415
    from docx.shared import Cm, Pt, RGBColor  # noqa: PLC0415

    document = docx.Document(io.BytesIO(pandoc_default_reference()))
    styles = document.styles
    accent = RGBColor.from_string(ACCENT)

    normal = styles["Normal"]
    set_font(normal, BODY_FONT)
    normal.font.size = Pt(11)
    for level, size in HEADING_SIZES_PT.items():
        heading = styles[f"Heading {level}"]
        set_font(heading, HEADING_FONT)
        heading.font.size = Pt(size)
        heading.font.bold = True
        heading.font.color.rgb = accent
    title_style = styles["Title"]
    set_font(title_style, HEADING_FONT)
    title_style.font.size = Pt(24)
    title_style.font.color.rgb = accent
    for name in ("Author", "Date"):
        styles[name].font.color.rgb = RGBColor(0x55, 0x55, 0x55)
    code = styles["Verbatim Char"]
    set_font(code, CODE_FONT)
    code.font.size = Pt(9)
    # Code blocks: single line spacing, so box-drawing characters join from line to line.
    code_block = styles.add_style("Source Code", WD_STYLE_TYPE.PARAGRAPH)
    code_block.base_style = normal
    code_block.paragraph_format.line_spacing = 1.0
    code_block.paragraph_format.space_before = Pt(0)
    code_block.paragraph_format.space_after = Pt(8)
    code_block.paragraph_format.keep_together = False
    # Block quotes: a rule on the left in the headings' colour.
    quote = styles["Block Text"]
    quote.font.color.rgb = RGBColor(0x33, 0x33, 0x33)
    quote.paragraph_format.left_indent = Cm(0.6)
    paragraph_border(quote.element, "left", ACCENT, 16)
    small = styles.add_style(fit.SMALL_TABLE_STYLE, WD_STYLE_TYPE.CHARACTER)
    small.font.size = Pt(SMALL_TABLE_PT)
    style_table(styles["Table"])

    for section in document.sections:
        section.page_width, section.page_height = Cm(21), Cm(29.7)  # A4
        for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
            setattr(section, side, Cm(MARGIN_CM))
        header_and_footer(section, title, date)
    document.save(str(target))
    return target


def render(
    document_json: str, resources: Path, target: Path, *, toc: bool, title: str, date: str
) -> None:
    """Write the .docx for a pandoc syntax tree whose images lie in `resources`."""
    import pypandoc  # noqa: PLC0415 - heavy, and only in the summary venv

    reference = build_reference(resources / "reference.docx", title=title, date=date)
    args = [f"--reference-doc={reference}", f"--resource-path={resources}", "--standalone"]
    if toc:
        args.append("--toc")
    try:
        pypandoc.convert_text(
            document_json, "docx", format="json", outputfile=str(target), extra_args=args
        )
    except RuntimeError as error:
        raise ExportError(f"pandoc could not write the .docx: {one_line(error)}") from error
