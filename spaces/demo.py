"""Small demonstration spaces: the README's default sweep, fast on two CPU cores.

``demo/copy`` is the nnRNN/Stair copying-memory task (PAPERS.md 5.4) at a short delay (20 instead of 200), with
one-hot input and 6 x 1000 updates of batch 20 per trial, so that a sweep of 8 trials plus its confirmation runs
ends in a few minutes on two CPU cores and the best LSTM clearly beats the memoryless baseline (10 ln 8 / 40 = 0.520:
blanks, then a uniform guess over the 8 symbols; ``datasets/baselines.py``) while the Elman RNN mostly stays near
it. With scalar input and 40 updates of 10 per epoch (the earlier demo) every trial ended at chance; ``demo/copy_lru`` is the minimal-LRU copy task (PAPERS.md 2.5) on a
smaller training set. Both compare an LSTM with an Elman RNN under RMSprop, the optimiser of the nnRNN tables.
"""
from __future__ import annotations

from .base import Param, SeedPoint, Space

_COMMON = (
    Param("lr", "loguniform", 1e-4, 3e-2, doc="learning rate"),
    Param("alpha", "choice", choices=(0.9, 0.99), doc="RMSprop smoothing constant (nnRNN grid {0.5, 0.9, 0.99})"),
    Param("hidden_size", "choice", choices=(32, 64)),
    Param("forget_bias", "uniform", 0.0, 2.0, when={"model": ("lstm",)}, doc="constant LSTM forget-gate bias"),
    Param("nonlin", "choice", choices=("tanh", "relu"), when={"model": ("rnn",)}, doc="Elman nonlinearity"),
)

SPACES = (
    Space(
        name="demo/copy", paper="nnrnn", task="copy_nnrnn", models=("lstm", "rnn"),
        params=(Param("lr", "loguniform", 1e-3, 3e-2, doc="learning rate"),) + _COMMON[1:4] + (
            # tanh only: ReLU Elman RNNs diverged at most of these learning rates, leaving the RNN unconfirmed
            Param("nonlin", "choice", choices=("tanh",), when={"model": ("rnn",)}, doc="Elman nonlinearity"),),
        fixed={"optimizer": "rmsprop", "grad_clip": 1.0, "epochs": 6},
        task_options={"delay": 20, "onehot": True, "updates": 1000, "batch_size": 20, "n_val": 500},
        seeds=(SeedPoint({"model": "lstm", "lr": 1e-3, "alpha": 0.99, "hidden_size": 64, "forget_bias": 1.0},
                         source="nnRNN supplement Table 2, copy task LSTM row (RMSprop 0.99, lr 1e-3), at delay 20",
                         name="nnrnn-lstm"),),
        budget=6,
        description="copying memory (nnRNN/Stair), delay 20: LSTM vs RNN, a fast demonstration",
    ),
    Space(
        name="demo/copy_lru", paper="lru", task="copy_lru", models=("lstm", "rnn"), params=_COMMON,
        fixed={"optimizer": "rmsprop", "grad_clip": 1.0, "epochs": 4},
        task_options={"n_train": 2000, "n_val": 500, "batch_size": 64},
        budget=4,
        description="minimal-LRU copy task (7-bit patterns, length 48), 2k training sequences",
    ),
)
