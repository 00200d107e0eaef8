"""Stair RNN: "Stair Recurrent Neural Networks" (NeurIPS 2021 submission; no public paper text, no arXiv id).

The sources are the code and READMEs of srnn/sRNN (May 2021) and EljayiYassir/Stair-recurrent-neural-networks
(June 2022), as summarised in PAPERS 5.1-5.5. A stair cell multiplies the new state of a base cell by a
time-dependent scalar rho_k: h_k = rho_k * Phi(x_k, h_{k-1}).

Spaces ``stair/psmnist``, ``stair/ptb_char150``, ``stair/ptb_char300`` and ``stair/copy`` compare the stair cells
over the plain RNN (``srnn``), expRNN (``srnn_exp``) and nnRNN (``srnn_nn``) with their base cells and an LSTM.
Seed points: every row of the 2021 README table, the 2022 README's changed rows, the README's example commands,
and the baseline rows (which the README says match the nnRNN README). Each stair row carries the best rho that
the 2022 README gives for its model and task.
"""
from __future__ import annotations

from typing import Any

from .base import Param, SeedPoint, Space
from .nnrnn import (NNRNN_AS_RUN, NONNORMAL, ORTH, alpha_param, delta_param, iinit_param, lr_orth_param, lr_param,
                    nonlin_param, rinit_orth_param, rinit_param, tdecay_param)

PAPER = "stair"
STAIR = ("srnn", "srnn_exp", "srnn_nn")
BASELINES = ("rnn", "rnn_orth", "exprnn", "nnrnn", "lstm")
MODELS = STAIR + BASELINES
RINIT = ("rnn", "rnn_orth", "exprnn", "nnrnn", "srnn", "srnn_exp", "srnn_nn")
NONLIN = ("rnn", "rnn_orth", "srnn")
# --nvar choices, README names: 1 - 1/(k+2), 1 - 1/(k+2)^2, 1 - 1/ln(k+2) (negative at k=0), 1 - 1/ln(2(k+4)),
# 1 - 1/sqrt(ln(k+3)), 1 - exp(-(k+2)); alpha: a learnt scalar per step; exp-alpha: gate inside the cell
RHO = ("none", "n", "n2", "logn", "log2n", "sqrtlogn", "expn", "alpha", "exp-alpha")

S21 = "Stair README 2021 (srnn/sRNN), PAPERS 5.5"
S22 = "Stair README 2022 (EljayiYassir), PAPERS 5.5"
BEST_RHO = "best rho per model, 2022 README (PAPERS 5.2)"

# Stair README (2021): task -> model -> (N, lr, lr_orth, RMSprop alpha, delta, Tdecay, rinit). None: not applicable.
TABLE_2021: dict[str, dict[str, tuple]] = {
    "psmnist": {
        "srnn": (512, 5e-5, None, 0.99, None, None, "random"),
        "srnn_exp": (512, 5e-4, 5e-5, 0.99, None, None, "cayley"),
        "srnn_nn": (512, 2e-4, 2e-5, 0.99, 0.1, 1e-4, "cayley"),
    },
    "ptb_char150": {
        "srnn": (1024, 1e-4, None, 0.9, None, None, "random"),
        "srnn_exp": (1024, 5e-3, 1e-4, 0.9, None, None, "cayley"),
        "srnn_nn": (1024, 8e-4, 8e-5, 0.9, 1.0, 1e-4, "cayley"),
    },
    "ptb_char300": {  # "as bptt 150, except sRNN (nn)"
        "srnn": (1024, 1e-4, None, 0.9, None, None, "random"),
        "srnn_exp": (1024, 5e-3, 1e-4, 0.9, None, None, "cayley"),
        "srnn_nn": (1024, 8e-4, 6e-5, 0.9, 1e-4, 1e-4, "cayley"),
    },
    "copy": {
        "srnn": (128, 2e-4, None, 0.99, None, None, "random"),
        "srnn_exp": (128, 1e-3, 1e-4, 0.99, None, None, "henaff"),
        "srnn_nn": (128, 5e-4, 1e-6, 0.99, 1e-4, 1e-4, "henaff"),
    },
}

# Stair README (2022): the entries it changes. The README also gives lr_orth values for the plain sRNN (psMNIST
# 2e-4, PTB-150 8e-4, PTB-300 8e-5), which has no orthogonal parameters, so they are not part of the seed points.
CHANGES_2022: dict[str, dict[str, dict[str, float]]] = {
    "psmnist": {"srnn": {"lr": 5e-5}, "srnn_exp": {"lr": 4.5e-4}, "srnn_nn": {"lr": 3e-4}},
    "ptb_char150": {"srnn": {"lr": 3e-4}, "srnn_exp": {"lr": 4.5e-3}, "srnn_nn": {"lr": 8.5e-4, "delta": 1e-4}},
    "ptb_char300": {"srnn": {"lr": 2e-4}, "srnn_exp": {"lr": 6e-3}, "srnn_nn": {"lr": 2e-4, "delta": 1.0}},
}
SRNN_LR_ORTH_2022 = {"psmnist": 2e-4, "ptb_char150": 8e-4, "ptb_char300": 8e-5}  # sic, unused (see above)

