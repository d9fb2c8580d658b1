"""A small CNN from a project of its own, tracked with gradient_lab (the README's lines).

Conv, batch norm, dropout; two parameter groups with a scheduler; a stem layer frozen as if
pre-trained (`--unfreeze-stem-at` trains it from that step); `--freeze-conv-at` freezes the
conv layer mid-run; gradient accumulation; bf16 autocast on CPU. Under torchrun each process
trains on its own shard, with DDP: the model is wrapped while every layer trains and frozen
after (`find_unused_parameters=True`), since DDP never synchronises a parameter that was
frozen when it was wrapped (`--freeze-before-wrap` makes that mistake; the tracker stops it).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from gradient_lab import track
from gradient_lab.distributed import rank, setup, teardown, world_size


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(8 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = nn.functional.max_pool2d(torch.relu(self.norm(self.conv(x))), 2)
        out: torch.Tensor = self.head(self.drop(x.flatten(1)))
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--accumulate", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--unfreeze-stem-at", type=int, default=-1)
    parser.add_argument("--freeze-conv-at", type=int, default=-1)
    parser.add_argument("--freeze-before-wrap", action="store_true")
    config = parser.parse_args()

    torch.set_num_threads(1)
    device = setup(torch.device("cpu"))
    torch.manual_seed(0)
    images = torch.randn(256, 1, 8, 8)
    labels = (images[:, :, :4].mean((1, 2, 3)) > 0).long() + (images.mean((1, 2, 3)) > 0).long()
    this, world = rank(), world_size()
    images, labels = images[this::world].to(device), labels[this::world].to(device)

    net = Net().to(device)
    if config.freeze_before_wrap:
        net.stem.requires_grad_(False)
    body = [p for name, p in net.named_parameters() if not name.startswith("head.")]
    optimizer = torch.optim.SGD(
        [{"params": body}, {"params": net.head.parameters(), "lr": config.lr / 10}],
        lr=config.lr, momentum=0.9,
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    model = (
        nn.parallel.DistributedDataParallel(net, find_unused_parameters=True) if world > 1 else net
    )
    net.stem.requires_grad_(False)  # as if pre-trained
    loss_fn = nn.CrossEntropyLoss()
    steps, size = config.steps, config.batch_size

    with track("my-experiment", config, model) as tracker:
        for step in range(steps):
            if step == config.unfreeze_stem_at:
                net.stem.requires_grad_(True)
            if step == config.freeze_conv_at:
                net.conv.requires_grad_(False)
            loss = torch.zeros((), device=device)
            for micro in range(config.accumulate):
                start = ((step * config.accumulate + micro) * size) % (len(labels) - size + 1)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = model(images[start : start + size])
                micro_loss = loss_fn(logits.float(), labels[start : start + size])
                (micro_loss / config.accumulate).backward()
                loss += micro_loss.detach() / config.accumulate
            optimizer.step()
            optimizer.zero_grad()
            tracker.step(step, loss=loss, lr=scheduler.get_last_lr())
            scheduler.step()
        weights = tracker.save_weights()
    if tracker.logs:
        print(f"W&B run ({tracker.mode}): {tracker.run_dir}")
        print(f"Weights: {weights}")
    teardown()


if __name__ == "__main__":
    main()
