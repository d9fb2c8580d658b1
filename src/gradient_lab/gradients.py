"""The gradient monitor: per-layer gradient norms, update ratios and histograms of the tracked
models, measured where an optimizer applies them. Torch only: it returns numbers and tensors,
and `tracking` decides what reaches W&B.

A model's gradients are measured in the step pre-hook of the optimizer that owns its parameters
(torch's global optimizer hooks), so the norms are the ones applied: after clipping, after a
GradScaler's unscale (a step it skips is not measured), once per accumulated step, for any number
of optimizers. A model that no optimizer steps (a hand-written update) is measured when the
tracker's clock ticks. Only the steps the tracker will log are measured; the rest cost one
comparison per optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook as post_hook
from torch.optim.optimizer import register_optimizer_step_pre_hook as pre_hook

from gradient_lab import distributed
from gradient_lab.errors import TrackingError

HISTOGRAM_BINS = 64  # as wandb.watch draws them
# Layers whose gradient is sparse by nature (only the rows of the tokens seen): never the
# "first layer" of a depth comparison.
SPARSE_BY_NATURE = (nn.Embedding, nn.EmbeddingBag)

Histogram = tuple[numpy.ndarray, numpy.ndarray]  # counts, bin edges (numpy.histogram's shape)


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
    depth, so the first-to-last check leaves its layer out, as it does embeddings, and compares
    the first and last layers whose parameters are their own.
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
        self.uncompared: set[int] = set()  # layers the first-to-last check leaves out
        for name, module in distributed.unwrap(model).named_modules():
            own = []
            for n, p in module.named_parameters(recurse=False):
                if id(p) in seen:
                    self.uncompared.add(seen[id(p)])
                else:
                    own.append((n, p))
            if own:
                if isinstance(module, SPARSE_BY_NATURE):
                    self.uncompared.add(len(self.names))
                for _, p in own:
                    seen[id(p)] = len(self.names)
                owners += [len(self.names)] * len(own)
                self.names.append(distributed.clean_name(name) or type(module).__name__)
                self.params += [p for _, p in own]
                self.param_names += [
                    distributed.clean_name(f"{name}.{n}" if name else n) for n, _ in own
                ]
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
            single = [slot[layer] for layer in layers if layer not in self.uncompared]
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

    def compute(self, present: list[int] | None = None) -> LayerNorms:
        """Norms of the layers that have a gradient, on the model's device; no host sync."""
        present = self.present() if present is None else present
        if not present:
            return LayerNorms([], torch.zeros(0, device=self.params[0].device))
        grads = [self.params[i].grad for i in present]
        norms = self._per_layer(present, list(torch._foreach_norm(grads)))  # type: ignore[arg-type]
        _, names, ends = self._layers(present)
        return LayerNorms(list(names), norms, ends)

    def nonfinite(self, present: list[int], grads: list[torch.Tensor]) -> dict[str, int]:
        """Per layer, how many of these gradient values are NaN or infinite (layers with any)."""
        index, names, _ = self._layers(present)
        counts = torch.stack([(~g.isfinite()).sum() for g in grads])
        per_layer = torch.zeros(len(names), dtype=counts.dtype, device=counts.device)
        per_layer.index_add_(0, index, counts)
        return {name: n for name, n in zip(names, per_layer.tolist(), strict=True) if n}

    def snapshot(self, present: list[int]) -> list[torch.Tensor]:
        """A copy of these trained weights, to measure the optimizer's update against."""
        return [self.params[i].detach().clone() for i in present]

    def update_ratios(self, present: list[int], before: list[torch.Tensor]) -> LayerNorms:
        """Per layer, the size of the update since `before` over the size of the weights
        (|w_now - w_before| / |w_before|), on the device; no host sync."""
        now = [self.params[i].detach() for i in present]
        steps = torch._foreach_sub(now, before)
        updates = self._per_layer(present, list(torch._foreach_norm(steps)))
        sizes = self._per_layer(present, list(torch._foreach_norm(before)))
        return LayerNorms(self._layers(present)[1], updates / sizes)

    def histograms(self, present: list[int], bins: int = HISTOGRAM_BINS) -> dict[str, Histogram]:
        """Per parameter, a histogram of its gradient drawn as `wandb.watch` draws them (over
        min..max, non-finite values left out, one bin for a constant tensor)."""
        named = [
            (self.param_names[i], g.detach().flatten().float())
            for i in present
            if (g := self.params[i].grad) is not None
        ]
        if not named:
            return {}
        # Every range in one transfer; the counts in a second.
        ranges = torch.stack([torch.stack(torch.aminmax(g)) for _, g in named]).tolist()
        spans = [
            (name, *span)
            for (name, grad), (low, high) in zip(named, ranges, strict=True)
            if (span := _finite_span(grad, low, high))
        ]
        if not spans:
            return {}
        counts = torch.stack([g.histc(bins, lo, hi) for _, g, lo, hi in spans]).tolist()
        result = {}
        for (name, grad, low, high), count in zip(spans, counts, strict=True):
            if low == high:
                result[name] = (numpy.array([float(grad.numel())]), numpy.array([low, high]))
            else:
                result[name] = (numpy.array(count), numpy.linspace(low, high, bins + 1))
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


