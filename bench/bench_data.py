"""Is loading ever the bottleneck? Loader throughput against the consumption rate of a small model step.

For each task, sequences per second that ``task.batches("train")`` produces (gathering and converting batches
already on the device) are compared with sequences per second that one training step of an LSTM of hidden size 128
(forward + backward + optimiser step on the same batch) consumes. A ratio well above 1 means the loader keeps up.

    PYTHONPATH=. python bench/bench_data.py [--data-dir DIR] [--device cpu|cuda] [--tasks psmnist,ptb_char,jsb]

A script, not a test: timings depend on the machine. Writes its table into BENCHMARKS.md (section ``data``) unless
``--no-write``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import command_line, machine, md_table, stamp, write_section  # noqa: E402
from datasets.base import build_task  # noqa: E402


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
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads on CPU (0: torch's default)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    rows = []
    print(f"{'task':10s} {'build s':>8s} {'batch':>12s} {'loader seq/s':>13s} {'model seq/s':>12s} {'ratio':>8s}")
    for name in a.tasks.split(","):
        t0 = time.perf_counter()
        task = build_task(name, data_dir=a.data_dir, device=device)
        build = time.perf_counter() - t0
        lr, _ = loader_rate(task, device, a.batches)
        mr = model_rate(task, device, a.steps)
        shape = "x".join(map(str, next(task.batches("train")).x.shape))
        print(f"{name:10s} {build:8.2f} {shape:>12s} {lr:13.0f} {mr:12.1f} {lr / mr:8.0f}")
        rows.append([f"`{name}`", f"{build:.2f}", shape, f"{lr:,.0f}", f"{mr:,.1f}", f"{lr / mr:,.0f}"])
    if not a.no_write:
        text = "\n".join([
            "## Data loading\n",
            f"Measured {stamp()} with `{command_line()}`  ",
            f"Machine: {machine(str(device))}  ",
            f"Loader: sequences per second of `task.batches('train')` over up to {a.batches} batches (each batch "
            f"touched). Model: sequences per second one training step of an LSTM-128 consumes (forward, backward, "
            f"Adam step; {a.steps} steps after 2 warm-up steps). Ratio = loader / model: above 1 the loader keeps "
            "up.\n",
            md_table(["task", "build s", "batch (x shape)", "loader seq/s", "LSTM-128 step seq/s", "loader / model"],
                     rows),
            "\nWhat limits these numbers: the datasets are tensors already on the training device, so a batch is an "
            "index gather (and for the music task a conversion of uint8 piano rolls), bound by memory bandwidth; "
            "the model step is bound by the recurrence. Loading is not the bottleneck when the ratio is far above "
            "1; on a GPU the model rate rises by one to two orders of magnitude, so re-run there before concluding "
            "the same for GPU training.",
        ]) + "\n"
        print(f"wrote section 'data' of {write_section('data', text)}", file=sys.stderr)


if __name__ == "__main__":
    main()