BEST_RHO_2022: dict[str, dict[str, str]] = {
    "psmnist": {"srnn": "alpha", "srnn_exp": "alpha", "srnn_nn": "n"},
    "ptb_char150": {"srnn": "n2", "srnn_exp": "expn", "srnn_nn": "alpha"},
    "ptb_char300": {"srnn": "alpha", "srnn_exp": "alpha", "srnn_nn": "expn"},
    "copy": {"srnn": "expn", "srnn_exp": "expn", "srnn_nn": "alpha"},
}

# README example commands (sMNIST_nvar.py --permute): model -> (rho, N, lr, lr_orth, alpha, delta, Tdecay, rinit)
README_COMMANDS: dict[str, tuple] = {
    "srnn": ("log2n", 512, 5e-5, None, 0.9, None, None, "random"),
    "srnn_exp": ("expn", 512, 5e-4, 5e-5, 0.99, None, None, "cayley"),
    "srnn_nn": ("n2", 512, 2e-4, 2e-5, 0.99, 0.1, 1e-4, "cayley"),
}

# Baseline rows: task -> model -> (N, lr, lr_orth, alpha, delta, Tdecay, rinit, source). The README lists them as
# matching the nnRNN README; psMNIST and PTB expRNN/nnRNN are quoted in PAPERS 5.5, the rest come from the nnRNN table.
_NN = "nnRNN table (PAPERS 5.5), which the Stair README baselines match"
_QUOTED = "Stair README baseline rows (PAPERS 5.5 'Examples')"
BASELINE_ROWS: dict[str, dict[str, tuple]] = {
    "psmnist": {
        "rnn": (512, 1e-4, None, 0.9, None, None, "xavier", _QUOTED),
        "rnn_orth": (512, 5e-5, None, 0.99, None, None, "random", _QUOTED + " (random orthogonal, nnRNN table)"),
        "exprnn": (512, 5e-4, 5e-5, 0.99, None, None, "cayley", _QUOTED),
        "nnrnn": (512, 2e-4, 2e-5, 0.99, 0.1, 1e-4, "cayley", _QUOTED),
        "lstm": (512, 5e-4, None, 0.99, None, None, None, _NN + " (README alpha 0.99 for N=512)"),
    },
    "ptb_char": {
        "exprnn": (1024, 5e-3, 1e-4, 0.9, None, None, "cayley", _QUOTED),
        "nnrnn": (1024, 8e-4, 8e-5, 0.9, 1.0, 1e-4, "cayley",
                  _QUOTED + "; Tdecay not quoted, language_task.py default 1e-4"),
        "rnn": (1024, 1e-5, None, 0.9, None, None, "xavier", _NN),
        "rnn_orth": (1024, 1e-4, None, 0.9, None, None, "cayley", _NN),
    },
    "copy": {
        "nnrnn": (128, 5e-4, 1e-6, 0.99, 1e-4, 1e-6, "henaff", _NN),
        "exprnn": (128, 1e-3, 1e-4, 0.99, None, None, "henaff", _NN),
        "lstm": (128, 5e-4, None, 0.99, None, None, None, _NN),
        "rnn_orth": (128, 2e-4, None, 0.99, None, None, "random", _NN),
        "rnn": (128, 1e-3, None, 0.9, None, None, "xavier", _NN),
    },
}


def _row(model: str, n: int, lr: float, lr_orth: float | None, alpha: float, delta: float | None,
         tdecay: float | None, rinit: str | None, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"model": model, "hidden_size": n, "lr": lr, "alpha": alpha, **extra}
    if model in NONNORMAL:  # the code's nnRNN cells never apply their input initialiser (spaces.nnrnn)
        cfg.update(NNRNN_AS_RUN)
    for k, v in (("lr_orth", lr_orth), ("delta", delta), ("Tdecay", tdecay), ("rinit", rinit)):
        if v is not None:
            cfg[k] = v
    return cfg


def seeds_for(key: str) -> tuple[SeedPoint, ...]:
    """All seed points of a task key (psmnist, ptb_char150, ptb_char300, copy)."""
    out = []
    for model, row in TABLE_2021[key].items():
        rho = BEST_RHO_2022[key][model]
        cfg = _row(model, *row, rho=rho)
        out.append(SeedPoint(cfg, f"{S21}, {key} {model}; rho={rho}: {BEST_RHO}", name=f"2021-{model}"))
        if model in CHANGES_2022.get(key, {}):
            change = CHANGES_2022[key][model]
            note = ", ".join(f"{k} {v:g}" for k, v in change.items())
            if model == "srnn":
                note += f" (README's lr_orth {SRNN_LR_ORTH_2022[key]:g} is unused: the sRNN has no orthogonal group)"
            out.append(SeedPoint({**cfg, **change}, f"{S22}, {key} {model}: 2021 row with {note}; rho={rho}: "
                                 f"{BEST_RHO}", name=f"2022-{model}"))
    if key == "psmnist":
        for model, (rho, *row) in README_COMMANDS.items():
            out.append(SeedPoint(_row(model, *row, rho=rho), f"Stair README example command, sMNIST_nvar.py "
                                 f"--permute --net-type {model}", name=f"command-{model}"))
    for model, (*row, source) in BASELINE_ROWS["ptb_char" if key.startswith("ptb") else key].items():
        out.append(SeedPoint(_row(model, *row), f"{key} {model}: {source}", name=f"baseline-{model}"))
    return tuple(out)


