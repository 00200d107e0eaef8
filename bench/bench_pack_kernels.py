"""Packed kernels: one trial pack of K members against K single trials, forward + backward, per cell (issue 14).

A trial pack trains K member configurations of one model as one: ``torch.func.vmap`` over
``torch.func.functional_call`` of a ``SequenceModel`` with every weight stacked on a leading member dimension,
inside ``rnns.base.packed()``, gradients by ``loss.backward()`` outside the vmap. Timed per cell, one thread,
interleaved in every round (median over rounds of the per-round ratio):

- ``singles``: the K member models one after the other on their ordinary fast paths (what K trials do);
- ``pack``: the K members as one vmapped model, the fast kernels member-batched by their vmap rules;
- ``pack[reference]``: the same pack on the slow reference step loop (``RNNSWEEP_REFERENCE_CELLS=1``), which is
  what every cell ran inside a pack before the kernels had vmap rules.

Each call is forward + backward of the mean squared output (readout "all", input width D = 10, 10 outputs). The
columns give the CPU milliseconds of one call (thread CPU time, median; absolute times are this machine's only) and the ratios
singles / pack (the pack's speed-up over K trials, the issue's target >= 3x counts the whole trial, this is the
training step alone) and pack[reference] / pack.

    PYTHONPATH=. python bench/bench_pack_kernels.py                     # K=8, B10 T50 H64 and B10 T200 H128
    PYTHONPATH=. python bench/bench_pack_kernels.py --cells rnn,ur_lstm --points 10x50x64 --rounds 3 --no-write

A script, not a test: nothing is asserted. It writes BENCHMARKS.md section ``pack_kernels`` unless ``--no-write``.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import command_line, machine, md_table, median, stamp, write_section  # noqa: E402
from rnns.base import packed  # noqa: E402
from rnns.model import SequenceModel  # noqa: E402

LIMITS = """What a pack can save on a CPU: the fixed cost of every op (dispatch, autograd node, interpreter step),
paid once per step for K members instead of K times. It cannot save the work itself: each member has its own
recurrent matrix, so a step is K independent (B x H) x (H x nH) products (one ``baddbmm``, about as many flops
as K ``addmm``), K times the elementwise work, and K times the activations (at B10 T200 H128 a (T, K, B, 4H)
float32 buffer is 33 MB against 4 MB for one trial, out of cache). Where a single trial's step is already
dominated by flops and bytes rather than per-op overhead (H >= 128, the gated cells with their 4H-wide
products), the pack runs at about the speed of K single trials or slower (the layout copies between the
vmap's member-first tensors and the kernels' time-first buffers come on top). It pays where per-op overhead
dominates (small H, cells whose single path is many small ops). ``lstm``, ``u_lstm`` and ``gru`` compare
against ATen's fused ``nn.LSTM``/``nn.GRU`` for the singles (vmap has no batching rule for them, so the pack
runs the explicit-BPTT loop): the pack loses for ``lstm``/``u_lstm``; CPU ``nn.GRU`` is itself slow in
training, so the pack wins for ``gru``. The issue's >= 3x target counts trial-epochs per second of whole
trials, including the K - 1 trial start-ups a pack saves (bench/bench_pack.py measures that); this table is the
training step alone. Not measured on a GPU (none lent), where per-step launch cost is what packing amortises. The kernels' lead over
``pack[reference]`` is small for the same reason: under vmap the reference loop's per-op costs are shared by the
K members too. Split of one pack call (rnn, B10 T50 H64, K = 8, thread CPU time, measured once by hand): the
member-batched forward kernel 1.7 ms, its backward 3.8 ms, the whole model's forward + backward 11.0 ms (input
projection, read-out, loss, layout copies and vmap around the recurrence), 8 single models 14.5 ms."""

CELLS = ("rnn", "rnn_orth", "exprnn", "nnrnn", "srnn", "linear_rnn", "ur_lstm", "r_lstm", "u_lstm", "lstm", "gru",
         "lru", "diag_rnn")
POINTS = ("10x50x64", "10x200x128")
D_IN, D_OUT = 10, 10


class _env:
    """RNNSWEEP_REFERENCE_CELLS set to ``value`` inside."""

    def __init__(self, value: str):
        self.value = value

    def __enter__(self):
        self.old = os.environ.get("RNNSWEEP_REFERENCE_CELLS")
        os.environ["RNNSWEEP_REFERENCE_CELLS"] = self.value

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop("RNNSWEEP_REFERENCE_CELLS", None)
        else:
            os.environ["RNNSWEEP_REFERENCE_CELLS"] = self.old
        return False


def build(cell: str, K: int, H: int):
    models = []
    for s in range(K):
        torch.manual_seed(s)
        models.append(SequenceModel(cell, D_IN, D_OUT, "all", hidden_size=H))
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    return models, params, buffers, base


def run_singles(models, xs):
    for m, x in zip(models, xs):
        m.zero_grad(set_to_none=True)
        y, _ = m(x)
        y.square().mean().backward()


def run_pack(params, buffers, base, X):
    for p in params.values():
        p.grad = None

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))[0]

    with packed():
        y = vmap(one)(params, buffers, X)
    y.square().mean((1, 2, 3)).sum().backward()


def timed(fn, *args) -> float:
    """CPU seconds of this thread (torch runs on one thread here): the machine is shared, and wall time would count
    the time other processes hold the core."""
    t0 = time.thread_time()
    fn(*args)
    return time.thread_time() - t0


def measure(cell: str, K: int, B: int, T: int, H: int, rounds: int) -> dict:
    models, params, buffers, base = build(cell, K, H)
    X = torch.randn(K, B, T, D_IN)
    xs = list(X.unbind(0))
    variants = {
        "singles": lambda: run_singles(models, xs),
        "pack": lambda: run_pack(params, buffers, base, X),
    }

    def ref():
        with _env("1"):
            run_pack(params, buffers, base, X)

    variants["pack[reference]"] = ref
    with _env("0"):
        for fn in variants.values():  # warm-up: TorchScript compiles on the first calls
            fn()
            fn()
        times = {k: [] for k in variants}
        for _ in range(rounds):
            for k, fn in variants.items():
                times[k].append(timed(fn))
    ratio_single = median([s / p for s, p in zip(times["singles"], times["pack"])])
    ratio_ref = median([r / p for r, p in zip(times["pack[reference]"], times["pack"])])
    return {k: median(v) * 1e3 for k, v in times.items()} | {"singles/pack": ratio_single, "ref/pack": ratio_ref}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--points", nargs="+", default=list(POINTS), help="BxTxH")
    ap.add_argument("--members", type=int, default=8, help="K, members per pack")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cells = [c for c in args.cells.split(",") if c]
    K = args.members
    rows = []
    for pt in args.points:
        try:
            B, T, H = (int(v) for v in pt.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--points: expected BxTxH with positive integers, got {pt!r}")
        for cell in cells:
            r = measure(cell, K, B, T, H, args.rounds)
            row = [cell, f"B{B} T{T} H{H}", f"{r['singles']:.1f}", f"{r['pack']:.1f}", f"{r['pack[reference]']:.1f}",
                   f"{r['singles/pack']:.2f}x", f"{r['ref/pack']:.2f}x"]
            print(" | ".join(row), file=sys.stderr, flush=True)
            rows.append(row)
    table = md_table(["cell", "size", f"{K} singles ms", "pack ms", "pack[reference] ms", "singles / pack",
                      "pack[reference] / pack"], rows)
    text = (f"## Packed kernels (issue 14)\n\n{stamp()}. `{command_line()}`\n\n{machine()}\n\n"
            f"K = {K} members, forward + backward of a SequenceModel (readout all, D = {D_IN}), "
            f"{args.threads} thread(s), median of {args.rounds} interleaved rounds. `singles`: the {K} models one "
            "after the other on their fast paths; `pack`: one vmap over the stacked members inside "
            "`rnns.base.packed()` with the member-batched kernels; `pack[reference]`: the same pack on the "
            "reference step loop (what packs ran before the kernels had vmap rules).\n\n" + table + "\n\n"
            + LIMITS + "\n")
    print(text)
    if not args.no_write:
        print(f"wrote section 'pack_kernels' of {write_section('pack_kernels', text)}", file=sys.stderr)


if __name__ == "__main__":
    main()
