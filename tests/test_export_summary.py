"""export-summary: real pandoc and typst convert a rich document; python-docx and pypdf read it."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest

from sessions.summary import ExportError, cli, docx, export, files, fit, pdf, source
from tests.conftest import ROOT
from tests.support.optional import missing


def qn(tag: str) -> str:
    """python-docx's qualified tag name; imported here, as the fast tier has no python-docx."""
    from docx.oxml.ns import qn as qualified

    return str(qualified(tag))


DOCUMENT = """\
---
title: "Gradient report: Größe"
author: Ada Lovelace
date: 2026-11-27
---

# Überblick 🚀

Plain text with Ελληνικά, naïve café and an emoji 🎉.

## Nested lists

- first level
  - second level
    - third level
- back to first

## Results

| layer | sigmoid | relu |
|------:|--------:|-----:|
| 1     | 0.0012  | 0.41 |
| 10    | 0.25    | 0.37 |

### Code

```python
def norm(x):
    return x.pow(2).sum().sqrt()
```

![Per-layer chart](img/chart.svg)

![A small photo](img/dot.png)
"""

HEADINGS = [("Heading 1", "Überblick 🚀"), ("Heading 2", "Nested lists"),
            ("Heading 2", "Results"), ("Heading 3", "Code")]  # fmt: skip
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60">'
    '<rect width="120" height="60" fill="#ff8800"/></svg>\n'
)


def png(width: int = 8, height: int = 8) -> bytes:
    """A small solid-colour PNG, written by hand so the test needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\0" + b"\xc0\x39\x2b" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def write_document(folder: Path, text: str = DOCUMENT) -> Path:
    (folder / "img").mkdir(parents=True, exist_ok=True)
    (folder / "img" / "chart.svg").write_text(SVG, encoding="utf-8")
    (folder / "img" / "dot.png").write_bytes(png())
    path = folder / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The rich document converted once, from another working folder than the document's."""
    folder = tmp_path_factory.mktemp("doc")
    document = write_document(folder)
    elsewhere = tmp_path_factory.mktemp("cwd")
    previous = Path.cwd()
    os.chdir(elsewhere)
    try:
        written = export.export(Path(os.path.relpath(document)), folder / "out", ["docx", "pdf"])
    finally:
        os.chdir(previous)
    return {path.suffix[1:]: path for path in written}


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the .docx --------------------------------------------------------------------------------


@pytest.mark.slow
def test_docx_headings_in_order_with_heading_styles(exported: dict[str, Path]) -> None:
    import docx as python_docx

    document = python_docx.Document(str(exported["docx"]))
    headings = [(p.style.name, p.text) for p in document.paragraphs
                if p.style is not None and p.style.name.startswith("Heading")]  # fmt: skip
    assert headings == HEADINGS
    by_style = {p.style.name: p.text for p in document.paragraphs if p.style is not None}
    assert by_style["Title"] == "Gradient report: Größe"
    assert by_style["Author"] == "Ada Lovelace"
    assert by_style["Date"] == "2026-11-27"


@pytest.mark.slow
def test_docx_table_cells_code_lists_and_unicode(exported: dict[str, Path]) -> None:
    import docx as python_docx
    from docx.oxml.ns import qn

    document = python_docx.Document(str(exported["docx"]))
    (table,) = document.tables
    cells = [[cell.text for cell in row.cells] for row in table.rows]
    assert cells == [["layer", "sigmoid", "relu"], ["1", "0.0012", "0.41"], ["10", "0.25", "0.37"]]
    assert table.style is not None and table.style.name == "Table"
    text = "\n".join(p.text for p in document.paragraphs)
    assert "Ελληνικά, naïve café and an emoji 🎉" in text
    code = [p for p in document.paragraphs if p.style is not None and p.style.name == "Source Code"]
    assert code and "return x.pow(2).sum().sqrt()" in code[0].text
    found = [p._p.find(f".//{qn('w:ilvl')}") for p in document.paragraphs]
    levels = [int(ilvl.get(qn("w:val"))) for ilvl in found if ilvl is not None]
    assert levels == [0, 1, 2, 0]