@dataclass
class Measured:
    """One model's gradients as measured at one step (tensors on its device, no host sync)."""

    layers: LayerNorms
    present: list[int]
    grads: list[torch.Tensor]  # what was applied: counted only if a norm is not finite
    histograms: dict[str, Histogram] = field(default_factory=dict)
    before: list[torch.Tensor] | None = None  # the weights before the step, at watch steps
    updates: LayerNorms | None = None  # per layer, |update| / |weights|


class GradientMonitor:
    """Measures the gradients of named models at the steps the tracker logs.

    `plan(measure, watch)` says what the next step needs (norms; histograms and update ratios
    too); `take(key)` hands over what was measured for a model since the last `take`. A model
    whose optimizer stepped more than once in a step (a critic's several steps) is taken as the
    last step left it.
    """

    def __init__(self, models: Mapping[str, nn.Module]) -> None:
        self.models = {key: LayerGradNorms(model) for key, model in models.items()}
        owner = {id(p): key for key, norms in self.models.items() for p in norms.params}
        self._owner = owner
        self._optimizers: dict[int, list[str]] = {}  # id of an optimizer: the models it steps
        self.stepped: set[str] = set()  # models some optimizer steps (not updated by hand)
        self._measured: dict[str, Measured] = {}
        self._pending: dict[int, list[Measured]] = {}  # measured at the pre-hook, await the post
        # Models updated by hand: the weights at a watch step, and the next step's update.
        self._by_hand: dict[str, tuple[list[int], list[torch.Tensor]]] = {}
        self._by_hand_updates: dict[str, LayerNorms] = {}
        self.measure, self.watch = True, False
        self._hooks = [pre_hook(self._before), post_hook(self._after)]

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()

    def plan(self, measure: bool, watch: bool) -> None:
        self.measure, self.watch = measure, watch

    def _keys(self, optimizer: torch.optim.Optimizer) -> list[str]:
        keys = self._optimizers.get(id(optimizer))
        if keys is None:
            owners = {self._owner.get(id(p)) for g in optimizer.param_groups for p in g["params"]}
            keys = self._optimizers[id(optimizer)] = [k for k in self.models if k in owners]
            self.stepped.update(keys)
        return keys

    def _before(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        keys = self._keys(optimizer)
        if not (keys and self.measure):
            return
        # The hooks get the step's arguments, the optimizer first; a closure (LBFGS) makes
        # the gradients inside the step.
        if args[1:] or kwargs.get("closure"):
            self._pending[id(optimizer)] = []
            return
        self._pending[id(optimizer)] = [self._measure(key) for key in keys]

    def _after(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        measured = self._pending.pop(id(optimizer), None)
        if measured is None:
            return
        if not measured:  # a closure's step: its last gradients
            measured = [self._measure(key) for key in self._keys(optimizer)]
        for key, one in zip(self._keys(optimizer), measured, strict=True):
            if one.before is not None:
                one.updates = self.models[key].update_ratios(one.present, one.before)
                one.before = None
            self._measured[key] = one

    def _measure(self, key: str) -> Measured:
        norms = self.models[key]
        present = norms.present()
        grads = [g for i in present if (g := norms.params[i].grad) is not None]
        measured = Measured(norms.compute(present), present, grads)
        if self.watch and present:
            measured.histograms = norms.histograms(present)
            measured.before = norms.snapshot(present)
        return measured

    def take_nothing(self) -> None:
        """The step is not logged: what was measured in it goes."""
        self._measured.clear()

    def tick(self) -> None:
        """A step ended (the tracker's clock): the update of a model updated by hand since
        its last watch step."""
        for key, (present, before) in self._by_hand.items():
            self._by_hand_updates[key] = self.models[key].update_ratios(present, before)
        self._by_hand.clear()

    def take(self, key: str) -> Measured | None:
        """What was measured for this model since the last take; a model no optimizer steps
        is measured now."""
        if key in self.stepped:
            return self._measured.pop(key, None)
        measured = self._measure(key)
        measured.updates = self._by_hand_updates.pop(key, None)
        if measured.before is not None:
            self._by_hand[key] = (measured.present, measured.before)
            measured.before = None
        return measured
