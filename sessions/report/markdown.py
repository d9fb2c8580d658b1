"""The report as Markdown: what was compared, the parameters that changed, the metrics table
(old, new, delta, and the gradient verdict where a first-to-last ratio is measured), the figures.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath
from typing import Any

from gradient_lab.health import gradient_health
from sessions.report.compare import Comparison
from sessions.report.figures import Drawn

TITLE = "Run report"
RATIO_METRIC = "first_to_last"


def verdict(value: Any) -> str:
    """The gradient-health word for a first-to-last ratio, as the tracker's check says it."""
    return gradient_health(float(value)) if isinstance(value, int | float) else ""


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def delta(old: Any, new: Any) -> str:
    if not (isinstance(old, int | float) and isinstance(new, int | float)):
        return "-"
    if old == new:
        return "0"
    change = f"{new - old:+.3g}"
    return f"{change} ({(new - old) / abs(old):+.0%})" if old else change


def metric_name(key: str) -> str:
    """`metrics/sigmoid_deep.json:sigmoid.loss` -> `sigmoid_deep: sigmoid.loss`."""
    path, _, name = key.partition(":")
    return f"{PurePosixPath(path).stem}: {name}"


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(comparison: Comparison, figures: dict[str, list[Drawn]]) -> str:
    c, base = comparison, comparison.base
    lines = [
        f"# {TITLE}: the working tree against {base.name}",
        "",
        f"Compared with **{cell(base.name)}** (`{base.short}`, {cell(base.subject)!r}) by DVC's "
        "`params diff`, `metrics diff` and `plots diff`.",
        "",
    ]
    if c.retrained:
        lines += [
            f"Retrained with `dvc repro` first, since their code, data or parameters changed: "
            f"{', '.join(f'`{s}`' for s in c.retrained)} (dvc.lock, metrics/ and plots/ updated).",
            "",
        ]
    else:
        lines += ["Nothing retrained: dvc.lock says every train stage is up to date.", ""]
    if not c.changed:
        lines += [
            f"**No change**: no parameter, metric or per-step value differs from {base.name}.",
            "",
        ]
    if c.params:
        lines += ["## Parameters that changed", "", "| parameter | old | new |", "|---|---|---|"]
        lines += [
            f"| `{key}` | {cell(number(v.get('old')))} | {cell(number(v.get('new')))} |"
            for key, v in c.params.items()
        ]
        lines.append("")
    lines += metrics_table(c)
    for path, drawn in figures.items():
        lines += [f"## Figures: {path}", ""]
        lines += [f"![{d.caption}](figures/{d.name}.png)\n" for d in drawn]
    return "\n".join(lines).rstrip("\n") + "\n"


def metrics_table(c: Comparison) -> list[str]:
    lines = [
        "## Metrics",
        "",
        "| metric | old | new | delta | gradients |",
        "|---|---|---|---|---|",
    ]
    for key, v in c.metrics.items():
        old, new = v.get("old"), v.get("new")
        health = ""
        if key.endswith(RATIO_METRIC):
            before, after = verdict(old), verdict(new)
            health = after if before == after else f"**{before or '-'} → {after or '-'} (changed)**"
        name = metric_name(key)
        if old != new:
            name = f"**{name}**"
        lines.append(f"| {cell(name)} | {number(old)} | {number(new)} | {delta(old, new)} "
                     f"| {health} |")  # fmt: skip
    lines.append("")
    return lines


def figure_paths(report: Path) -> list[Path]:
    """The figure files a report refers to (PNG, and the SVG twin beside each)."""
    text = report.read_text(encoding="utf-8")
    names = [part.split(")")[0] for part in text.split("](figures/")[1:]]
    folder = report.parent / "figures"
    return [folder / n for n in names] + [(folder / n).with_suffix(".svg") for n in names]
