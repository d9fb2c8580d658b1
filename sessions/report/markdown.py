"""The report as Markdown: what was compared, the parameters that changed, the metrics table
(old, new, delta, and the gradient verdict where a first-to-last ratio is measured), the figures:
as images (REPORT.md), or for GitHub's comment and job summary as lines naming the artifact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from gradient_lab.health import gradient_health
from sessions.report.compare import Comparison, same
from sessions.report.figures import Drawn

TITLE = "Run report"
# The artifact the CI job uploads build/report/ as: where the figures are for GitHub's readers.
ARTIFACT = "report"
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
    if same(old, new):
        return "≈0"  # the same result, computed on another CPU (REL_TOLERANCE)
    change = f"{new - old:+.3g}"
    if not old:
        return change
    # A ratio that moves by orders of magnitude reads better as a factor than as a percentage.
    share = (new - old) / abs(old)
    return f"{change} ({share:+.0%})" if abs(share) < 10 else f"{change} ({new / old:.2g}x)"


def metric_rows(metrics: dict[str, dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """(name, old, new) per metric, `stage: activation.metric` from DVC's
    `metrics/<stage>.json:<activation>.<metric>` keys. A train stage records one activation; when
    its parameters change it (sigmoid to relu), DVC sees two sets of keys that each exist on
    one side only: those are paired, as `stage: metric (sigmoid → relu)`."""
    by_file: dict[str, dict[str, dict[str, Any]]] = {}
    for key, values in metrics.items():
        path, _, name = key.partition(":")
        by_file.setdefault(PurePosixPath(path).stem, {})[name] = values
    rows = []
    for stage, named in by_file.items():
        groups = {side: {n.partition(".")[0] for n, v in named.items() if v.get(side) is not None}
                  for side in ("old", "new")}  # fmt: skip
        olds, news = groups["old"], groups["new"]
        if len(olds) == len(news) == 1 and olds != news:
            before, after = next(iter(olds)), next(iter(news))
            fields = dict.fromkeys(n.partition(".")[2] for n in named)
            for f in fields:
                rows.append((f"{stage}: {f} ({before} → {after})",
                             named.get(f"{before}.{f}", {}).get("old"),
                             named.get(f"{after}.{f}", {}).get("new")))  # fmt: skip
        else:
            rows += [(f"{stage}: {n}", v.get("old"), v.get("new")) for n, v in named.items()]
    return rows


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def image(drawn: Drawn) -> str:
    """A figure as REPORT.md shows it: the PNG beside it."""
    return f"![{drawn.caption}](figures/{drawn.name}.png)"


def in_artifact(run_url: str | None) -> Callable[[Drawn], str]:
    """A figure as a line naming it and the run's `report` artifact that holds it (linked to the
    run's page when known): GitHub shows no image beside a comment or a job summary."""
    artifact = f"[`{ARTIFACT}` artifact]({run_url})" if run_url else f"`{ARTIFACT}` artifact"
    return lambda d: f"Figure “{d.caption}” (`figures/{d.name}.png`): in this run's {artifact}."


def render(
    comparison: Comparison,
    figures: dict[str, list[Drawn]],
    *,
    figure: Callable[[Drawn], str] = image,
) -> str:
    """The report; `figure` writes each figure's line (an image, or `in_artifact`'s)."""
    c, base = comparison, comparison.base
    lines = [
        f"# {TITLE}: the working tree against {base.name}",
        "",
        f"Compared with **{cell(base.name)}** (`{base.short}`, “{cell(base.subject)}”) by DVC's "
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
    for note in c.notes:
        lines += [f"Note: {note}", ""]
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
        lines += [f"{figure(d)}\n" for d in drawn]
    return "\n".join(lines).rstrip("\n") + "\n"


def metrics_table(c: Comparison) -> list[str]:
    lines = [
        "## Metrics",
        "",
        "| metric | old | new | delta | gradients |",
        "|---|---|---|---|---|",
    ]
    for name, old, new in metric_rows(c.metrics):
        health = ""
        if name.partition(" (")[0].endswith(RATIO_METRIC):
            before, after = verdict(old), verdict(new)
            health = after if before == after else f"**{before or '-'} → {after or '-'}** (changed)"
        shown = name if same(old, new) else f"**{name}**"
        lines.append(f"| {cell(shown)} | {number(old)} | {number(new)} | {delta(old, new)} "
                     f"| {health} |")  # fmt: skip
    lines.append("")
    return lines
