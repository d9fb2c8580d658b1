"""A tiny data-parallel loop under torchrun, stopped by a signal: what every rank agreed on.

    torchrun --nproc-per-node 2 tests/support/distributed_stop.py OUT_DIR

Each rank trains a one-layer model with gloo, checks `should_stop` between steps and, when it
stops, writes `OUT_DIR/rank<N>.txt` ("<step> <exit code>"); rank 0 alone writes the checkpoint.
Each rank writes its pid to `OUT_DIR/rank<N>.pid`, and rank 0 writes `OUT_DIR/ready` after its
first steps, so a test knows when and whom to signal.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from gradient_lab.files import atomic_save
from gradient_lab.interrupt import exit_now, should_stop, stop_on_signals


def main(out: Path) -> int:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    (out / f"rank{rank}.pid").write_text(str(os.getpid()), encoding="utf-8")
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    step = 0
    with stop_on_signals() as stop:
        while not should_stop(stop, step):
            x = torch.randn(16, 8)
            loss = model(x).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == 50 and rank == 0:
                (out / "ready").write_text("", encoding="utf-8")
    if rank == 0:
        atomic_save({"model": model.module.state_dict(), "step": step}, out / "stop.ckpt")
    (out / f"rank{rank}.txt").write_text(f"{step} {stop.exit_code}", encoding="utf-8")
    dist.destroy_process_group()
    return stop.exit_code


if __name__ == "__main__":
    exit_now(main(Path(sys.argv[1])) if os.environ.get("RANK") else 2)