@pytest.mark.slow
def test_docx_embeds_both_images_svg_as_png(exported: dict[str, Path]) -> None:
    import docx as python_docx

    document = python_docx.Document(str(exported["docx"]))
    assert len(document.inline_shapes) == 2
    images = [rel.target_part for rel in document.part.rels.values() if "image" in rel.reltype]
    assert sorted(part.content_type for part in images) == ["image/png", "image/png"]
    assert all(part.blob.startswith(b"\x89PNG") for part in images)


@pytest.mark.slow
def test_docx_carries_the_reference_styles(exported: dict[str, Path]) -> None:
    import docx as python_docx
    from docx.shared import RGBColor

    document = python_docx.Document(str(exported["docx"]))
    styles = document.styles
    assert styles["Heading 1"].font.color.rgb == RGBColor.from_string(docx.ACCENT)
    assert styles["Heading 1"].font.name == docx.HEADING_FONT
    assert styles["Normal"].font.name == docx.BODY_FONT
    assert styles["Verbatim Char"].font.name == docx.CODE_FONT
    table_xml = styles["Table"].element.xml
    assert docx.BAND in table_xml and 'w:type="firstRow"' in table_xml
    section = document.sections[0]
    # Word stores lengths in twentieths of a point: compare to a tenth of a millimetre.
    assert section.left_margin is not None and section.page_width is not None
    assert section.left_margin.cm == pytest.approx(docx.MARGIN_CM, abs=0.01)
    assert section.page_width.cm == pytest.approx(21, abs=0.01)


@pytest.mark.slow
def test_reference_is_made_the_same_way_every_time(tmp_path: Path) -> None:
    import docx as python_docx

    first = python_docx.Document(str(docx.build_reference(tmp_path / "a.docx")))
    second = python_docx.Document(str(docx.build_reference(tmp_path / "b.docx")))
    assert first.styles.element.xml == second.styles.element.xml


# --- the PDF ----------------------------------------------------------------------------------


def pdf_fonts(path: Path) -> dict[str, bool]:
    """Every font the PDF's pages use -> whether its program is embedded in the file."""
    from pypdf import PdfReader

    fonts: dict[str, bool] = {}
    for page in PdfReader(path).pages:
        for ref in page["/Resources"].get("/Font", {}).values():
            font = ref.get_object()
            if font["/Subtype"] == "/Type3":  # glyphs drawn inline (colour emoji)
                fonts[str(font.get("/Name", "Type3"))] = True
                continue
            descendant = (
                font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            )
            descriptor = descendant["/FontDescriptor"].get_object()
            fonts[str(font["/BaseFont"])] = any(
                key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")
            )
    return fonts


@pytest.mark.slow
def test_pdf_pages_text_and_metadata(exported: dict[str, Path]) -> None:
    from pypdf import PdfReader

    reader = PdfReader(exported["pdf"])
    pages = len(reader.pages)
    assert 1 <= pages <= 3
    text = "\n".join(page.extract_text() for page in reader.pages)
    expected_text = ["Gradient report: Größe", "Ada Lovelace", "Überblick", "Nested lists",
                     "third level", "sigmoid", "0.0012", "x.pow(2).sum().sqrt()",
                     "Ελληνικά", "naïve café", "Per-layer chart", f"Page 1 of {pages}"]  # fmt: skip
    for expected in expected_text:
        assert expected in text, expected
    assert reader.metadata is not None
    assert reader.metadata.title == "Gradient report: Größe"
    assert reader.metadata.author == "Ada Lovelace"


@pytest.mark.slow
def test_pdf_embeds_every_font(exported: dict[str, Path]) -> None:
    fonts = pdf_fonts(exported["pdf"])
    assert any("LibertinusSerif" in name for name in fonts), fonts
    assert any("DejaVuSansMono" in name for name in fonts), fonts
    assert all(fonts.values()), fonts


