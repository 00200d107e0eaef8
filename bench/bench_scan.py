"""Time the LRU's forward + backward with each scan of rnns.scan (parallel, log_depth) against the sequential loop.

"Resurrecting Recurrent Neural Networks for Long Sequences" (Orvieto et al., arXiv 2303.06349) computes the LRU with a
parallel associative scan; this script measures what that buys here. It runs on CUDA when available, else CPU.

    PYTHONPATH=. python bench/bench_scan.py                      # default sizes, up to (B 32, T 1024, H 256, N 256)
    PYTHONPATH=. python bench/bench_scan.py --sizes 8x256x64x64 --repeats 5 --device cpu

Prints one row per size: milliseconds per forward + backward for each scan, and loop time / scan time.
A script, not a test: nothing is asserted (the agreement of the scans is tested in tests/rnns/test_scan.py).
"""
from __future__ import annotations

import argparse
import time

import torch

from rnns.lru import LRU
from rnns.scan import SCANS

DEFAULT_SIZES = ("8x256x64x64", "32x1024x128x128", "32x1024x256x256")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fwd_bwd(cell: LRU, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward + backward of ``cell`` on ``x`` (B, T, H), after one warm-up call."""
    times = []
    for i in range(repeats + 1):
        cell.zero_grad(set_to_none=True)
        _sync(x.device)
        t0 = time.perf_counter()
        y, _ = cell(x)
        y.square().mean().backward()
        _sync(x.device)
        if i > 0:  # the first call pays allocation and kernel-selection costs
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="BxTxHxN, e.g. 32x1024x256x256")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--scans", nargs="+", default=list(SCANS), choices=list(SCANS))
    args = ap.parse_args()
    device = torch.device(args.device)
    scans = [s for s in args.scans if s != "loop"] + ["loop"]  # the loop is the baseline of every ratio
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; float32; median of {args.repeats} forward+backward")
    header = f"{'B x T x H x N':>18}" + "".join(f"{s + ' ms':>14}" for s in scans)
    header += "".join(f"{'loop/' + s:>16}" for s in scans if s != "loop")
    print(header)
    for size in args.sizes:
        B, T, H, N = (int(v) for v in size.lower().split("x"))
        torch.manual_seed(0)
        x = torch.randn(B, T, H, device=device)
        ms = {}
        for scan in scans:
            torch.manual_seed(0)  # same parameters for every scan
            cell = LRU(H, N, r_min=0.9, r_max=0.999, scan=scan).to(device)
            ms[scan] = 1e3 * time_fwd_bwd(cell, x, args.repeats)
        row = f"{size:>18}" + "".join(f"{ms[s]:>14.1f}" for s in scans)
        row += "".join(f"{ms['loop'] / ms[s]:>16.2f}" for s in scans if s != "loop")
        print(row, flush=True)


if __name__ == "__main__":
    main()
