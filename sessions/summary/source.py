"""Reading a Markdown document: UTF-8 text, pandoc's syntax tree, its metadata and images."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sessions.summary import ExportError, one_line

# Pandoc's Markdown with YAML front matter, pipe tables, fenced code and :emoji: names.
READER = "markdown"
# A document with at least this many headings gets a table of contents.
TOC_MIN_HEADINGS = 8

Ast = dict[str, Any]


@dataclass
class Document:
    path: Path
    ast: Ast
    # Image files the document refers to, as found on disk, in order of appearance.
    images: list[Path] = field(default_factory=list)

    @property
    def headings(self) -> list[tuple[int, str]]:
        """(level, text) of every heading, in order."""
        return [
            (block["c"][0], plain_text(block["c"][2]))
            for block in walk(self.ast["blocks"])
            if block.get("t") == "Header"
        ]

    def meta_text(self, key: str) -> str:
        value = self.ast["meta"].get(key)
        return plain_text(value) if value is not None else ""


def read_text(path: Path, role: str = "input", option: str = "--input FILE") -> str:
    """The file's text; `role` and `option` name it and its option in the error messages."""
    if path.is_dir():
        raise ExportError(f"The {role} {path} is a folder, not a file (pass {option}).")
    if not path.is_file():
        raise ExportError(f"The {role} file {path} does not exist (pass {option}).")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ExportError(
            f"{path} is not UTF-8 text: byte 0x{data[error.start]:02x} at line {line} "
            "cannot be decoded; save the file as UTF-8."
        ) from error


def load(path: Path, role: str = "input", option: str = "--input FILE") -> Document:
    """Read a document and check that its images exist; its metadata as written."""
    text = read_text(path, role, option)
    import pypandoc  # noqa: PLC0415 - heavy, and only in the summary venv

    try:
        ast: Ast = json.loads(pypandoc.convert_text(text, "json", format=READER))
    except RuntimeError as error:
        raise ExportError(f"pandoc could not read {path}: {one_line(error)}") from error
    document = Document(path.resolve(), ast)
    document.images = find_images(document)
    return document


def parse(path: Path) -> Document:
    """Read a document, check that its images exist, and fill missing title/author/date."""
    document = load(path)
    fill_metadata(document)
    return document


def walk(node: Any) -> list[Ast]:
    """Every element (a dict with a pandoc type `t`) under `node`, depth first."""
    found: list[Ast] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "t" in item:
                found.append(item)
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def plain_text(node: Any) -> str:
    """The text of inlines or metadata, formatting dropped."""
    parts: list[str] = []
    for element in walk(node):
        kind = element["t"]
        if kind in ("Str", "MetaString", "Code"):
            parts.append(element["c"] if kind != "Code" else element["c"][1])
        elif kind in ("Space", "SoftBreak", "LineBreak"):
            parts.append(" ")
    return "".join(parts).strip()


def find_images(document: Document) -> list[Path]:
    images: list[Path] = []
    missing: list[str] = []
    for element in walk(document.ast["blocks"]):
        if element["t"] != "Image":
            continue
        target = element["c"][2][0]
        # A one-letter scheme is a Windows drive ("C:/..."); anything longer is a URL.
        if len(urlsplit(target).scheme) > 1:
            raise ExportError(
                f"Image {target} in {document.path.name} is not a local file; save it next to "
                "the document and refer to it by a relative path."
            )
        resolved = (document.path.parent / unquote(target)).resolve()
        if resolved.is_file():
            images.append(resolved)
        else:
            missing.append(target)
    if missing:
        raise ExportError(
            f"{document.path.name} refers to missing image(s) {', '.join(missing)} "
            f"(paths are relative to {document.path.parent})."
        )
    return images


def git_metadata(path: Path) -> tuple[str, str]:
    """(author, date) of the last commit that touched `path`; empty strings outside git."""
    git = shutil.which("git")
    if git is None:
        return "", ""
    result = subprocess.run(  # nosec B603 - fixed arguments, no shell
        [git, "log", "-1", "--format=%an%x00%cs", "--", path.name],
        cwd=path.parent, capture_output=True, text=True, encoding="utf-8",
    )  # fmt: skip
    author, _, date = result.stdout.strip().partition("\0")
    return (author, date) if result.returncode == 0 else ("", "")


def title_from_heading(document: Document) -> Ast | None:
    """Take the first level-1 heading out of the body and return its text as metadata."""
    blocks = document.ast["blocks"]
    for index, block in enumerate(blocks):
        if block["t"] == "Header" and block["c"][0] == 1:
            del blocks[index]
            return {"t": "MetaInlines", "c": block["c"][2]}
    return None


def fill_metadata(document: Document) -> None:
    """Title, author and date: the front matter's, else the first level-1 heading's (title) or
    git's (author, date), else the file name and today."""
    meta = document.ast["meta"]
    if "title" not in meta and (heading := title_from_heading(document)) is not None:
        meta["title"] = heading
    author, date = ("", "") if "author" in meta and "date" in meta else git_metadata(document.path)
    defaults = {
        "title": document.path.stem.replace("_", " ").capitalize(),
        "author": author,
        "date": date or datetime.date.today().isoformat(),
    }
    for key, value in defaults.items():
        if key not in meta and value:
            meta[key] = {"t": "MetaInlines", "c": [{"t": "Str", "c": value}]}


def stage_images(document: Document, folder: Path) -> None:
    """Copy the images into `folder` and point the document at the copies by file name.

    typst only reads files under one root folder, so both renderers get a flat folder with
    the document's images in it, wherever they lived relative to the document.
    """
    images = iter(document.images)
    for index, element in enumerate(e for e in walk(document.ast["blocks"]) if e["t"] == "Image"):
        source = next(images)
        name = f"image-{index}{source.suffix.lower()}"
        shutil.copyfile(source, folder / name)
        element["c"][2][0] = name
