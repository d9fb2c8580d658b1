"""export-summary: real pandoc and typst convert a rich document; python-docx and pypdf read it."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from sessions.summary import ExportError, cli, docx, export, files, source
from tests.conftest import ROOT

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
    assert "🎉" in text and "🚀" in text, "no emoji font: install fonts-noto-color-emoji"
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
def test_title_author_date_fall_back_to_git_and_file_name(tmp_path: Path) -> None:
    path = write_document(tmp_path, "# One\n\nText.\n")
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
    assert document.meta_text("title") == "Report"
    assert document.meta_text("author") == "Grace Hopper"
    assert document.meta_text("date") == "2026-01-02"


@pytest.mark.slow
def test_outside_git_the_date_is_today(tmp_path: Path) -> None:
    import datetime

    document = source.parse(write_document(tmp_path, "No front matter.\n"))
    assert document.meta_text("date") == datetime.date.today().isoformat()
    assert document.meta_text("author") in ("", source.git_metadata(document.path)[0])


@pytest.mark.slow
def test_long_documents_get_a_table_of_contents(tmp_path: Path) -> None:
    from pypdf import PdfReader

    long_text = "".join(f"# Part {i}\n\nText {i}.\n\n" for i in range(source.TOC_MIN_HEADINGS))
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


# --- bad input: one sentence, exit 1, nothing written -------------------------------------------


def assert_fails(capsys: pytest.CaptureFixture[str], out: Path, *args: str, says: str) -> None:
    code, stdout, stderr = run_cli(*args, "--out", str(out), capsys=capsys)
    assert code == 1
    assert stdout == ""
    assert stderr.startswith("export-summary: ") and says in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not out.is_dir() or not [
        p for p in out.iterdir() if p.suffix in (".docx", ".pdf", ".part")
    ]


def test_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_fails(
        capsys, tmp_path / "out", "--input", str(tmp_path / "nope.md"), says="does not exist"
    )


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


@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_output_folder_that_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    path = write_document(tmp_path)
    blocker = tmp_path / "occupied"
    blocker.write_text("not a folder", encoding="utf-8")
    out = blocker if where == "a file" else blocker / "summary"
    assert_fails(capsys, out, "--input", str(path), says="Cannot write into the output folder")
    assert blocker.read_text(encoding="utf-8") == "not a folder"


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

    monkeypatch.setattr(export.pdf, "render", half_written)
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