def _params(iinit_default: str) -> tuple[Param, ...]:
    return (
        lr_param(),
        lr_orth_param(ORTH),
        alpha_param(),
        delta_param(NONNORMAL),
        tdecay_param(NONNORMAL),
        rinit_param(RINIT, default="cayley"),
        *rinit_orth_param(RINIT, default="cayley"),
        iinit_param(RINIT, default=iinit_default),
        nonlin_param(NONLIN, default="modrelu"),
        Param("rho", "choice", choices=RHO, when={"model": STAIR},
              doc="the stair multiplier rho_k (--nvar); 'alpha' learns one scalar per step (needs seq_len)"),
    )


def _model_fixed(n: int, seq_len: int, alpha_init: float) -> dict[str, dict[str, Any]]:
    """Hidden size of every model; the stair cells also get the sequence length and the initial value of their
    per-step alpha (used by rho 'alpha': 1 for psMNIST and copy, 0.98 for PTB, PAPERS 5.2)."""
    stair = {"seq_len": seq_len, "alpha_init": alpha_init}
    return {m: {"hidden_size": n, **(stair if m in STAIR else {})} for m in MODELS}


NOTES = (
    "No Stair paper text is public: every number comes from the code and the two READMEs (PAPERS 5.1).",
    "Rows of the 2021 table carry the 2022 README's best rho; the 2021 README names none.",
    "The 2022 README's lr_orth for the plain sRNN (psMNIST 2e-4, PTB-150 8e-4, PTB-300 8e-5) is dropped: the sRNN "
    "has no orthogonal parameter group.",
    "Tdecay grid is UNCERTAIN (garbled in the nnRNN supplement).",
    "Seed points of srnn_nn and nnrnn set input_init 'torch_default': the code never applies its input initialiser "
    "to the nnRNN cells, so their U kept PyTorch's default Linear init (searched trials use iinit).",
    "rnn_orth is the nnRNN paper's RNN-orth (an RNN initialised orthogonal, trained freely); the Stair code's "
    "RNN-Orth is a spectrally normalised RNN (PAPERS 5.2), not implemented.",
)

PSMNIST = Space(
    name="stair/psmnist", paper=PAPER, task="psmnist", models=MODELS,
    params=_params(iinit_default="xavier"),
    fixed={"optimizer": "rmsprop", "num_layers": 1, "epochs": 10},
    task_options={"batch_size": 100},
    model_fixed=_model_fixed(512, 784, 1.0),
    seeds=seeds_for("psmnist"),
    budget=10, paper_budget=100,
    description="permuted sequential MNIST (784 steps, RandomState(1234) permutation), batch 100",
    smoke={"batch_size": 4, "hidden_size": 8, "epochs": 1},
    notes=NOTES,
)


def _ptb(bptt: int) -> Space:
    key = f"ptb_char{bptt}"
    return Space(
        name=f"stair/{key}", paper=PAPER, task="ptb_char", models=MODELS,
        params=_params(iinit_default="kaiming"),
        fixed={"optimizer": "rmsprop", "num_layers": 1, "embed_dim": 200, "epochs": 10},
        task_options={"bptt": bptt, "batch_size": 128},
        model_fixed=_model_fixed(1024, bptt, 0.98),
        seeds=seeds_for(key),
        budget=10, paper_budget=100,
        description=f"Penn Treebank characters, truncated BPTT {bptt} (rho restarts at each chunk), batch 128, "
                    "embedding 200",
        smoke={"bptt": 8, "seq_len": 8, "batch_size": 4, "eval_batch_size": 4, "hidden_size": 8, "embed_dim": 8,
               "epochs": 1},
        notes=NOTES,
    )


COPY = Space(
    name="stair/copy", paper=PAPER, task="copy_nnrnn", models=MODELS,
    params=_params(iinit_default="xavier"),
    fixed={"optimizer": "rmsprop", "num_layers": 1, "epochs": 15},
    task_options={"delay": 200, "batch_size": 10, "updates": 100},
    model_fixed=_model_fixed(128, 220, 1.0),
    seeds=seeds_for("copy"),
    budget=15, paper_budget=15,
    description="copying memory, delay 200 (length 220), batch 10; one reported iteration = 100 updates "
                "(paper: 1500 updates)",
    smoke={"delay": 8, "seq_len": 28, "updates": 1, "batch_size": 4, "n_val": 8, "n_test": 8, "hidden_size": 8,
           "epochs": 1},
    notes=NOTES,
)

SPACES = (PSMNIST, _ptb(150), _ptb(300), COPY)
