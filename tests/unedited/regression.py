"""Polynomial regression with one nn.Linear, after pytorch/examples' regression/main.py."""

import argparse

import torch
import torch.nn.functional as F

POLY_DEGREE = 4


def make_features(x: torch.Tensor) -> torch.Tensor:
    """A matrix with columns [x, x^2, x^3, x^4]."""
    x = x.unsqueeze(1)
    return torch.cat([x**i for i in range(1, POLY_DEGREE + 1)], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description="fit a polynomial with one linear layer")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()

    torch.manual_seed(0)
    w_target = torch.randn(POLY_DEGREE, 1) * 0.5
    b_target = torch.randn(1) * 0.5
    fc = torch.nn.Linear(POLY_DEGREE, 1)
    for step in range(1, args.steps + 1):
        x = make_features(torch.randn(32))
        y = x @ w_target + b_target
        fc.zero_grad()
        output = F.smooth_l1_loss(fc(x), y)
        loss = output.item()
        output.backward()
        with torch.no_grad():
            for param in fc.parameters():
                param -= args.lr * param.grad  # noqa: PLW2901 - in place, no rebinding
        if step % 50 == 0:
            print(f"step {step}: loss {loss:.6f}")
    print(f"Loss: {loss:.6f} after {args.steps} batches")


if __name__ == "__main__":
    main()
