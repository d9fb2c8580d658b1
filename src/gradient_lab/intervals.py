"""The interval accumulator: a logging interval's metrics, averaged on their device and, under
DDP, over the ranks, reaching the host in one transfer per logging step. Every rank keeps one
(the mean over ranks and the replica check are collectives every rank joins)."""

from __future__ import annotations

from typing import Any

import torch

from gradient_lab import distributed
from gradient_lab.errors import TrackingError
from gradient_lab.values import scalars

# Relative difference between ranks' gradient norms of one layer beyond which DDP did not
# synchronise it (synchronised gradients are the same on every rank, bit for bit).
REPLICA_TOLERANCE = 1e-5


class Interval:
    """The values `tracker.step` was given since the last logging step."""

    def __init__(self) -> None:
        self.ranks = distributed.world_size() if distributed.initialized() else 1
        self.values: dict[str, list[torch.Tensor]] = {}
        self.numbers: dict[str, float] = {}
        self.count = 0
        self.last_step: int | None = None

    def add(self, step: int, metrics: dict[str, Any]) -> None:
        """Numbers are kept as they are at the logging step (a learning rate); one-element
        tensors are averaged over the interval; sequences and dicts as `values.scalars`."""
        for key, value in metrics.items():
            if isinstance(value, torch.Tensor) and value.dim() == 0:  # the common case first
                # Kept, not added up: a list append costs less than a kernel call per step.
                self.values.setdefault(key, []).append(value.detach())
            elif isinstance(value, float | int):
                self.numbers[key] = float(value)
            else:
                for name, scalar in scalars(key, value).items():
                    if isinstance(scalar, torch.Tensor):
                        self.values.setdefault(name, []).append(scalar)
                    else:
                        self.numbers[name] = scalar
        self.count += 1
        self.last_step = step

    def collect(
        self, shared: list[torch.Tensor], spread: bool, local: list[torch.Tensor]
    ) -> tuple[dict[str, float], list[float], list[float], list[float]]:
        """In one device-to-host transfer: the interval's means and the `shared` values (both
        averaged over the ranks), how far each shared value differs between ranks (`spread`),
        and the `local` values as they are; then the interval starts again."""
        means = [torch.stack(values).float().mean() for values in self.values.values()]
        device = next((t.device for t in [*shared, *means]), torch.device("cpu"))
        flat = [t.to(device).float().reshape(-1) for t in [*means, *shared]]
        row = torch.cat(flat) if flat else torch.zeros(0, device=device)
        parts, n = [row], len(means)
        # Under a process group (which a script may have left before the last interval).
        gathering = self.ranks > 1 and distributed.initialized()
        if gathering:
            gathered = distributed.gather_rows(row)
            parts = [gathered.mean(0)]
            if spread:
                values = gathered[:, n:]
                parts.append(values.amax(0) - values.amin(0))
        parts += [t.to(device).float().reshape(-1) for t in local]
        numbers: list[float] = torch.cat(parts).tolist() if parts else []
        m = len(row) - n
        spreads = numbers[n + m : n + 2 * m] if spread and gathering else []
        result = dict(zip(self.values, numbers[:n], strict=True)) | self.numbers
        self.values, self.numbers, self.count = {}, {}, 0
        return result, numbers[n : n + m], spreads, numbers[n + m + len(spreads) :]


def check_replicas(step: int, names: list[str], norms: list[float], spreads: list[float]) -> None:
    """Stop when a layer's gradient differs between ranks: DDP did not synchronise it."""
    apart = [
        name
        for name, norm, spread in zip(names, norms, spreads, strict=True)
        if spread > REPLICA_TOLERANCE * max(abs(norm), 1e-12)
    ]
    if apart:
        raise TrackingError(
            f"Layer {', '.join(apart)} has a different gradient on each rank at step {step}: "
            "DistributedDataParallel does not synchronise it (it did not require a "
            "gradient when the model was wrapped), so the ranks' weights drift apart; wrap "
            "the model with every layer trainable and freeze after wrapping "
            "(DistributedDataParallel(model, find_unused_parameters=True)), or keep the "
            "layer trainable and hold it still with a learning rate of 0."
        )
