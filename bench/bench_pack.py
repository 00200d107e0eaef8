"""Trial packs (issue 14): trial-epochs per second of a pack of K members against K single trials, one CPU thread.

Demo-sized trials: the demo's copy task (``demo/copy``: copy_nnrnn, delay 20, one-hot input, RMSprop, grad_clip 1)
at hidden size 64 and batch 10, fewer updates per epoch than the demo (``--updates``) so that the table fits in a
few minutes. The K members differ in learning rate, RMSprop alpha and seed (as a random search draws them).

For each cell, in one process with ``torch.set_num_threads(1)``, interleaved and repeated (``--repeats``; median):

- singles: K ordinary ``Trainer``\\ s built and trained one after another (their fast paths), all epochs;
- pack: one ``search.pack.PackTrainer`` of the K configurations (the paths vmap can trace: reference paths for the
  fast kernels that are not vmap-capable), all epochs;
- singles (ref) / pack (ref): the same with ``RNNSWEEP_REFERENCE_CELLS=1``: the ratio packing gives over the same
  maths, i.e. what it would give once every fast kernel runs under vmap.

Times include building the trainers (a pack builds K trainers too) and validation each epoch.
Trial-epochs per second = K x epochs / seconds; the ratio is pack over singles.

    PYTHONPATH=. python bench/bench_pack.py                 # about 10 CPU minutes on a quiet core
    PYTHONPATH=. python bench/bench_pack.py --quick         # CI-safe size (seconds); prints, writes nothing
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import command_line, machine, md_table, stamp, write_section  # noqa: E402

CELLS = ("rnn", "exprnn", "nnrnn", "ur_lstm", "lstm", "gru", "lru")
BASE = {"task": "copy_nnrnn", "delay": 20, "onehot": True, "batch_size": 10, "hidden_size": 64,
        "optimizer": "rmsprop", "grad_clip": 1.0}
CELL_OPTS = {"exprnn": {"lr_orth": 1e-4}, "nnrnn": {"lr_orth": 1e-4}, "lstm": {"forget_bias": 1.0}}


NOTES = """Why the CPU ratio is small at this size (measured with one thread on the same machine, load permitting):
at hidden 64 and batch 10 the matrix products are compute-bound on a CPU core: one batched product over 8
members (bmm, (8, 10, 64) x (8, 64, 256)) takes about as long as the 8 separate products, so stacking saves only
the per-operation and per-step overheads, and vmap adds roughly 10-30 us of its own per operation. The singles' fast
paths (the Elman explicit-BPTT kernel, nn.LSTM/nn.GRU, expRNN's eigendecomposition exponential) are not
vmap-capable yet, so inside a pack those cells run their step loops with autograd (reference paths): the
"reference" columns compare like with like (for lstm both reference columns still differ: with dropout 0 its
single trial runs nn.LSTM's fused kernel even with RNNSWEEP_REFERENCE_CELLS=1). A cell whose fused kernel is far
ahead of its step loop (lstm) trains slower packed on CPU than as single trials: run it with `--pack 1` on CPU. Not measured here: a GPU,
where the same products are launch-bound and stacking K members costs little more than one (issue 14's
GPU target)."""


def member_configs(cell: str, k: int, updates: int, epochs: int, n_val: int) -> list[dict]:
    out = []
    for m in range(k):
        out.append({**BASE, **CELL_OPTS.get(cell, {}), "model": cell, "updates": updates, "epochs": epochs,
                    "n_val": n_val, "seed": 100 + m, "lr": 1e-3 * (1.5 ** (m % 5)), "alpha": (0.9, 0.99)[m % 2]})
    return out


def _reference(on: bool) -> None:
    os.environ["RNNSWEEP_REFERENCE_CELLS"] = "1" if on else "0"


def time_singles(cfgs: list[dict], ref: bool) -> float:
    from search.train import Trainer

    _reference(ref)
    t0 = time.perf_counter()
    for c in cfgs:
        tr = Trainer(c, device="cpu")
        tr.fit()
    return time.perf_counter() - t0


def time_pack(cfgs: list[dict], ref: bool) -> float:
    from search.pack import PackTrainer

    _reference(ref)
    t0 = time.perf_counter()
    pk = PackTrainer(cfgs, device="cpu")
    while pk.epoch < pk.epochs:
        pk.run_epoch()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", nargs="+", default=list(CELLS))
    ap.add_argument("--k", type=int, default=8, help="members per pack (and single trials to compare)")
    ap.add_argument("--updates", type=int, default=100, help="updates per epoch (the demo has 1000)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-reference", action="store_true", help="skip the reference-path rows")
    ap.add_argument("--quick", action="store_true", help="CI-safe size; prints the table, writes nothing")
    args = ap.parse_args()
    if args.quick:
        args.k, args.updates, args.epochs, args.n_val, args.repeats = 3, 3, 1, 20, 1
        args.cells = ["rnn", "lstm"]
    torch.set_num_threads(1)
    old_ref = os.environ.get("RNNSWEEP_REFERENCE_CELLS")
    rows = []
    te = args.k * args.epochs
    # warm-up: first-use costs (imports, the optimiser's lazy torch._dynamo import, vmap set-up) out of the timings
    for cell in args.cells:
        tiny = member_configs(cell, 2, 2, 1, 10)
        time_singles(tiny, False)
        time_pack(tiny, False)
    for cell in args.cells:
        cfgs = member_configs(cell, args.k, args.updates, args.epochs, args.n_val)
        kinds = [("singles", False), ("pack", False)]
        if not args.no_reference:
            kinds += [("singles_ref", True), ("pack_ref", True)]
        times: dict[str, list[float]] = {k: [] for k, _ in kinds}
        for _ in range(args.repeats):
            for name, ref in kinds:
                fn = time_pack if name.startswith("pack") else time_singles
                times[name].append(fn(cfgs, ref))
        t = {k: statistics.median(v) for k, v in times.items()}
        row = [cell, f"{te / t['singles']:.3f}", f"{te / t['pack']:.3f}", f"{t['singles'] / t['pack']:.2f}x"]
        if not args.no_reference:
            row += [f"{te / t['singles_ref']:.3f}", f"{te / t['pack_ref']:.3f}",
                    f"{t['singles_ref'] / t['pack_ref']:.2f}x"]
        rows.append(row)
        print(" | ".join(row), flush=True)
    if old_ref is None:
        os.environ.pop("RNNSWEEP_REFERENCE_CELLS", None)
    else:
        os.environ["RNNSWEEP_REFERENCE_CELLS"] = old_ref
    header = ["cell", "singles (trial-epochs/s)", "pack", "pack / singles"]
    if not args.no_reference:
        header += ["singles, reference paths", "pack, reference paths", "pack / singles (reference)"]
    table = md_table(header, rows)
    print(table)
    if args.quick:
        return
    body = f"""## Trial packs: K configurations as one batched model (CPU)

`{command_line()}` ({stamp()})

{machine("cpu")}

Pack of {args.k} against {args.k} single trials run one after another in the same process, one thread: demo copy task
(copy_nnrnn, delay 20, one-hot), hidden 64, batch 10, RMSprop, grad_clip 1, {args.updates} updates and
validation on {args.n_val} sequences per epoch, {args.epochs} epochs, building the trainers included; median of
{args.repeats}. Trial-epochs per second = {args.k} x {args.epochs} / seconds. "Reference paths": both sides with
`RNNSWEEP_REFERENCE_CELLS=1` (the step loops with autograd that the pack vmaps for a cell whose fast kernel is not
vmap-capable yet): the ratio packing gives over the same maths. The issue's target is >= 3x against 8 ordinary trials.

{table}

{NOTES}
"""
    write_section("trial_packs", body)


if __name__ == "__main__":
    main()
