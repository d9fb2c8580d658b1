"""An MLP classifier trained with AdamW on synthetic blobs, in the shape of pytorch/examples'
mnist/main.py (train loop, argparse options, `torch.save(model.state_dict(), ...)`)."""

import argparse

import torch
import torch.nn.functional as F
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser(description="an MLP on synthetic blobs")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--out", default="classifier.pt")
    args = parser.parse_args()

    torch.manual_seed(1)
    centers = torch.randn(3, 8) * 2
    labels = torch.randint(0, 3, (512,))
    inputs = centers[labels] + torch.randn(512, 8)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(inputs))
        total = 0.0
        for start in range(0, len(inputs), args.batch_size):
            batch = order[start : start + args.batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(inputs[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch}: loss {total / len(inputs):.6f}")
    with torch.no_grad():
        accuracy = (model(inputs).argmax(1) == labels).float().mean().item()
    torch.save(model.state_dict(), args.out)
    print(f"final loss {total / len(inputs):.6f}, accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
