"""The report's figures, old against new, from the rows `dvc plots diff` read.

Each train stage's plots file gives three: the loss over training, each layer's gradient norm
at the last logged step, and the first-to-last gradient-norm ratio over training. Each is saved
as PNG (what GitHub and Word show) and SVG (vector, for the PDF), drawn without pyplot so no
window can open.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib import rc_context
from matplotlib.figure import Figure

RATIO = "grad_norm/first_to_last"
NORM = "grad_norm/"
# Old is the reference, so it is the quieter line.
STYLE = {"old": {"color": "0.55", "linestyle": "--"}, "new": {"color": "tab:blue"}}
FORMATS = ("png", "svg")


@dataclass(frozen=True)
class Drawn:
    """One figure: its name (file stem) and what it shows, for the report's caption."""

    name: str
    caption: str


def series(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by activation, each list in step order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row.get("activation", "")), []).append(row)
    return {k: sorted(v, key=lambda r: float(r["step"])) for k, v in grouped.items()}


def layers(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Layer names of the grad_norm columns, in the order the rows give them (input first)."""
    names = dict.fromkeys(k for row in rows for k in row if k.startswith(NORM) and k != RATIO)
    return [name.removeprefix(NORM) for name in names]


def _label(side: str, activation: str) -> str:
    return f"{side}: {activation}" if activation else side


def _line(ax: Any, sides: dict[str, list[dict[str, Any]]], key: str) -> None:
    for side in ("old", "new"):
        for activation, rows in series(sides.get(side, [])).items():
            points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, label=_label(side, activation), **STYLE[side])


def loss(ax: Any, sides: dict[str, list[dict[str, Any]]]) -> None:
    _line(ax, sides, "loss")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (logging-interval mean)")


def ratio(ax: Any, sides: dict[str, list[dict[str, Any]]]) -> None:
    _line(ax, sides, RATIO)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("first / last layer gradient norm")


def norms(ax: Any, sides: dict[str, list[dict[str, Any]]]) -> None:
    names = layers([*sides.get("old", []), *sides.get("new", [])])
    for side in ("old", "new"):
        for activation, rows in series(sides.get(side, [])).items():
            last = rows[-1]
            points = [(i, last.get(NORM + n)) for i, n in enumerate(names)]
            points = [(i, v) for i, v in points if v is not None and v > 0]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=f"{_label(side, activation)} (step "
                        f"{last['step']})", **STYLE[side])  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_xlabel("layer (input side first)")
    ax.set_ylabel("gradient norm at the last logged step")


KINDS = {  # file name part: (how it is drawn, title, caption)
    "loss": (loss, "training loss", "Training loss, old (dashed) against new"),
    "grad-norms": (norms, "gradient norm per layer",
                   "Per-layer gradient norm at the last logged step, old against new"),
    "ratio": (ratio, "first-to-last ratio",
              "First-to-last layer gradient-norm ratio over training, old against new"),
}  # fmt: skip


def draw(stem: str, sides: dict[str, list[dict[str, Any]]], out: Path) -> list[Drawn]:
    """The three figures of one plots file, as out/<stem>-<kind>.png and .svg."""
    drawn = []
    for kind, (plot, title, caption) in KINDS.items():
        fig = Figure(figsize=(6.4, 3.6), dpi=100)
        ax = fig.subplots()
        plot(ax, sides)
        ax.set_title(f"{stem}: {title}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"{stem}-{kind}"
        # Same rows, same bytes: no date in the SVG, fixed ids.
        with rc_context({"svg.hashsalt": name}):
            for fmt in FORMATS:
                metadata = {"Date": None} if fmt == "svg" else {"Software": None}
                fig.savefig(out / f"{name}.{fmt}", format=fmt, metadata=metadata)
        drawn.append(Drawn(name, f"{stem}: {caption}"))
    return drawn
