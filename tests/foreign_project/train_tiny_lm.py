"""A character-level language model from a project of its own, tracked with gradient_lab as the
README's "Track your own script" says: stop and resume, evaluation at its own cadence.

Input and output embeddings are one tensor (tied); a small attention block; AdamW with two
parameter groups (no weight decay on norms, biases and embeddings); linear warm-up then cosine
decay; `clip_grad_norm_`; bf16 autocast on CPU; a checkpoint at the end of the block (also
when Ctrl-C stopped the loop), and `--resume` continues from it. `--nan-at STEP --nan-layer
NAME` plants a NaN in that layer's gradient at that step, as a numerical fault would.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from gradient_lab import TrackingError, track

TEXT = "the quick brown fox jumps over the lazy dog; " * 8
VOCAB = sorted(set(TEXT))


class TinyLM(nn.Module):
    def __init__(self, width: int = 16, context: int = 12) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(len(VOCAB), width)
        self.pos_emb = nn.Embedding(context, width)
        self.attn = nn.MultiheadAttention(width, 2, batch_first=True)
        hidden = 2 * width
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, len(VOCAB), bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        x = self.tok_emb(tokens) + self.pos_emb(torch.arange(length))
        causal = torch.ones(length, length, dtype=torch.bool).triu(1)
        x = x + self.attn(x, x, x, attn_mask=causal, need_weights=False)[0]
        x = x + self.mlp(x)
        out: torch.Tensor = self.lm_head(self.ln_f(x))
        return out


def batch(data: torch.Tensor, size: int, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(0, len(data) - context - 1, (size,))
    windows = torch.stack([data[s : s + context + 1] for s in starts.tolist()])
    return windows[:, :-1], windows[:, 1:]


def plant_nan(model: nn.Module, layer: str) -> None:
    weight = dict(model.named_modules())[layer].weight
    weight.grad[0, :3] = float("nan")  # type: ignore[index]


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--clip", type=float, default=1.0, help="0: no clipping")
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--watch-every", type=int, default=20)
    parser.add_argument("--seconds-per-step", type=float, default=0.0)
    parser.add_argument("--nan-at", type=int, default=-1)
    parser.add_argument("--nan-layer", default="mlp.0")
    parser.add_argument("--checkpoint", default="checkpoint.pt")
    parser.add_argument("--resume", default=None)
    return parser.parse_args()


def optimizer_and_schedule(
    model: nn.Module, args: argparse.Namespace
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW, weight decay on matrices only; linear warm-up, then cosine decay to 0."""
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "emb" in n]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "emb" not in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
    )

    def warmup_cosine(step: int) -> float:
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine)


def main() -> None:
    args = options()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = torch.tensor([VOCAB.index(c) for c in TEXT])
    train, val = data[: len(data) * 3 // 4], data[len(data) * 3 // 4 :]
    model = TinyLM()
    optimizer, scheduler = optimizer_and_schedule(model, args)
    config = vars(args) | {"model": "tiny-lm"}

    with track("tiny-lm", config, model, log_every=args.log_every, watch_every=args.watch_every,
               resume=args.resume) as tracker:  # fmt: skip
        start = tracker.restore(model=model, optimizer=optimizer, scheduler=scheduler)
        for step in tracker.steps(range(start, args.steps)):
            tokens, targets = batch(train, 8, 12)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(tokens)
            loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
            loss.backward()
            if step == args.nan_at:
                plant_nan(model, args.nan_layer)
            total = nn.utils.clip_grad_norm_(model.parameters(), args.clip) if args.clip else None
            decay_lr, no_decay_lr = scheduler.get_last_lr()
            metrics = {"loss": loss.detach(), "lr": {"decay": decay_lr, "no_decay": no_decay_lr}}
            if total is not None:
                metrics["grad_norm_before_clip"] = total
            optimizer.step()
            optimizer.zero_grad()
            tracker.step(step, **metrics)
            scheduler.step()
            if step % args.eval_every == args.eval_every - 1:
                model.eval()
                with torch.no_grad():
                    tokens, targets = batch(val, 16, 12)
                    val_loss = nn.functional.cross_entropy(
                        model(tokens).flatten(0, 1), targets.flatten()
                    )
                model.train()
                tracker.log(step, **{"val/loss": val_loss})
                print(f"step {step}: val/loss {val_loss.item():.3f}", flush=True)
            time.sleep(args.seconds_per_step)
        tracker.save_checkpoint(args.checkpoint, model=model, optimizer=optimizer,
                                scheduler=scheduler)  # fmt: skip
        weights = tracker.save_weights(model)
    print(f"W&B run ({tracker.mode}): {tracker.run_dir}")
    print(f"Weights: {weights}")


if __name__ == "__main__":
    try:
        main()
    except TrackingError as error:
        raise SystemExit(f"error: {error}") from None
