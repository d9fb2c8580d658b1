"""Gradient statistics of a model: per-layer norms, histograms and the health check.

Nothing here talks to W&B's run; `tracking` decides when these are computed and logged.
"""

from __future__ import annotations

import math

import numpy
import torch
import wandb
from torch import nn

from gradient_lab.errors import TrackingError

HISTOGRAM_BINS = 64  # as wandb.watch draws them
# First layer's gradient norm over the last layer's: below VANISHING the input layers barely
# learn (the 100x the demo teaches), above EXPLODING they swamp the rest.
VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2


class LayerGradNorms:
    """Per-layer gradient norms of a model, all computed on its device in a few kernel calls.

    A layer is a module that owns parameters directly (a Linear, a norm layer), in the order
    the model registers them, so the first layer is the input side and the last the output.
    """

    def __init__(self, model: nn.Module) -> None:
        self.names: list[str] = []
        self.params: list[torch.Tensor] = []
        self.param_names: list[str] = []  # as model.named_parameters() calls them
        owners: list[int] = []
        for name, module in model.named_modules():
            own = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]
            if own:
                owners += [len(self.names)] * len(own)
                self.names.append(name or type(module).__name__)
                self.params += [p for _, p in own]
                self.param_names += [f"{name}.{n}" if name else n for n, _ in own]
        if not self.names:
            raise TrackingError("The model has no trainable parameters to track.")
        self._owners = owners

    def compute(self) -> torch.Tensor:
        """Norms per layer as one tensor on the model's device; no host synchronisation."""
        present = [i for i, p in enumerate(self.params) if p.grad is not None]
        grads = [self.params[i].grad for i in present]
        device = self.params[0].device
        if not grads:
            return torch.zeros(len(self.names), device=device)
        squares = torch.stack(torch._foreach_norm(grads)).float() ** 2  # type: ignore[arg-type]
        index = torch.tensor([self._owners[i] for i in present], device=device)
        sums = torch.zeros(len(self.names), device=device).index_add_(0, index, squares)
        return sums.sqrt()

    def histograms(self, bins: int = HISTOGRAM_BINS) -> dict[str, wandb.Histogram]:
        """`gradients/<parameter>` histograms of the gradients, drawn as `wandb.watch` draws
        them (over min..max, non-finite values left out, one bin for a constant tensor)."""
        named = [(n, p.grad.detach().flatten().float())
                 for n, p in zip(self.param_names, self.params, strict=True)
                 if p.grad is not None]  # fmt: skip
        if not named:
            return {}
        # Every range in one transfer; the counts in a second.
        ranges = torch.stack([torch.stack(torch.aminmax(g)) for _, g in named]).tolist()
        spans = [(name, *span) for (name, grad), (low, high) in zip(named, ranges, strict=True)
                 if (span := _finite_span(grad, low, high))]  # fmt: skip
        if not spans:
            return {}
        counts = torch.stack([g.histc(bins, lo, hi) for _, g, lo, hi in spans]).tolist()
        result = {}
        for (name, grad, low, high), count in zip(spans, counts, strict=True):
            if low == high:
                histogram = (numpy.array([float(grad.numel())]), numpy.array([low, high]))
            else:
                histogram = (numpy.array(count), numpy.linspace(low, high, bins + 1))
            result[f"gradients/{name}"] = wandb.Histogram(np_histogram=histogram)
        return result


def _finite_span(
    grad: torch.Tensor, low: float, high: float
) -> tuple[torch.Tensor, float, float] | None:
    """The gradient without inf and nan, and its range; None when nothing finite is left."""
    if math.isfinite(low) and math.isfinite(high):
        return grad, low, high
    finite = grad[grad.isfinite()]
    if not finite.numel():
        return None
    low, high = torch.stack(torch.aminmax(finite)).tolist()
    return finite, low, high


def gradient_health(ratio: float) -> str:
    """ "vanishing", "exploding" or "healthy" for a first-to-last layer gradient-norm ratio."""
    if ratio < VANISHING_RATIO:
        return "vanishing"
    if ratio > EXPLODING_RATIO:
        return "exploding"
    return "healthy"