@pytest.mark.slow
def test_pdf_draws_the_images(exported: dict[str, Path]) -> None:
    from pypdf import PdfReader

    reader = PdfReader(exported["pdf"])
    assert sum(len(page.images) for page in reader.pages) == 1  # the PNG, as a raster image
    # The SVG is drawn as vector paths: its fill colour (#ff8800) is set in the page content.
    content = b"".join(page.get_contents().get_data() for page in reader.pages)  # type: ignore[union-attr]
    assert b"1 0.53333" in content


# --- metadata, contents, options ----------------------------------------------------------------


@pytest.mark.slow
def test_title_author_date_fall_back_to_first_heading_and_git(tmp_path: Path) -> None:
    path = write_document(tmp_path, "Intro.\n\n## Two\n\n# One\n\nText.\n\n# Three\n")
    git = ["git", "-c", "user.name=Grace Hopper", "-c", "user.email=g@example.org"]
    env = {
        **os.environ,
        "GIT_COMMITTER_DATE": "2026-01-02T03:04:05",
        "GIT_AUTHOR_DATE": "2026-01-02T03:04:05",
    }
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "report.md"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "doc"], cwd=tmp_path, check=True, env=env)
    document = source.parse(path)
    assert document.meta_text("title") == "One"
    assert document.headings == [(2, "Two"), (1, "Three")]  # the title is not repeated
    assert document.meta_text("author") == "Grace Hopper"
    assert document.meta_text("date") == "2026-01-02"


@pytest.mark.slow
def test_outside_git_the_date_is_today(tmp_path: Path) -> None:
    document = source.parse(write_document(tmp_path, "No front matter.\n\n## Nor a title\n"))
    assert document.meta_text("title") == "Report"  # no level-1 heading: the file name
    assert document.headings == [(2, "Nor a title")]
    assert document.meta_text("date") == datetime.date.today().isoformat()
    assert document.meta_text("author") in ("", source.git_metadata(document.path)[0])


@pytest.mark.slow
def test_a_front_matter_title_keeps_the_first_heading(tmp_path: Path) -> None:
    document = source.parse(write_document(tmp_path, "---\ntitle: T\n---\n\n# One\n"))
    assert document.meta_text("title") == "T"
    assert document.headings == [(1, "One")]


@pytest.mark.slow
def test_long_documents_get_a_table_of_contents(tmp_path: Path) -> None:
    from pypdf import PdfReader

    long_text = "---\ntitle: Long\n---\n\n" + "".join(
        f"# Part {i}\n\nText {i}.\n\n" for i in range(source.TOC_MIN_HEADINGS)
    )
    path = write_document(tmp_path, long_text)
    written = export.export(path, tmp_path / "out", ["docx", "pdf"])
    first_page = PdfReader(written[1]).pages[0].extract_text()
    assert "Contents" in first_page
    assert "TOC \\o" in zip_text(written[0], "word/document.xml")
    short = export.export(path, tmp_path / "short", ["pdf"], toc=False)
    assert "Contents" not in PdfReader(short[0]).pages[0].extract_text()


def zip_text(archive: Path, name: str) -> str:
    import zipfile

    with zipfile.ZipFile(archive) as opened:
        return opened.read(name).decode("utf-8")


def test_formats_are_parsed_and_deduplicated() -> None:
    assert export.parse_formats("pdf, DOCX,pdf") == ["pdf", "docx"]
    with pytest.raises(ExportError, match="choose from docx, pdf"):
        export.parse_formats(",")


# --- emoji without an emoji font: a warning, not a failure --------------------------------------


def emoji_font_file() -> Path:
    import typst

    found = [f.path for f in typst.Fonts().fonts() if "emoji" in f.family.lower() and f.path]
    if not found:
        missing(
            "no emoji font is installed (Debian and Ubuntu: apt-get install fonts-noto-color-emoji)"
        )
    return Path(found[0])


