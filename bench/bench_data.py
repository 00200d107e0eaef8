"""Is loading ever the bottleneck? Loader throughput against the consumption rate of a small model step.

For each task, sequences per second that ``task.batches("train")`` produces (gathering and converting batches
already on the device) are compared with sequences per second that one training step of an LSTM of hidden size 128
(forward + backward + optimiser step on the same batch) consumes. A ratio well above 1 means the loader keeps up.

    PYTHONPATH=. python bench/bench_data.py [--data-dir DIR] [--device cpu|cuda] [--tasks psmnist,ptb_char,jsb]

A script, not a test: timings depend on the machine.
"""
from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from datasets.base import build_task


class TinyLSTM(nn.Module):
    """Embedding (token tasks) or identity -> LSTM(128) -> Linear, read out like the task's spec says."""

    def __init__(self, spec, hidden: int = 128):
        super().__init__()
        self.tokens = spec.input_kind == "tokens"
        width = 32 if self.tokens else spec.input_size
        self.embed = nn.Embedding(spec.input_size, width) if self.tokens else nn.Identity()
        self.lstm = nn.LSTM(width, hidden, batch_first=True)
        self.out = nn.Linear(hidden, spec.output_size)
        self.readout = spec.readout

    def forward(self, x):
        h, _ = self.lstm(self.embed(x))  # (B, T, H)
        if self.readout == "last":
            h = h[:, -1]
        elif self.readout == "mean":
            h = h.mean(1)
        return self.out(h)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def loader_rate(task, device, max_batches: int) -> tuple[float, int]:
    """Sequences/s of the train iterator (each batch touched so lazy work is counted)."""
    n, t0 = 0, time.perf_counter()
    for i, b in enumerate(task.batches("train", epoch=1)):
        n += b.x.shape[0]
        b.x.sum()  # force any deferred conversion
        if i + 1 >= max_batches:
            break
    sync(device)
    return n / (time.perf_counter() - t0), n


def model_rate(task, device, steps: int) -> float:
    """Sequences/s one LSTM-128 training step consumes on the task's first train batch."""
    model = TinyLSTM(task.spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    b = next(task.batches("train"))
    for _ in range(2):  # warm-up (cuDNN plans, allocator)
        opt.zero_grad()
        task.objective.loss(model(b.x), b).backward()
        opt.step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        task.objective.loss(model(b.x), b).backward()
        opt.step()
    sync(device)
    return steps * b.x.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("RNNSWEEP_DATA", "/work/shared/data"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tasks", default="psmnist,ptb_char,jsb")
    ap.add_argument("--batches", type=int, default=200, help="train batches timed for the loader")
    ap.add_argument("--steps", type=int, default=3, help="model steps timed")
    a = ap.parse_args()
    device = torch.device(a.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'task':10s} {'build s':>8s} {'batch':>12s} {'loader seq/s':>13s} {'model seq/s':>12s} {'ratio':>8s}")
    for name in a.tasks.split(","):
        t0 = time.perf_counter()
        task = build_task(name, data_dir=a.data_dir, device=device)
        build = time.perf_counter() - t0
        lr, _ = loader_rate(task, device, a.batches)
        mr = model_rate(task, device, a.steps)
        shape = "x".join(map(str, next(task.batches("train")).x.shape))
        print(f"{name:10s} {build:8.2f} {shape:>12s} {lr:13.0f} {mr:12.1f} {lr / mr:8.0f}")


if __name__ == "__main__":
    main()
