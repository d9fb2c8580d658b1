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


class LayerNorms(NamedTuple):
    """Gradient norms of the layers that have a gradient, input side first."""

    names: list[str]
    norms: torch.Tensor  # on the model's device, one per name
    # Positions in `names` of the first and last layer the health check compares; None when
    # fewer than two layers that sit at one depth each have a gradient.
    ends: tuple[int, int] | None = None


class LayerGradNorms:
    """Per-layer gradient norms of a model, all computed on its device in a few kernel calls.

    A layer is a module that owns parameters directly (a Linear, a norm layer), in the order
    the model registers them, so the first layer is the input side and the last the output.
    Names are the model's own: DDP, DataParallel and torch.compile wrappers are seen through.
    A tensor shared by several modules (tied input and output embeddings, a reused block) is
    measured once, under the name `named_parameters()` gives it first; it sits at more than one
    depth, so the first-to-last check leaves its layer out and compares the first and last
    layers whose parameters are their own.
    Every parameter is watched; at each computation only those that take part in training
    (`requires_grad`) and have a gradient count, so a layer frozen mid-run drops out and one
    unfrozen later comes in, and a layer without a gradient is never reported as norm 0.
    """

    def __init__(self, model: nn.Module) -> None:
        self.names: list[str] = []
        self.params: list[torch.Tensor] = []
        self.param_names: list[str] = []  # as model.named_parameters() calls them
        owners: list[int] = []
        seen: dict[int, int] = {}  # id of a tensor: the layer that measures it
        self.shared: set[int] = set()  # layers with a tensor another module uses too
        for name, module in distributed.unwrap(model).named_modules():
            own = []
            for n, p in module.named_parameters(recurse=False):
                if id(p) in seen:
                    self.shared.add(seen[id(p)])
                else:
                    own.append((n, p))
            if own:
                for _, p in own:
                    seen[id(p)] = len(self.names)
                owners += [len(self.names)] * len(own)
                self.names.append(distributed.clean_name(name) or type(module).__name__)
                self.params += [p for _, p in own]
                self.param_names += [distributed.clean_name(f"{name}.{n}" if name else n)
                                     for n, _ in own]  # fmt: skip
        if not self.names:
            raise TrackingError("The model has no parameters to track.")
        self._owners = owners
        self._index: tuple[tuple[int, ...], torch.Tensor, list[str], tuple[int, int] | None] | None
        self._index = None

    def present(self) -> list[int]:
        """Indices of the parameters that are trained and have a gradient now."""
        return [i for i, p in enumerate(self.params) if p.grad is not None and p.requires_grad]

    def _layers(self, present: list[int]) -> tuple[torch.Tensor, list[str], tuple[int, int] | None]:
        """For these parameters: each one's slot among their layers, the layers' names, and
        the slots of the first and last layers at one depth each (cached per trained set)."""
        key = tuple(present)
        if self._index is None or self._index[0] != key:  # the trained set changed
            device = self.params[0].device
            layers = sorted({self._owners[i] for i in present})
            slot = {layer: n for n, layer in enumerate(layers)}
            index = torch.tensor([slot[self._owners[i]] for i in present], device=device)
            single = [slot[layer] for layer in layers if layer not in self.shared]
            ends = (single[0], single[-1]) if len(single) > 1 else None
            self._index = (key, index, [self.names[layer] for layer in layers], ends)
        _, index, names, ends = self._index
        return index, names, ends

    def _per_layer(self, present: list[int], values: list[torch.Tensor]) -> torch.Tensor:
        """Per-parameter norms folded into per-layer norms: sqrt of the sum of squares."""
        index, names, _ = self._layers(present)
        squares = torch.stack(values).float() ** 2
        sums = torch.zeros(len(names), device=squares.device).index_add_(0, index, squares)
        return sums.sqrt()

    def nothing(self) -> LayerNorms:
        """No layer: what `compute` gives when no gradient exists."""
        return LayerNorms([], torch.zeros(0, device=self.params[0].device))

    def compute(self) -> LayerNorms:
        """Norms of the layers that have a gradient, on the model's device; no host sync."""
        present = self.present()
        if not present:
            return self.nothing()
        grads = [self.params[i].grad for i in present]
        norms = self._per_layer(present, list(torch._foreach_norm(grads)))  # type: ignore[arg-type]
        _, names, ends = self._layers(present)
        return LayerNorms(list(names), norms, ends)

    def nonfinite(self) -> dict[str, int]:
        """Per layer, how many gradient values are NaN or infinite (layers with any)."""
        present = self.present()
        if not present:
            return {}
        index, names, _ = self._layers(present)
        counts = torch.stack([(~g.isfinite()).sum() for i in present
                              if (g := self.params[i].grad) is not None])  # fmt: skip
        per_layer = torch.zeros(len(names), dtype=counts.dtype, device=counts.device)
        per_layer.index_add_(0, index, counts)
        return {name: n for name, n in zip(names, per_layer.tolist(), strict=True) if n}

    def snapshot(self) -> tuple[list[int], list[torch.Tensor]]:
        """A copy of the trained weights, to measure the optimizer's next update against."""
        present = self.present()
        return present, [self.params[i].detach().clone() for i in present]

    def update_ratios(self, before: tuple[list[int], list[torch.Tensor]]) -> LayerNorms:
        """Per layer, the size of the update since `before` over the size of the weights
        (|w_now - w_before| / |w_before|), on the device; no host sync."""
        present, weights = before
        if not present:
            return self.nothing()
        now = [self.params[i].detach() for i in present]
        steps = torch._foreach_sub(now, weights)
        updates = self._per_layer(present, list(torch._foreach_norm(steps)))
        sizes = self._per_layer(present, list(torch._foreach_norm(weights)))
        _, names, _ = self._layers(present)
        return LayerNorms(list(names), updates / sizes)

    def histograms(self, bins: int = HISTOGRAM_BINS) -> dict[str, wandb.Histogram]:
        """`gradients/<parameter>` histograms of the gradients, drawn as `wandb.watch` draws
        them (over min..max, non-finite values left out, one bin for a constant tensor)."""
        named = [
            (self.param_names[i], grad.detach().flatten().float())
            for i in self.present()
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
