"""Sine waves predicted by LSTM cells with LBFGS, after pytorch/examples'
time_sequence_prediction/train.py (double precision, a closure, a figure per step)."""

import argparse

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn


class Sequence(nn.Module):
    def __init__(self, hidden: int = 24) -> None:
        super().__init__()
        self.hidden = hidden
        self.lstm1 = nn.LSTMCell(1, hidden)
        self.linear = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, future: int = 0) -> torch.Tensor:
        h = torch.zeros(x.size(0), self.hidden, dtype=torch.double)
        c = torch.zeros(x.size(0), self.hidden, dtype=torch.double)
        outputs = []
        output = x[:, :1]
        for x_t in [*x.split(1, dim=1), *[None] * future]:
            h, c = self.lstm1(output if x_t is None else x_t, (h, c))
            output = self.linear(h)
            outputs.append(output)
        return torch.cat(outputs, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description="sine waves, LSTM cells, LBFGS")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    np.random.seed(0)
    torch.manual_seed(0)
    x = np.arange(60) + np.random.randint(-16, 16, 12).reshape(12, 1)
    data = torch.from_numpy(np.sin(x / 4.0))
    inputs, target = data[3:, :-1], data[3:, 1:]
    test_input, test_target = data[:3, :-1], data[:3, 1:]
    seq = Sequence().double()
    criterion = nn.MSELoss()
    optimizer = torch.optim.LBFGS(seq.parameters(), lr=0.8, max_iter=8)
    for i in range(args.steps):

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = criterion(seq(inputs), target)
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            pred = seq(test_input, future=20)
            loss = criterion(pred[:, :-20], test_target)
        print(f"step {i}: test loss {loss.item():.8f}")
        plt.figure(figsize=(6, 3))
        plt.plot(pred[0].numpy(), "r")
        plt.savefig(f"predict{i}.png")
        plt.close()
    print(f"final test loss {loss.item():.8f}")


if __name__ == "__main__":
    main()
