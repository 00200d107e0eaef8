"""Gated cells, reference path vs fast path: forward + backward time relative to ``nn.LSTM`` (issue 13).

For every gated cell the slow reference (a Python step loop under autograd, ``RNNSWEEP_REFERENCE_CELLS=1``) and the
fast path (``rnns/gated_fast.py``: input projections as one GEMM, TorchScript loops, a hand-written backward through
time) run forward + backward of ``y.square().mean()`` on a (B, T, H) batch in training mode, input width = H. The
baseline is a bare ``torch.nn.LSTM(H, H, batch_first=True)`` (oneDNN's fused LSTM on CPU), timed in the same
process and interleaved: every round times the baseline and then each (cell, path) once; the ratio of a round is
baseline time / cell time and the table gives the median over rounds (higher is faster; 1.0 = as fast as
nn.LSTM). One intra-op thread. ``lstm``, ``u_lstm`` and ``gru`` without dropout run ``nn.LSTM`` / ``nn.GRU``
themselves; they need the step loop (and get the fast path) only when their candidate dropout acts, so they are
timed at dropout 0.5. ``mogrifier_lstm`` (rank 0, 5 rounds) and ``rru`` have a lighter fast path (TorchScript loop
under autograd, no hand-written backward).

    PYTHONPATH=. python bench/bench_gated_paths.py                    # B16 T128 H128 and B8 T512 H64
    PYTHONPATH=. python bench/bench_gated_paths.py --points 16x128x128 --repeats 7 --clock wall

``--clock cpu`` (default) times the thread's CPU time (``time.thread_time``), which a machine shared with other
jobs disturbs less than the wall clock. A script, not a test: nothing is asserted; it prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench._common import command_line, machine, md_table, stamp  # noqa: E402
from rnns.registry import build_cell  # noqa: E402

CELLS = [("ur_lstm", {}), ("r_lstm", {}), ("u_lstm", {"dropout": 0.5}), ("lstm", {"dropout": 0.5}),
         ("gru", {"dropout": 0.5}), ("mogrifier_lstm", {}), ("rru", {})]
TARGETS = {(16, 128, 128): 0.5, (8, 512, 64): 0.25}
ENV = "RNNSWEEP_REFERENCE_CELLS"


def _path(reference: bool) -> None:
    if reference:
        os.environ[ENV] = "1"
    else:
        os.environ.pop(ENV, None)


def _fwd_bwd(model, x) -> None:
    y = model(x)[0]
    y.square().mean().backward()


def _time(model, x, clock, reference: bool = False, min_time: float = 0.05) -> float:
    """Seconds per forward + backward (repeated until min_time has passed)."""
    _path(reference)
    n, t0 = 0, clock()
    while True:
        _fwd_bwd(model, x)
        n += 1
        dt = clock() - t0
        if dt >= min_time:
            return dt / n


def run_point(B, T, H, repeats, clock, log):
    torch.manual_seed(0)
    x = torch.randn(B, T, H, requires_grad=True)
    base = torch.nn.LSTM(H, H, batch_first=True)
    models = {}
    first_call = {}
    for name, opts in CELLS:
        models[name] = build_cell(name, H, H, **opts).train()
        for ref in (True, False):
            t0 = time.perf_counter()
            _path(ref)
            _fwd_bwd(models[name], x)  # warm-up; the fast path's first call includes its TorchScript set-up
            if not ref:
                first_call[name] = time.perf_counter() - t0
    _fwd_bwd(base, x)
    ratios = {(n, r): [] for n, _ in CELLS for r in (True, False)}
    abs_t = {(n, r): [] for n, _ in CELLS for r in (True, False)}
    for k in range(repeats):
        tb = _time(base, x, clock)
        for name, _ in CELLS:
            for ref in (True, False):
                tc = _time(models[name], x, clock, ref)
                ratios[(name, ref)].append(tb / tc)
                abs_t[(name, ref)].append(tc)
        log(f"  B{B} T{T} H{H}: round {k + 1}/{repeats} done (nn.LSTM {tb * 1e3:.1f} ms)")
    _path(False)
    return ratios, abs_t, first_call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", nargs="+", default=["16x128x128", "8x512x64"], help="BxTxH")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    rows = []
    for p in args.points:
        try:
            B, T, H = (int(v) for v in p.lower().split("x"))
        except ValueError:
            print(f"bench_gated_paths: a point is BxTxH, got {p!r}", file=sys.stderr)
            raise SystemExit(2)
        ratios, abs_t, first = run_point(B, T, H, args.repeats, clock, lambda m: print(m, file=sys.stderr))
        target = TARGETS.get((B, T, H))
        for name, opts in CELLS:
            ref, fast = statistics.median(ratios[(name, True)]), statistics.median(ratios[(name, False)])
            label = name + (f" (dropout {opts['dropout']:g})" if "dropout" in opts else "")
            verdict = "" if target is None else ("meets" if fast >= target else "misses") + f" {target:g}x"
            rows.append([f"B{B} T{T} H{H}", label, f"{ref:.3f}x", f"{fast:.3f}x", f"{fast / ref:.2f}x",
                         f"{statistics.median(abs_t[(name, False)]) * 1e3:.1f}", f"{first[name]:.2f}", verdict])
    print(f"\nCommand: `{command_line()}` ({stamp()}, clock {args.clock}, {args.repeats} interleaved rounds)\n")
    print(md_table(["size", "cell", "reference / nn.LSTM", "fast / nn.LSTM", "fast / reference",
                    "fast ms (fwd+bwd)", "first call s", "target"], rows, "llrrrrrl"))
    print("\n" + machine("cpu"))


if __name__ == "__main__":
    main()