@pytest.mark.slow
def test_emoji_without_an_emoji_font_warn_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fonts").mkdir()
    # typst's own settings (as its command line reads them): only its built-in fonts.
    monkeypatch.setenv("TYPST_IGNORE_SYSTEM_FONTS", "true")
    monkeypatch.setenv("TYPST_FONT_PATHS", str(tmp_path / "fonts"))
    path = write_document(tmp_path)
    code, stdout, stderr = run_cli("--input", str(path), "--out", str(tmp_path / "out"),
                                   capsys=capsys)  # fmt: skip
    assert code == 0
    assert stdout.splitlines() == [str(tmp_path / "out" / f"report.{f}") for f in ("docx", "pdf")]
    assert stderr == (
        "export-summary: warning: report.md holds emoji but no emoji font was found, so the "
        "PDF shows them as boxes; install the font Noto Color Emoji (Debian and Ubuntu: "
        "package fonts-noto-color-emoji).\n"
    )
    code, _, stderr = run_cli("--input", str(path), "--out", str(tmp_path / "docx-only"),
                              "--to", "docx", capsys=capsys)  # fmt: skip
    assert (code, stderr) == (0, "")  # Word draws emoji with the reader's fonts


@pytest.mark.slow
def test_an_emoji_font_in_a_font_folder_is_found_and_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pypdf import PdfReader

    fonts = tmp_path / "fonts"
    fonts.mkdir()
    font = emoji_font_file()
    shutil.copyfile(font, fonts / font.name)
    monkeypatch.setenv("TYPST_IGNORE_SYSTEM_FONTS", "1")
    monkeypatch.setenv("TYPST_FONT_PATHS", str(fonts))
    code, _, stderr = run_cli("--input", str(write_document(tmp_path)), "--out",
                              str(tmp_path / "out"), "--to", "pdf", capsys=capsys)  # fmt: skip
    assert (code, stderr) == (0, "")
    text = "".join(page.extract_text() for page in PdfReader(tmp_path / "out" / "report.pdf").pages)
    assert "🎉" in text and "🚀" in text


@pytest.mark.slow
def test_no_emoji_no_warning(tmp_path: Path) -> None:
    bare = pdf.Fonts(paths=(), system=False)
    assert pdf.emoji_warning("a.md", "Plain text, accents: é, ü; arrows → ✓", bare) is None
    assert pdf.emoji_warning("a.md", "A heart ❤\ufe0f", bare) is not None


# --- bad input: one sentence, exit 1, nothing written -------------------------------------------


def assert_fails(capsys: pytest.CaptureFixture[str], out: Path, *args: str, says: str) -> None:
    existed = out.exists()
    code, stdout, stderr = run_cli(*args, "--out", str(out), capsys=capsys)
    assert code == 1
    assert stdout == ""
    assert stderr.startswith("export-summary: ") and says in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert existed or not out.exists(), "a failed export created the output folder"
    assert not out.is_dir() or not [
        p for p in out.iterdir() if p.suffix in (".docx", ".pdf", ".part")
    ]


def test_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_fails(
        capsys, tmp_path / "out", "--input", str(tmp_path / "nope.md"), says="does not exist"
    )


def test_a_folder_as_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_fails(capsys, tmp_path / "out", "--input", str(tmp_path), says="is a folder, not a file")


def test_input_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes("# Title\n\nCaf\u00e9 cr\u00e8me\n".encode("cp1252"))
    assert_fails(
        capsys,
        tmp_path / "out",
        "--input",
        str(path),
        says="is not UTF-8 text: byte 0xe9 at line 3",
    )


@pytest.mark.slow
def test_missing_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_document(tmp_path, DOCUMENT + "\n![gone](img/missing.png)\n")
    assert_fails(
        capsys, tmp_path / "out", "--input", str(path), says="missing image(s) img/missing.png"
    )


@pytest.mark.slow
def test_remote_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_document(tmp_path, "![web](https://example.org/a.png)\n")
    assert_fails(capsys, tmp_path / "out", "--input", str(path), says="is not a local file")


