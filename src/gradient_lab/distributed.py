"""Training under torch's own launcher (`torchrun`, `python -m torch.distributed.run`).

The launcher starts one process per device and tells each its rank in the environment; these
helpers read that, join the process group (gloo on CPU, nccl on CUDA), and see through the
wrappers that distributed training and compilation put around a model, so that keys and
saved weights carry the model's own names.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

# Name segments that wrappers add inside a model (compile, FSDP units, activation checkpointing).
_WRAPPER_SEGMENTS = re.compile(
    r"(?:^|(?<=\.))(?:_orig_mod|_fsdp_wrapped_module|_checkpoint_wrapped_module)\."
)


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the job: from the process group, else the launcher's RANK, else 0."""
    if initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    if initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def backend() -> str | None:
    return str(dist.get_backend()) if initialized() else None


def is_main() -> bool:
    """True in the one process that logs and saves (rank 0), and in any single-process run."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the launcher's process group when there is more than one process; return the device
    this process trains on (CUDA: the one given by LOCAL_RANK).

    gloo on CPU, nccl on CUDA. A single process (no launcher, or `--nproc_per_node 1`) is left
    alone. Call `teardown()` when training ends.
    """
    if world_size() < 2 or initialized():
        return device
    if device.type == "cuda":
        local_rank, visible = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local_rank >= visible:
            raise ValueError(
                f"Process {local_rank} of this node needs GPU {local_rank}, but only {visible} "
                f"GPU(s) are visible: launch at most {visible} processes per node (nccl needs "
                "one GPU per process), or train on the CPU."
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return device


def teardown() -> None:
    if initialized():
        dist.destroy_process_group()


def is_ddp(model: nn.Module) -> bool:
    """Whether DistributedDataParallel wraps the model (under torch.compile's wrapper, too)."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            return True
        inner = unwrap_once(model)
        if inner is None:
            return False
        model = inner


def gather_rows(values: torch.Tensor) -> torch.Tensor:
    """Every rank's `values` (a 1-D tensor of the same length on each), one row per rank:
    one all_gather. nccl gathers on the GPU; gloo on the CPU."""
    rows = [torch.empty_like(values) for _ in range(dist.get_world_size())]
    dist.all_gather(rows, values.contiguous())
    return torch.stack(rows)


def unwrap_once(model: nn.Module) -> nn.Module | None:
    """The model one wrapper (DDP, DataParallel, torch.compile) in; None when none wraps it."""
    inner: Any = None
    if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        inner = model.module
    elif type(model).__name__ == "OptimizedModule":  # torch.compile's wrapper
        inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else None


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel, DataParallel and torch.compile wrappers."""
    while (inner := unwrap_once(model)) is not None:
        model = inner
    return model


def clean_name(name: str) -> str:
    """A parameter or module name without the segments wrappers add (`_orig_mod.`, FSDP's)."""
    return _WRAPPER_SEGMENTS.sub("", name)


def state_dict(model: nn.Module) -> dict[str, Any]:
    """The model's weights under its own names, loadable into the unwrapped model."""
    return {clean_name(key): value for key, value in unwrap(model).state_dict().items()}
