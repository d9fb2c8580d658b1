"""Gradient statistics of a model: per-layer norms, histograms and the health check.

Nothing here talks to W&B's run; `tracking` decides when these are computed and logged.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy
import torch
import wandb
from torch import nn

from gradient_lab import distributed
from gradient_lab.errors import TrackingError

HISTOGRAM_BINS = 64  # as wandb.watch draws them
# First layer's gradient norm over the last layer's: below VANISHING the input layers barely
# learn (the 100x the demo teaches), above EXPLODING they swamp the rest.
VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2


class LayerNorms(NamedTuple):
    """Gradient norms of the layers that have a gradient, input side first."""

    names: list[str]
    norms: torch.Tensor  # on the model's device, one per name


class LayerGradNorms:
    """Per-layer gradient norms of a model, all computed on its device in a few kernel calls.

    A layer is a module that owns parameters directly (a Linear, a norm layer), in the order
    the model registers them, so the first layer is the input side and the last the output.
    Names are the model's own: DDP, DataParallel and torch.compile wrappers are seen through.
    Every parameter is watched; at each computation only those that take part in training
    (`requires_grad`) and have a gradient count, so a layer frozen mid-run drops out and one
    unfrozen later comes in, and a layer without a gradient is never reported as norm 0.
    """

    def __init__(self, model: nn.Module) -> None:
        self.names: list[str] = []
        self.params: list[torch.Tensor] = []
        self.param_names: list[str] = []  # as model.named_parameters() calls them
        owners: list[int] = []
        for name, module in distributed.unwrap(model).named_modules():
            own = list(module.named_parameters(recurse=False))
            if own:
                owners += [len(self.names)] * len(own)
                self.names.append(distributed.clean_name(name) or type(module).__name__)
                self.params += [p for _, p in own]
                self.param_names += [distributed.clean_name(f"{name}.{n}" if name else n)
                                     for n, _ in own]  # fmt: skip
        if not self.names:
            raise TrackingError("The model has no parameters to track.")
        self._owners = owners
        self._index: tuple[tuple[int, ...], torch.Tensor, list[str]] | None = None

    def _present(self) -> list[int]:
        """Indices of the parameters that are trained and have a gradient now."""
        return [i for i, p in enumerate(self.params) if p.grad is not None and p.requires_grad]

    def compute(self) -> LayerNorms:
        """Norms of the layers that have a gradient, on the model's device; no host sync."""
        present = self._present()
        device = self.params[0].device
        if not present:
            return LayerNorms([], torch.zeros(0, device=device))
        key = tuple(present)
        if self._index is None or self._index[0] != key:  # the trained set changed
            layers = sorted({self._owners[i] for i in present})
            slot = {layer: n for n, layer in enumerate(layers)}
            index = torch.tensor([slot[self._owners[i]] for i in present], device=device)
            self._index = (key, index, [self.names[layer] for layer in layers])
        _, index, names = self._index
        grads = [self.params[i].grad for i in present]
        squares = torch.stack(torch._foreach_norm(grads)).float() ** 2  # type: ignore[arg-type]
        sums = torch.zeros(len(names), device=device).index_add_(0, index, squares)
        return LayerNorms(list(names), sums.sqrt())

    def histograms(self, bins: int = HISTOGRAM_BINS) -> dict[str, wandb.Histogram]:
        """`gradients/<parameter>` histograms of the gradients, drawn as `wandb.watch` draws
        them (over min..max, non-finite values left out, one bin for a constant tensor)."""
        named = [
            (self.param_names[i], grad.detach().flatten().float())
            for i in self._present()
            if (grad := self.params[i].grad) is not None
        ]
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