def test_unknown_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_document(tmp_path)
    assert_fails(capsys, tmp_path / "out", "--input", str(path), "--to", "docx,html",
                 says="Unknown output format html")  # fmt: skip


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("a file", "The output path {out} is a file, not a folder (pass --out DIR)."),
        ("below a file", "Cannot create the output folder {out}: {blocker} is a file"),
    ],
)
def test_output_folder_that_cannot_be_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, says: str
) -> None:
    path = write_document(tmp_path)
    blocker = tmp_path / "occupied"
    blocker.write_text("not a folder", encoding="utf-8")
    out = blocker if where == "a file" else blocker / "summary" / "deeper"
    assert_fails(capsys, out, "--input", str(path), says=says.format(out=out, blocker=blocker))
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def test_output_folder_that_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied")

    path = write_document(tmp_path)
    out = tmp_path / "locked"
    out.mkdir()
    # The superuser that runs these tests here may write anywhere: the refusal is simulated.
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert_fails(capsys, out, "--input", str(path),
                 says=f"Cannot write into the output folder {out}: Permission denied.")  # fmt: skip


@pytest.mark.slow
def test_a_failed_conversion_creates_no_output_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_: object, **__: object) -> None:
        raise ExportError("typst could not compile the PDF: simulated crash.")

    monkeypatch.setattr(pdf, "render", crash)
    out = tmp_path / "new" / "summary"
    with pytest.raises(ExportError, match="simulated crash"):
        export.export(write_document(tmp_path), out, ["docx", "pdf"])
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_a_failed_copy_removes_the_folders_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "new" / "summary"
    copy = shutil.copyfile

    def full_disk(origin: Path, target: Path) -> object:
        if Path(target).parent == out:
            raise OSError(28, "No space left on device")
        return copy(origin, target)

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    with pytest.raises(ExportError, match=r"Cannot write into the output folder .*No space"):
        export.export(write_document(tmp_path), out, ["pdf"])
    assert not (tmp_path / "new").exists()


# --- outputs are replaced whole ---------------------------------------------------------------


@pytest.mark.slow
def test_success_replaces_outputs_and_prints_their_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_document(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for suffix in ("docx", "pdf"):
        (out / f"report.{suffix}").write_bytes(b"old")
    code, stdout, _ = run_cli("--input", str(path), "--out", str(out), capsys=capsys)
    assert code == 0
    assert stdout.splitlines() == [str(out / "report.docx"), str(out / "report.pdf")]
    assert (out / "report.docx").read_bytes()[:2] == b"PK"
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in out.iterdir()) == ["report.docx", "report.pdf"]
    if sys.platform != "win32":
        assert (out / "report.pdf").stat().st_mode & 0o777 == files.default_file_mode()


