"""Do the fast cell paths train like the reference paths? The demo configuration, both paths, side by side.

1. Three epochs of the demo's copy task (`demo/copy`: delay 20, one-hot, batch 20, 1000 updates per epoch) for the
   demo's two models, each once on its fast path and once with ``RNNSWEEP_REFERENCE_CELLS=1``: the validation loss
   after each epoch, and the largest relative difference.
2. Where they differ, whether that is rounding amplified by the training dynamics or a difference in the maths:
   both paths trained in lockstep on the same batches, in float32 and in float64, with the relative difference of
   all weights after 1, 2, 6, 21, 51, 101, 201 and 400 updates. Rounding shows as a difference at the precision's
   round-off level after the first update (~1e-8 float32, ~1e-16 float64) that then grows at the same rate in both
   precisions; a maths difference would show as a large difference from the first update on.

    PYTHONPATH=. python bench/bench_fast_training.py          # about 3 CPU minutes
"""
from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rnns.optim import build_optimizer  # noqa: E402
from search.train import Trainer  # noqa: E402

BASE = {"task": "copy_nnrnn", "delay": 20, "onehot": True, "batch_size": 20, "updates": 1000, "n_val": 500,
        "epochs": 3, "optimizer": "rmsprop", "grad_clip": 1.0, "seed": 1}
MODELS = {"rnn": {"model": "rnn", "lr": 0.00368, "alpha": 0.9, "hidden_size": 64, "nonlin": "tanh"},
          "lstm": {"model": "lstm", "lr": 0.0139, "alpha": 0.99, "hidden_size": 64, "forget_bias": 1.22}}
CHECKPOINTS = (0, 1, 5, 20, 50, 100, 200, 399)


def _path(ref: bool) -> None:
    os.environ["RNNSWEEP_REFERENCE_CELLS"] = "1" if ref else "0"


def epochs(cfg: dict) -> dict[bool, list[float]]:
    out = {}
    for ref in (False, True):
        _path(ref)
        tr = Trainer({**BASE, **cfg}, device="cpu")
        out[ref] = [tr.run_epoch()["val_loss"] for _ in range(BASE["epochs"])]
    return out


def lockstep(cfg: dict, dtype: torch.dtype) -> list[tuple[int, float]]:
    weights = {}
    for ref in (False, True):
        _path(ref)
        tr = Trainer({**BASE, **cfg}, device="cpu")
        tr.model.to(dtype)
        opt = build_optimizer(tr.model, **tr.split.optim_opts)
        tr.model.train()
        seen = []
        for k, batch in enumerate(itertools.islice(tr.task.batches("train", 0), CHECKPOINTS[-1] + 1)):
            out, _ = tr.model(batch.x.to(dtype), None)
            loss = tr.task.objective.loss(out, batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tr.model.parameters(), BASE["grad_clip"])
            opt.step()
            if k in CHECKPOINTS:
                seen.append(torch.cat([p.detach().flatten() for p in tr.model.parameters()]).clone())
        weights[ref] = seen
    return [(k + 1, float((a - b).norm() / b.norm())) for k, a, b in zip(CHECKPOINTS, weights[False], weights[True])]


def main() -> None:
    torch.set_num_threads(1)
    for name, cfg in MODELS.items():
        e = epochs(cfg)
        rel = max(abs(a - b) / abs(b) for a, b in zip(e[False], e[True]))
        print(f"{name}: validation loss per epoch, fast {['%.6f' % v for v in e[False]]}, reference "
              f"{['%.6f' % v for v in e[True]]}; largest relative difference {rel:.2e}")
        if rel > 0:
            for dtype in (torch.float32, torch.float64):
                steps = ", ".join(f"{k}: {d:.1e}" for k, d in lockstep(cfg, dtype))
                print(f"  {name} lockstep, {str(dtype).replace('torch.', '')}: relative weight difference after "
                      f"updates {steps}")


if __name__ == "__main__":
    main()
