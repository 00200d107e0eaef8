"""Cell throughput: forward + backward sequences per second of every registered cell, relative to ``nn.LSTM``.

Each cell of ``rnns.registry.cells()`` (built with its defaults, input width D = hidden width H unless a point
says otherwise) runs forward + backward of ``y.square().mean()`` on a (B, T, D) batch. The baseline is a bare
``torch.nn.LSTM(D, H, batch_first=True)`` (cuDNN on a GPU, ATen's CPU kernel otherwise), timed in the same process
and interleaved with the cells: every round times the baseline and then each cell once, the ratio of a round is
baseline time / cell time, and the table gives the median over rounds. The LRU and diagonal RNN are also timed
with ``scan="loop"`` (the step-by-step recurrence), so their parallel-scan speed-up appears beside the rest.

    PYTHONPATH=. python bench/bench_cells.py                  # CPU sizes: B16 T128 H128 and B8 T512 H64
    PYTHONPATH=. python bench/bench_cells.py --full           # the issue's GPU sizes: B100 T784 H512, B32 T1024 H256
    PYTHONPATH=. python bench/bench_cells.py --points 16x128x128 32x64x256x1 --repeats 7 --cells lstm,gru,lru

``--reference`` also times every cell on its slow reference path (``RNNSWEEP_REFERENCE_CELLS=1``: the plain step
loop under autograd that the fast paths are tested against, which is what every cell ran before the fast paths),
as rows ``cell[reference]`` in the same rounds, and adds a "fast / reference" column: the before/after table.

``--points`` are BxTxH or BxTxHxD. ``--full`` runs the issue's GPU sizes (far too slow on a 2-core CPU: minutes
per cell and round). Memory: on CUDA the peak allocated during forward + backward above what was allocated
before (``torch.cuda.max_memory_allocated``); everywhere the bytes autograd saved for the backward pass, counted
by ``torch.autograd.graph.saved_tensors_hooks`` (each storage once), which is the activation memory and is
exact on CPU, where peak-allocation counters are not available.

A script, not a test: nothing is asserted. It writes its table into BENCHMARKS.md (section ``cells``) unless
``--no-write``.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import command_line, machine, md_table, median, quartiles, stamp, write_section  # noqa: E402
from rnns.registry import build_cell, cells  # noqa: E402

CPU_POINTS = ("16x128x128", "8x512x64")
GPU_POINTS = ("100x784x512", "32x1024x256")
BASELINE = "nn.LSTM"
# variants timed besides the registry's defaults: (row label, registry name, options)
LOOP_VARIANTS = (("lru[scan=loop]", "lru", {"scan": "loop"}), ("diag_rnn[scan=loop]", "diag_rnn", {"scan": "loop"}))
GPU_TARGET_RATIO = 0.5  # custom cells vs cuDNN LSTM
GPU_TARGET_SCAN = 10.0  # parallel scan vs its step loop at T = 1024


def parse_point(s: str) -> tuple[int, int, int, int]:
    v = [int(p) for p in s.lower().split("x")]
    if len(v) == 3:
        v.append(v[2])
    if len(v) != 4 or min(v) < 1:
        raise SystemExit(f"--points: expected BxTxH or BxTxHxD with positive integers, got {s!r}")
    return tuple(v)  # B, T, H, D


class Reference(nn.Module):
    """A cell run on its slow reference path: ``RNNSWEEP_REFERENCE_CELLS=1`` while it is built and called."""

    def __init__(self, build_fn):
        super().__init__()
        with _reference_env():
            self.cell = build_fn()
        self.output_size = self.cell.output_size

    def forward(self, x):
        with _reference_env():
            return self.cell(x)

    def extra_loss(self):
        return getattr(self.cell, "extra_loss", lambda: None)()


class _reference_env:
    def __enter__(self):
        import os

        self.old = os.environ.get("RNNSWEEP_REFERENCE_CELLS")
        os.environ["RNNSWEEP_REFERENCE_CELLS"] = "1"

    def __exit__(self, *exc):
        import os

        if self.old is None:
            os.environ.pop("RNNSWEEP_REFERENCE_CELLS", None)
        else:
            os.environ["RNNSWEEP_REFERENCE_CELLS"] = self.old


class Baseline(nn.Module):
    """Bare nn.LSTM with the cell interface (y, h)."""

    def __init__(self, d: int, h: int):
        super().__init__()
        self.lstm = nn.LSTM(d, h, batch_first=True)
        self.output_size = h

    def forward(self, x):
        return self.lstm(x)


def build(label: str, name: str, opts: dict, D: int, H: int, device) -> nn.Module:
    torch.manual_seed(0)
    if label == BASELINE:
        return Baseline(D, H).to(device)
    if label.endswith("[reference]"):
        return Reference(lambda: build_cell(name, D, H, **opts)).to(device)
    return build_cell(name, D, H, **opts).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fwd_bwd(model: nn.Module, x: torch.Tensor) -> None:
    y, _ = model(x)
    loss = y.square().mean()
    extra = getattr(model, "extra_loss", lambda: None)()
    if extra is not None:
        loss = loss + extra
    loss.backward()


CLOCK_NAME = "wall (perf_counter)"
CLOCK = time.perf_counter  # set by main(): wall clock, or the process's CPU time on a single-threaded CPU run


def time_once(model: nn.Module, x: torch.Tensor, inner: int = 1) -> float:
    """Seconds per forward + backward, averaged over ``inner`` back-to-back calls."""
    sync(x.device)
    t0 = CLOCK()
    for _ in range(inner):
        model.zero_grad(set_to_none=True)
        fwd_bwd(model, x)
    sync(x.device)
    return (CLOCK() - t0) / inner


def saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps for the backward pass of one forward (each storage counted once)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            st = t.untyped_storage()
            seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
        except (RuntimeError, NotImplementedError):  # a tensor without storage (sparse, meta): estimate
            seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y, _ = model(x)
        loss = y.square().mean()
    del loss, y
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    params.add(x.untyped_storage().data_ptr())  # inputs and parameters exist anyway: not activation memory
    return sum(b for ptr, b in seen.items() if ptr not in params)


def cuda_peak(model: nn.Module, x: torch.Tensor) -> int:
    torch.cuda.synchronize()
    model.zero_grad(set_to_none=True)
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fwd_bwd(model, x)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def run_point(point, names, device, repeats: int, log, min_time: float = 0.05, reference: bool = False) -> dict:
    B, T, H, D = point
    torch.manual_seed(0)
    x = torch.randn(B, T, D, device=device)
    rows = [(BASELINE, None, {})] + [(n, n, {}) for n in names]
    rows += [v for v in LOOP_VARIANTS if v[1] in names]
    if reference:
        rows += [(f"{n}[reference]", n, {}) for n in names]
    models, info, failed, inner = {}, {}, {}, {}
    for label, name, opts in rows:
        try:
            m = build(label, name, opts, D, H, device)
            time_once(m, x)  # warm-up: allocation, kernel selection, lazy initialisation
            # calls per measurement so that one measurement lasts at least min_time (short ones are all noise)
            inner[label] = max(1, math.ceil(min_time / max(time_once(m, x), 1e-6)))
        except Exception as e:  # noqa: BLE001 - a cell that cannot run at this size is reported, not fatal
            failed[label] = f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"
            continue
        models[label] = m
        info[label] = {"params": sum(p.numel() for p in m.parameters() if p.requires_grad),
                       "saved": saved_bytes(m, x),
                       "peak": cuda_peak(m, x) if device.type == "cuda" else None}
    times: dict[str, list[float]] = {k: [] for k in models}
    ratios: dict[str, list[float]] = {k: [] for k in models}
    for r in range(repeats):
        t_base = time_once(models[BASELINE], x, inner[BASELINE])
        times[BASELINE].append(t_base)
        for label, m in models.items():
            if label == BASELINE:
                continue
            t = time_once(m, x, inner[label])
            times[label].append(t)
            ratios[label].append(t_base / t)
        log(f"  round {r + 1}/{repeats} done")
    out = {}
    for label in models:
        t = median(times[label])
        rr = ratios[label] if label != BASELINE else [1.0]
        out[label] = {**info[label], "seq_s": B / t, "ms": 1e3 * t, "ratio": median(rr), "ratio_q": quartiles(rr)}
    for lab, scan_lab in (("lru", "lru[scan=loop]"), ("diag_rnn", "diag_rnn[scan=loop]")):
        if lab in out and scan_lab in out:
            # same-round pairing: loop time / scan time per round, median
            rr = [a / b for a, b in zip(times[scan_lab], times[lab])]
            out[lab]["scan_speedup"] = median(rr)
    for label in list(out):
        ref = f"{label}[reference]"
        if ref in out:  # same-round pairing: reference time / fast time
            out[label]["speedup"] = median([a / b for a, b in zip(times[ref], times[label])])
    return {"point": point, "cells": out, "failed": failed}


def render(results, device, args) -> str:
    lines = [f"## Cell throughput\n",
             f"Measured {stamp()} with `{command_line()}`  ",
             f"Machine: {machine(str(device))}  ",
             f"Rounds: {args.repeats} (median; the ratio column is the median of per-round ratios, with the "
             f"interquartile range); each measurement repeats the call until it lasts >= {args.min_time:g} s; "
             f"float32; one warm-up call per cell; clock: {CLOCK_NAME}.\n"]
    if device.type != "cuda":
        lines.append(
            "**These are CPU ratios, not GPU ratios.** On a CPU, `nn.LSTM` is ATen's fused CPU kernel, not cuDNN, and "
            "every Python-loop cell pays a few small-kernel launches per step on 2 cores; on a GPU the per-step "
            "launch latency (about 5-10 us per kernel) and cuDNN's fused persistent kernels change the ratios "
            "completely. The sizes are reduced from the issue's GPU sizes (B100 T784 H512 and B32 T1024 H256, "
            "`--full`) because on this CPU those take minutes per cell and round.\n")
        lines.append(
            "Peak memory (`torch.cuda.max_memory_allocated`) is measured on CUDA only: **not measured here**. The "
            "'saved activations' column is measured, not estimated: the bytes of the tensors autograd saves for the "
            "backward pass (`torch.autograd.graph.saved_tensors_hooks`, each storage once, inputs and parameters "
            "excluded).\n")
    for res in results:
        B, T, H, D = res["point"]
        cells_ = res["cells"]
        lines.append(f"### B {B}, T {T}, H {H}, D {D}\n")
        with_ref = any(k.endswith("[reference]") for k in cells_)
        hdr = ["cell", "ms / fwd+bwd", "seq/s", f"x {BASELINE}", "IQR of ratio", "params", "saved activations"]
        if with_ref:
            hdr[4:4] = [f"reference path x {BASELINE}", "fast / reference"]
        if device.type == "cuda":
            hdr.append("CUDA peak")
        rows = []
        order = [BASELINE] + sorted((k for k in cells_ if k != BASELINE and not k.endswith("[reference]")),
                                    key=lambda k: -cells_[k]["ratio"])
        for k in order:
            c = cells_[k]
            q = c["ratio_q"]
            row = [f"`{k}`", f"{c['ms']:.1f}", f"{c['seq_s']:.0f}", f"{c['ratio']:.2f}",
                   "-" if k == BASELINE else f"{q[0]:.2f}-{q[1]:.2f}", f"{c['params']:,}", fmt_bytes(c["saved"])]
            if with_ref:
                r = cells_.get(f"{k}[reference]")
                row[4:4] = [f"{r['ratio']:.2f}" if r else "-",
                            f"{c['speedup']:.2f}x" if "speedup" in c else "-"]
            if device.type == "cuda":
                row.append(fmt_bytes(c["peak"]))
            rows.append(row)
        lines.append(md_table(hdr, rows))
        for k, why in res["failed"].items():
            lines.append(f"\n`{k}` did not run at this size: {why}")
        sp = [(k, cells_[k]["scan_speedup"]) for k in ("lru", "diag_rnn") if "scan_speedup" in cells_.get(k, {})]
        if sp:
            lines.append("\nParallel scan over its own step loop (same rounds): "
                         + ", ".join(f"`{k}` {v:.2f}x" for k, v in sp) + ".")
        lines.append("")
    if device.type == "cpu" and any(r["point"][:3] in ((16, 128, 128), (8, 512, 64)) for r in results):
        lines.append("### Against the CPU targets\n")
        gated = {"ur_lstm", "r_lstm", "u_lstm", "gru", "mogrifier_lstm", "rru", "srnn_lstm"}
        for res in results:
            B, T, H, D = res["point"]
            cs = {k: c for k, c in res["cells"].items() if k != BASELINE and "[" not in k}
            if (B, T, H) == (16, 128, 128):
                miss = [k for k, c in cs.items() if c["ratio"] < 0.5]
                lines.append(f"- B16 T128 H128, every cell >= 0.5x: "
                             + (f"missed by {len(miss)} of {len(cs)}: " + ", ".join(
                                 f"`{k}` ({cs[k]['ratio']:.2f}x)" for k in sorted(miss, key=lambda k: cs[k]['ratio']))
                                if miss else f"**met** by all {len(cs)}"))
            if (B, T, H) == (8, 512, 64):
                miss = [k for k, c in cs.items() if k in gated and c["ratio"] < 0.25]
                lines.append("- B8 T512 H64, gated cells >= 0.25x: " + (", ".join(
                    f"`{k}` ({cs[k]['ratio']:.2f}x)" for k in miss) + " missed" if miss else "**met**"))
        lines.append("")
    lines.append("### Against the GPU targets\n")
    if device.type == "cuda":
        tgt = []
        for res in results:
            B, T, H, D = res["point"]
            slow = [k for k, c in res["cells"].items()
                    if k != BASELINE and "[" not in k and c["ratio"] < GPU_TARGET_RATIO]
            tgt.append(f"- B{B} T{T} H{H}: cells below {GPU_TARGET_RATIO}x cuDNN LSTM: "
                       + (", ".join(f"`{k}` ({res['cells'][k]['ratio']:.2f}x)" for k in slow) or "none"))
            for k in ("lru", "diag_rnn"):
                v = res["cells"].get(k, {}).get("scan_speedup")
                if v is not None and T >= 1024:
                    tgt.append(f"- B{B} T{T} H{H}: `{k}` parallel scan {v:.1f}x its loop (target >= "
                               f"{GPU_TARGET_SCAN:.0f}x{'' if v >= GPU_TARGET_SCAN else ': missed'})")
        lines += tgt
    else:
        lines.append(f"- Custom cells >= {GPU_TARGET_RATIO}x cuDNN LSTM on GPU: **not measured here (no GPU)**. "
                     "Run `PYTHONPATH=. python bench/bench_cells.py --full` on a CUDA machine.")
        lines.append(f"- LRU / diagonal parallel scan >= {GPU_TARGET_SCAN:.0f}x its step loop at T = 1024 on GPU: "
                     "**not measured here (no GPU)**; the CPU speed-up above is not evidence either way (see the "
                     "scan section).")
    lines.append("\nWhat limits these numbers: a gated or orthogonal recurrence is a chain of T dependent (B x H) x "
                 "(H x 4H) matrix products, so its floor is the fused cuDNN LSTM kernel (one launch for the whole "
                 "sequence, weights held on chip); cells written as a Python loop add kernel launches and autograd "
                 "nodes per step and cannot reach it at small B x H, where launch latency dominates. Diagonal linear "
                 "recurrences (LRU, diag_rnn) do O(B T N) work and are bound by memory bandwidth: the scan reads and "
                 "writes the (B, T, N) complex states a few times, so it is limited by bytes moved, not flops. "
                 "Parameter counts are per cell (no encoder or decoder); saved activations are what autograd keeps "
                 "between forward and backward, which grows as B x T x H for every cell.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", nargs="+", default=None, help="BxTxH or BxTxHxD (default: CPU sizes)")
    ap.add_argument("--full", action="store_true", help="the issue's GPU sizes (B100 T784 H512, B32 T1024 H256)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds (median)")
    ap.add_argument("--cells", default="", help="comma-separated subset (default: every registered cell)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads on CPU (default 1: on a shared 2-core machine more threads wait on "
                         "each other; 0 keeps torch's default)")
    ap.add_argument("--min-time", type=float, default=0.05, help="seconds one measurement lasts at least")
    ap.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto",
                    help="cpu: the process's CPU time (robust to other jobs on a shared machine; single-threaded CPU "
                         "runs only); auto: cpu for a 1-thread CPU run, wall otherwise")
    ap.add_argument("--reference", action="store_true",
                    help="also time each cell's slow reference path (before/after table)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    global CLOCK, CLOCK_NAME
    use_cpu = args.clock == "cpu" or (args.clock == "auto" and device.type == "cpu" and torch.get_num_threads() == 1)
    if use_cpu and device.type == "cuda":
        raise SystemExit("--clock cpu measures host CPU time only: use wall on CUDA")
    CLOCK = time.process_time if use_cpu else time.perf_counter
    CLOCK_NAME = ("process CPU time (time.process_time; one intra-op thread, so it equals the wall time of an idle "
                  "machine, without the time other jobs take the core)" if use_cpu else "wall (perf_counter)")
    points = [parse_point(p) for p in (args.points or (GPU_POINTS if args.full else CPU_POINTS))]
    reg = cells()
    names = [n for n in args.cells.split(",") if n] or list(reg)
    unknown_ = [n for n in names if n not in reg]
    if unknown_:
        raise SystemExit(f"unknown cells {unknown_}; registered: {', '.join(reg)}")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    results = []
    for p in points:
        log(f"point B{p[0]} T{p[1]} H{p[2]} D{p[3]}: {len(names)} cells + baseline + loop variants")
        results.append(run_point(p, names, device, args.repeats, log, args.min_time, args.reference))
    text = render(results, device, args)
    print(text)
    if not args.no_write:
        print(f"wrote section 'cells' of {write_section('cells', text)}", file=sys.stderr)


if __name__ == "__main__":
    main()