@pytest.mark.slow
def test_a_failure_midway_leaves_every_old_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_document(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for suffix in ("docx", "pdf"):
        (out / f"report.{suffix}").write_bytes(b"old " + suffix.encode())

    def half_written(document_json: str, resources: Path, target: Path, **_: object) -> None:
        target.write_bytes(b"%PDF-1.7 half")
        raise ExportError("typst could not compile the PDF: simulated crash.")

    monkeypatch.setattr(pdf, "render", half_written)
    with pytest.raises(ExportError, match="simulated crash"):
        export.export(path, out, ["docx", "pdf"])
    assert (out / "report.docx").read_bytes() == b"old docx"  # written, but never renamed
    assert (out / "report.pdf").read_bytes() == b"old pdf"
    assert sorted(p.name for p in out.iterdir()) == ["report.docx", "report.pdf"]


def test_an_empty_result_is_not_an_output(tmp_path: Path) -> None:
    target = tmp_path / "x.pdf"
    target.write_bytes(b"old")
    with pytest.raises(ExportError, match="wrote nothing"), files.staged([target]):
        pass
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


# --- the session, end to end ------------------------------------------------------------------


@pytest.mark.slow
def test_session_exports_the_project_summary(
    tmp_path: Path, nox_cmd: list[str], child_env: dict[str, str]
) -> None:
    env = {**child_env, "PATH": str(Path(sys.executable).parent) + os.pathsep + child_env["PATH"]}
    result = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "export-summary", "--", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "SESSION_SUMMARY.pdf") in result.stdout
    assert (tmp_path / "SESSION_SUMMARY.docx").stat().st_size > 10_000
    # The figure does not push a page break that leaves the first page partly empty.
    assert first_page_filled(tmp_path / "SESSION_SUMMARY.pdf") > 0.85
    bad = subprocess.run(
        [*nox_cmd, "--no-venv", "-s", "export-summary", "--", "--to", "odt"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "Unknown output format odt" in bad.stderr + bad.stdout


@pytest.mark.slow
def test_broken_front_matter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_document(tmp_path, "---\ntitle: a: b\n---\n\nText.\n")
    assert_fails(capsys, tmp_path / "out", "--input", str(path), says="pandoc could not read")


# --- a document that pushes every limit ---------------------------------------------------------

CM = 72 / 2.54  # PDF points per centimetre
MARGIN_X, MARGIN_Y = 2.2 * CM, 2.4 * CM  # the PDF template's page margins
ACCENT_RGB = tuple(int(docx.ACCENT[i : i + 2], 16) / 255 for i in (0, 2, 4))


def cell_token(row: int, column: int) -> str:
    """A long word, different in every cell, so each fragment of it names its cell."""
    letters = hashlib.sha256(f"{row},{column}".encode()).hexdigest()
    return f"r{row}c{column}" + "".join(chr(97 + int(ch, 16)) for ch in letters[:34])


STRESS_ROWS = 3
WIDE_TABLE = "\n".join(
    [
        "| n | " + " | ".join(f"column_header_{c}" for c in range(1, 10)) + " |",
        "|--:|" + "---|" * 9,
        *(
            f"| {r} | " + " | ".join(cell_token(r, c) for c in range(1, 10)) + " |"
            for r in range(STRESS_ROWS)
        ),
    ]
)
CODE_LINE = "x = '" + "0123456789" * 19 + "abcd'"  # 200 characters, no space to break at
BOX = "┌──────┬──────┐\n│ box  │ draw │\n├──────┼──────┤\n│ a    │ b    │\n└──────┴──────┘"
QUOTE = "A quotation about gradients, long enough to wrap onto a second line of the page"
AFTER = " ".join(["Text after the figure, enough of it to fill what is left of the page."] * 5)
STRESS = (
    f"# Stress test\n\nA short paragraph.\n\n{WIDE_TABLE}\n\n```\n{CODE_LINE}\n{BOX}\n```\n\n"
    f"> {QUOTE}.\n\nA short paragraph.\n\n![A large image](img/big.png)\n\n"
    + "".join(f"{AFTER}\n\n" for _ in range(8))
)


@pytest.fixture(scope="module")
def stress(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stress")
    path = write_document(folder, STRESS)
    (folder / "img" / "big.png").write_bytes(png(800, 1000))  # 21 x 26 cm at 96 dpi
    written = export.export(path, folder / "out", ["docx", "pdf"])
    return {p.suffix[1:]: p for p in written}


@pytest.mark.slow
def test_stress_pdf_keeps_all_text_inside_the_text_area(stress: dict[str, Path]) -> None:
    import pdfplumber

    with pdfplumber.open(stress["pdf"]) as opened:
        pages = len(opened.pages)
        for number, page in enumerate(opened.pages, start=1):
            left, right = MARGIN_X - 0.5, page.width - MARGIN_X + 0.5
            drawn = [c for c in page.chars if c["text"].strip()]
            outside = [c["text"] for c in drawn if c["x0"] < left or c["x1"] > right]
            assert not outside, f"page {number}: {''.join(outside)[:80]}"
            for image in page.images:
                assert left <= image["x0"] and image["x1"] <= right
                assert image["top"] >= MARGIN_Y and image["bottom"] <= page.height - MARGIN_Y
            # Above and below the text area, only the running header and footer.
            above = "".join(c["text"] for c in drawn if (c["top"] + c["bottom"]) / 2 < MARGIN_Y)
            below = "".join(
                c["text"] for c in drawn if (c["top"] + c["bottom"]) / 2 > page.height - MARGIN_Y
            )
            header = "" if number == 1 else f"Stresstest{datetime.date.today().isoformat()}"
            assert (above, below) == (header, f"Page{number}of{pages}")
        text = "".join(page.extract_text() for page in opened.pages)
    assert CODE_LINE in text.replace("\n", "")  # wrapped, but every character is there


@pytest.mark.slow
def test_stress_pdf_table_cells_never_overlap(stress: dict[str, Path]) -> None:
    import pdfplumber

    tokens = {(r, c): cell_token(r, c) for r in range(STRESS_ROWS) for c in range(1, 10)}
    boxes: dict[tuple[int, int], list[float]] = {}
    text: dict[tuple[int, int], str] = dict.fromkeys(tokens, "")
    with pdfplumber.open(stress["pdf"]) as opened:
        words = opened.pages[0].extract_words(x_tolerance=1, y_tolerance=1)
        sizes = {c["size"] for c in opened.pages[0].chars if c["text"] == "r"}
    for word in words:  # in reading order: a cell's fragments come one line after another
        owners = [
            key for key, token in tokens.items() if token.startswith(text[key] + word["text"])
        ]
        if not owners:
            continue
        (key,) = owners  # fragments are long enough to name their cell
        text[key] += word["text"]
        box = boxes.setdefault(key, [word["x0"], word["top"], word["x1"], word["bottom"]])
        box[:] = [min(box[0], word["x0"]), min(box[1], word["top"]),
                  max(box[2], word["x1"]), max(box[3], word["bottom"])]  # fmt: skip
    assert text == tokens  # each cell's word is whole, wrapped inside its own cell
    for first, a in boxes.items():
        for second, b in boxes.items():
            overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            assert first == second or not overlap, (first, second)
    assert 7.5 in sizes  # the table did not fit at full size: smaller type


@pytest.mark.slow
def test_stress_pdf_columns_are_sized_from_content(stress: dict[str, Path]) -> None:
    import pdfplumber

    with pdfplumber.open(stress["pdf"]) as opened:
        words = opened.pages[0].extract_words(x_tolerance=1)
    starts = {w["text"][:4]: w["x0"] for w in words if re.fullmatch(r"r0c\d[a-z]+", w["text"])}
    number = next(w for w in words if w["text"] == "n")
    column_width = starts["r0c2"] - starts["r0c1"]
    assert starts["r0c1"] - number["x0"] < column_width / 2  # "n" column is narrow


@pytest.mark.slow
def test_stress_pdf_code_lines_touch_so_box_drawing_joins(stress: dict[str, Path]) -> None:
    import pdfplumber

    with pdfplumber.open(stress["pdf"]) as opened:
        bars = [c for c in opened.pages[0].chars if c["text"] == "│"]
        corners = [c for c in opened.pages[0].chars if c["text"] in "┌├└"]
    assert len(bars) == 6 and len(corners) == 3
    pitch = (corners[-1]["top"] - corners[0]["top"]) / 4  # five lines, four steps
    assert pitch <= bars[0]["bottom"] - bars[0]["top"] + 0.01  # no gap between glyph boxes


@pytest.mark.slow
def test_stress_pdf_block_quote_has_a_rule_in_the_accent_colour(stress: dict[str, Path]) -> None:
    import pdfplumber

    with pdfplumber.open(stress["pdf"]) as opened:
        page = opened.pages[0]
        quote = page.search(QUOTE[:30])[0]
        rules = [
            shape for shape in page.rects + page.lines
            if shape["x1"] - shape["x0"] < 3 and shape["x1"] <= quote["x0"] - 4
            and shape["top"] <= quote["top"] and shape["bottom"] >= quote["bottom"]
        ]  # fmt: skip
    assert rules, "no rule left of the quotation"
    colour = rules[0]["non_stroking_color"] or rules[0]["stroking_color"]
    assert colour == pytest.approx(ACCENT_RGB, abs=0.01)
    assert rules[0]["x0"] >= MARGIN_X - 0.5


def first_page_filled(path: Path) -> float:
    """How far down its text area the PDF's first page is covered (text, images, rules): 0-1."""
    import pdfplumber

    with pdfplumber.open(path) as opened:
        page = opened.pages[0]
        end = page.height - MARGIN_Y  # the footer lies below
        shapes = [c for c in page.chars if c["text"].strip()] + page.images + page.rects
        lowest = max(shape["bottom"] for shape in shapes if shape["bottom"] < end)
    return (lowest - MARGIN_Y) / (end - MARGIN_Y)


@pytest.mark.slow
def test_stress_pdf_first_page_is_filled_despite_the_large_figure(
    stress: dict[str, Path],
) -> None:
    import pdfplumber

    assert first_page_filled(stress["pdf"]) > 0.85
    with pdfplumber.open(stress["pdf"]) as opened:
        (image,) = [image for page in opened.pages for image in page.images]
    assert image["bottom"] - image["top"] <= fit.MAX_IMAGE_HEIGHT_CM * CM + 0.5


@pytest.mark.slow
def test_stress_docx_footer_has_page_fields_and_header_the_title(
    stress: dict[str, Path],
) -> None:
    import docx as python_docx

    document = python_docx.Document(str(stress["docx"]))
    section = document.sections[0]
    footer = section.footer.paragraphs[0]
    instructions = [i.text.strip() for i in footer._p.iter(qn("w:instrText"))]
    assert instructions == ["PAGE", "NUMPAGES"]
    assert footer.text == "Page 1 of 1"  # the fields' text until Word lays out the pages
    assert section.first_page_footer.paragraphs[0]._p.xml == footer._p.xml
    assert section.different_first_page_header_footer  # no header over the title
    date = datetime.date.today().isoformat()
    assert section.header.paragraphs[0].text == f"Stress test\t{date}"
    styles = [(p.style.name if p.style else "", p.text) for p in document.paragraphs]
    assert [text for style, text in styles if style == "Title"] == ["Stress test"]
    assert "Stress test" not in [text for style, text in styles if style != "Title"]


@pytest.mark.slow
def test_stress_docx_tables_images_quotes_and_code(stress: dict[str, Path]) -> None:
    import docx as python_docx
    from docx.shared import RGBColor

    document = python_docx.Document(str(stress["docx"]))
    (table,) = document.tables
    grid = [int(col.get(qn("w:w"))) for col in table._tbl.tblGrid.iter(qn("w:gridCol"))]
    assert len(grid) == 10 and grid[0] < grid[1] / 2  # widths from content
    small = document.styles[fit.SMALL_TABLE_STYLE]
    assert small.font.size is not None and small.font.size.pt == docx.SMALL_TABLE_PT
    cell_runs = [run for row in table.rows for cell in row.cells
                 for p in cell.paragraphs for run in p.runs]  # fmt: skip
    assert all(run.style is not None and run.style.name == fit.SMALL_TABLE_STYLE
               for run in cell_runs)  # fmt: skip
    (image,) = document.inline_shapes
    assert image.height is not None and image.height.cm <= fit.MAX_IMAGE_HEIGHT_CM + 0.01
    quote = next(p for p in document.paragraphs if p.text.startswith(QUOTE[:30]))
    assert quote.style is not None and quote.style.name == "Block Text"
    border = quote.style.element.find(f"{qn('w:pPr')}/{qn('w:pBdr')}/{qn('w:left')}")
    assert border is not None and border.get(qn("w:color")) == docx.ACCENT
    assert quote.style.font.color.rgb != RGBColor.from_string(docx.ACCENT)  # only the rule
    code = next(p for p in document.paragraphs if CODE_LINE in p.text)
    assert code.style is not None and code.style.paragraph_format.line_spacing == 1.0
    assert BOX in code.text
