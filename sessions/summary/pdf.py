"""The PDF: pandoc writes typst markup with our template, the `typst` package compiles it.

No LaTeX and no system libraries: pandoc comes from pypandoc_binary and typst from its wheel,
both on Linux, Windows and macOS. Text fonts are typst's own; emoji use the system's font (or
one in a folder named by TYPST_FONT_PATHS, as for the typst command line).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessions.summary import ExportError, one_line

TEMPLATE = Path(__file__).with_name("template.typ")
RASTER_PPI = 200  # SVGs drawn as PNG for Word
EMOJI_FONT = "Noto Color Emoji"
EMOJI_FONT_PACKAGE = "fonts-noto-color-emoji"  # Debian and Ubuntu
# Pictographs (U+1F000-U+1FAFF) and any character asked for in emoji style (U+FE0F after it).
EMOJI = re.compile("[\U0001f000-\U0001faff]|.\ufe0f")


@dataclass(frozen=True)
class Fonts:
    """Where typst looks for fonts: its own, the system's unless ignored, and extra folders.

    Read from the environment variables that the typst command line reads too.
    """

    paths: tuple[str, ...] = ()
    system: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Fonts:
        paths = tuple(p for p in env.get("TYPST_FONT_PATHS", "").split(os.pathsep) if p)
        ignore = env.get("TYPST_IGNORE_SYSTEM_FONTS", "").lower() in ("1", "true", "yes")
        return cls(paths, system=not ignore)

    def compile_options(self) -> dict[str, Any]:
        return {"font_paths": list(self.paths), "ignore_system_fonts": not self.system}

    def families(self) -> list[str]:
        import typst  # noqa: PLC0415 - only in the summary venv

        found = typst.Fonts(include_system_fonts=self.system, font_paths=list(self.paths))
        return list(found.families())


def emoji_warning(name: str, text: str, fonts: Fonts) -> str | None:
    """One sentence when `text` holds emoji that no font typst can find will draw."""
    if not EMOJI.search(text) or any("emoji" in f.lower() for f in fonts.families()):
        return None
    return (
        f"{name} holds emoji but no emoji font was found, so the PDF shows them as boxes; "
        f"install the font {EMOJI_FONT} (Debian and Ubuntu: package {EMOJI_FONT_PACKAGE})."
    )


def typst_string(text: str) -> str:
    """`text` as the inside of a typst string literal."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render(
    document_json: str,
    resources: Path,
    target: Path,
    *,
    toc: bool,
    title: str,
    author: str,
    fonts: Fonts | None = None,
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
        typst.compile(
            str(main), output=str(target), root=str(resources), format="pdf",
            **(fonts or Fonts()).compile_options(),
        )  # fmt: skip
    except typst.TypstError as error:
        raise ExportError(f"typst could not compile the PDF: {one_line(error)}") from error


def rasterize(svg: Path, png: Path, ppi: int = RASTER_PPI) -> None:
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
