"""Per-layer gradient norms of a deep MLP at initialization: the figure and table of the summary.

`python figures/gradient_norms.py` writes `figures/gradient_norms.svg` (plain text, so it can
live in git) and prints the Markdown table that SESSION_SUMMARY.md quotes. The numbers come from
one backward pass of a 10-layer MLP on synthetic data, seed 0: sigmoid and ReLU with PyTorch's
default initialization, and ReLU with He (Kaiming) initialization.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

DEPTH, WIDTH, FEATURES, BATCH, SEED = 10, 64, 16, 256, 0
# name -> (activation, He initialization?)
VARIANTS = {"sigmoid": (nn.Sigmoid, False), "relu": (nn.ReLU, False), "relu+He": (nn.ReLU, True)}
COLOURS = {"sigmoid": "#c0392b", "relu": "#1f4e79", "relu+He": "#27ae60"}
SVG = Path(__file__).with_suffix(".svg")


def gradient_norms(activation: type[nn.Module], he_init: bool) -> list[float]:
    """L2 norm of each linear layer's weight gradient, input layer first."""
    torch.manual_seed(SEED)
    inputs = torch.randn(BATCH, FEATURES)
    labels = (inputs[:, :2].sum(dim=1) > 0).float().unsqueeze(1)
    layers: list[nn.Module] = []
    width = FEATURES
    for _ in range(DEPTH - 1):
        layers += [nn.Linear(width, WIDTH), activation()]
        width = WIDTH
    layers.append(nn.Linear(width, 1))
    model = nn.Sequential(*layers)
    if he_init:
        for module in model:
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
    nn.functional.binary_cross_entropy_with_logits(model(inputs), labels).backward()
    return [
        float(f"{m.weight.grad.norm().item():.3g}")
        for m in model
        if isinstance(m, nn.Linear) and m.weight.grad is not None
    ]


def svg(norms: dict[str, list[float]]) -> str:
    """A log-scale line chart, one line per activation, drawn as plain SVG."""
    width, height, left, right, top, bottom = 560, 300, 64, 110, 36, 46
    low = math.floor(math.log10(min(min(v) for v in norms.values())))
    high = math.ceil(math.log10(max(max(v) for v in norms.values())))

    def x(layer: int) -> float:
        return left + (width - left - right) * layer / (DEPTH - 1)

    def y(value: float) -> float:
        return top + (height - top - bottom) * (high - math.log10(value)) / (high - low)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2 - 40}" y="20" text-anchor="middle" font-size="13" '
        'font-weight="bold">Gradient norm per layer at initialization</text>',
    ]
    for exponent in range(low, high + 1):
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(10.0**exponent):.1f}" '
            f'y2="{y(10.0**exponent):.1f}" stroke="#dddddd"/>'
            f'<text x="{left - 6}" y="{y(10.0**exponent) + 4:.1f}" text-anchor="end">'
            f"1e{exponent}</text>"
        )
    for layer in range(DEPTH):
        out.append(
            f'<text x="{x(layer):.1f}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{layer + 1}</text>"
        )
    out.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle">'
        "layer (1 = input)</text>"
    )
    for row, (name, values) in enumerate(norms.items()):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        colour = COLOURS[name]
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{colour}"/>'
                for p in points.split()]  # fmt: skip
        legend_y = top + 10 + 18 * row
        out.append(
            f'<line x1="{width - right + 12}" x2="{width - right + 32}" y1="{legend_y}" '
            f'y2="{legend_y}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{width - right + 38}" y="{legend_y + 4}">{name}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def table(norms: dict[str, list[float]]) -> str:
    names = list(norms)
    lines = [
        "| layer | " + " | ".join(f"{n} ‖∇W‖" for n in names) + " |",
        "|------:|" + "|".join("-" * 12 + ":" for _ in names) + "|",
    ]
    for layer in range(DEPTH):
        lines.append(
            f"| {layer + 1} | " + " | ".join(f"{norms[n][layer]:.3g}" for n in names) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    norms = {name: gradient_norms(*variant) for name, variant in VARIANTS.items()}
    SVG.write_text(svg(norms), encoding="utf-8", newline="\n")
    print(table(norms))
    for name, values in norms.items():
        print(f"{name}: first/last layer ratio {values[0] / values[-1]:.3g}")


if __name__ == "__main__":
    main()
