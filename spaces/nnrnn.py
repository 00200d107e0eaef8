"""nnRNN: "Non-normal Recurrent Neural Network (nnRNN): learning long time dependencies while improving
expressivity with transient dynamics" (Kerg et al., NeurIPS 2019, arXiv 1905.12080).

Spaces ``nnrnn/copy``, ``nnrnn/psmnist``, ``nnrnn/ptb_char150`` and ``nnrnn/ptb_char300``: the supplement's grid
(§A.4, PAPERS 5.5) over the nnRNN and its baselines, with every row of the supplement's hyperparameter table
(and the repo README's updated runs) as seed points. EURNN has no cell here, so its rows are not seeds.

The parameter builders below are shared with :mod:`spaces.stair` and :mod:`spaces.exprnn`, which reuse the nnRNN
code base.
"""
from __future__ import annotations

from typing import Any

from .base import Param, SeedPoint, Space

# Which cells take which option (the registry names of rnns/). Stair cells wrap a base cell and take its options.
ORTH = ("exprnn", "nnrnn", "srnn_exp", "srnn_nn")  # an orthogonal parameter group trained at lr_orth
NONNORMAL = ("nnrnn", "srnn_nn")  # delta penalty on the rotation scales, Tdecay on the non-normal part T
RINIT = ("rnn", "rnn_orth", "exprnn", "nnrnn", "srnn", "srnn_exp", "srnn_nn")  # recurrent initialiser
IINIT = RINIT  # input-weight initialiser
NONLIN = ("rnn", "rnn_orth", "srnn")  # expRNN and nnRNN always use modReLU

PAPER = "nnrnn"
SRC = "PAPERS 5.5, nnRNN table"

# [derived] a 1-2-5 grid over the published learning rates, for grid search
LR_GRID = (1e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)
LR_ORTH_GRID = (1e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3)
DELTA_GRID = (0.0, 1e-4, 1e-3, 1e-2, 0.1, 0.15, 1.0, 10.0)  # supplement §A.4
TDECAY_GRID = (0.0, 1e-4, 1e-5, 1e-6)  # supplement §A.4, garbled in extraction: UNCERTAIN
ALPHA_GRID = (0.5, 0.9, 0.99)  # RMSprop smoothing constant, supplement §A.4

# budgets of the supplement's "same number of parameters" comparisons (Fig. 4; PTB from the README)
BUDGET = {"copy": 18_900, "psmnist": 269_000, "ptb_char": 1_320_000}


def lr_param(low: float = 1e-5, high: float = 1e-2, default: float | None = None) -> Param:
    return Param("lr", "loguniform", low, high, grid=tuple(g for g in LR_GRID if low <= g <= high), default=default,
                 doc="learning rate of the main optimiser; supplement range [1e-4, 1e-2], widened to 1e-5 to hold "
                     "the published RNN / RNN-orth rows")


def lr_orth_param(models: tuple[str, ...]) -> Param:
    return Param("lr_orth", "loguniform", 1e-6, 1e-3, when={"model": models}, grid=LR_ORTH_GRID,
                 doc="learning rate of the orthogonal parameter group (expRNN skew / nnRNN log P); the papers keep it "
                     "about lr/10")


def alpha_param(models: tuple[str, ...] | None = None, default: float | None = None) -> Param:
    """RMSprop's alpha; ``models``: those trained with RMSprop when not all are."""
    return Param("alpha", "choice", choices=ALPHA_GRID, when={"model": models} if models else {}, default=default,
                 doc="RMSprop smoothing constant" + (" (the models trained with RMSprop)" if models else ""))


def delta_param(models: tuple[str, ...]) -> Param:
    return Param("delta", "choice", choices=DELTA_GRID, when={"model": models},
                 doc="weight of the penalty delta * sum (alpha_i - 1)^2 on the rotation scales (--alam)")


def tdecay_param(models: tuple[str, ...]) -> Param:
    return Param("Tdecay", "choice", choices=TDECAY_GRID, when={"model": models},
                 doc="L2 weight decay on the non-normal part T (grid UNCERTAIN: garbled in the supplement)")


def rinit_param(models: tuple[str, ...], default: str | None = None,
                choices: tuple[str, ...] = ("random", "cayley", "henaff", "xavier")) -> Param:
    return Param("rinit", "choice", choices=choices, when={"model": tuple(m for m in models if m != "rnn_orth")},
                 default=default,
                 doc="recurrent init: random orthogonal, Cayley, Henaff, or Glorot normal (tried for the RNN)")


def rinit_orth_param(models: tuple[str, ...], default: str | None = None) -> tuple[Param, ...]:
    """RNN-orth is orthogonal by definition: its recurrent init is one of the orthogonal ones (same key, rinit)."""
    if "rnn_orth" not in models:
        return ()
    return (Param("rinit_orth", "choice", choices=("random", "cayley", "henaff"), when={"model": ("rnn_orth",)},
                  default=default if default in ("random", "cayley", "henaff") else "random", key="rinit",
                  doc="RNN-orth's recurrent init: random orthogonal, Cayley or Henaff"),)


def iinit_param(models: tuple[str, ...], default: str) -> Param:
    return Param("iinit", "choice", choices=("xavier", "kaiming"), when={"model": models}, default=default,
                 doc="input-weight init: Glorot normal or Kaiming normal")


def nonlin_param(models: tuple[str, ...], default: str = "modrelu") -> Param:
    return Param("nonlin", "choice", choices=("modrelu", "tanh", "relu", "none"), when={"model": models},
                 default=default, doc="nonlinearity of the plain RNN (modReLU in the nnRNN/Stair code)")


# What the nnRNN / Stair code ran for its nnRNN cells, set on their published seed points: the code never applies
# its input initialiser to the nnRNN's U (--iinit is ignored), so U keeps PyTorch's default nn.Linear init
# (docs/deviations/rnns-orthogonal.md). The cells' own default stays Glorot normal.
NNRNN_AS_RUN: dict[str, Any] = {"input_init": "torch_default"}
AS_RUN = "; U at PyTorch's default Linear init, as the code ran (its --iinit is never applied to the nnRNN)"


def seed(name: str, model: str, source: str, **config: Any) -> SeedPoint:
    """A seed point of ``model``: the values its source gives and where they come from."""
    return SeedPoint(config={"model": model, **config}, source=source, name=name)


def budget_row(name: str, model: str, n_paper: int, task: str, source: str, **config: Any) -> SeedPoint:
    """A "same number of parameters" row: the trainer solves the hidden size for the budget."""
    return seed(name, model, f"{source}; fixed-parameter variant (paper N={n_paper})", hidden_size=None,
                param_budget=BUDGET[task], **config)


def _hidden(models: tuple[str, ...], n: int) -> dict[str, dict[str, Any]]:
    """The paper's hidden size per model; the RNNs use modReLU as in the nnRNN code (the rnn cell defaults to tanh)."""
    out: dict[str, dict[str, Any]] = {m: {"hidden_size": n} for m in models}
    for m in NONLIN:
        if m in out:
            out[m]["nonlin"] = "modrelu"
    return out


def _params(rinit_default: str, iinit_default: str, rmsprop: tuple[str, ...] | None = None) -> tuple[Param, ...]:
    models = ("nnrnn", "exprnn", "rnn", "rnn_orth")
    return (
        lr_param(),
        lr_orth_param(tuple(m for m in ORTH if m in models)),
        alpha_param(rmsprop),
        delta_param(("nnrnn",)),
        tdecay_param(("nnrnn",)),
        rinit_param(models, default=rinit_default),
        *rinit_orth_param(models, default=rinit_default),
        iinit_param(models, default=iinit_default),
    )


NOTES = (
    "EURNN rows of the table are not seed points: no EURNN cell is implemented.",
    "Tdecay grid {0, 1e-4, 1e-5, 1e-6} is UNCERTAIN (garbled in the supplement PDF extraction).",
    "lr range widened from the supplement's [1e-4, 1e-2] down to 1e-5 so the published RNN (1e-5, PTB) and "
    "RNN-orth (5e-5, psMNIST) rows lie inside it.",
    "nnRNN seed points set input_init 'torch_default': the code never applies its input initialiser to the nnRNN, "
    "so U kept PyTorch's default Linear init (searched trials use iinit).",
)

COPY = Space(
    name="nnrnn/copy", paper=PAPER, task="copy_nnrnn",
    models=("nnrnn", "exprnn", "lstm", "rnn_orth", "rnn"),
    params=_params(rinit_default="henaff", iinit_default="xavier"),
    fixed={"optimizer": "rmsprop", "num_layers": 1, "epochs": 15},
    task_options={"delay": 200, "batch_size": 10, "updates": 100},
    model_fixed=_hidden(("nnrnn", "exprnn", "lstm", "rnn_orth", "rnn"), 128),
    seeds=(
        seed("nnrnn", "nnrnn", f"{SRC}, copy T=200: supplement text (and Stair README) init Henaff{AS_RUN}",
             alpha=0.99, lr=5e-4, lr_orth=1e-6, delta=1e-4, Tdecay=1e-6, rinit="henaff", **NNRNN_AS_RUN),
        seed("nnrnn-readme", "nnrnn", f"{SRC}, copy T=200: nnRNN repo README init Cayley{AS_RUN}",
             alpha=0.99, lr=5e-4, lr_orth=1e-6, delta=1e-4, Tdecay=1e-6, rinit="cayley", **NNRNN_AS_RUN),
        seed("exprnn", "exprnn", f"{SRC}, copy T=200, N=128", alpha=0.99, lr=1e-3, lr_orth=1e-4, rinit="henaff"),
        budget_row("exprnn-budget", "exprnn", 176, "copy", f"{SRC}, copy T=200",
                   alpha=0.99, lr=1e-3, lr_orth=1e-4, rinit="henaff"),
        seed("lstm", "lstm", f"{SRC}, copy T=200, N=128 (Glorot normal)", alpha=0.99, lr=5e-4),
        budget_row("lstm-budget", "lstm", 63, "copy", f"{SRC}, copy T=200", alpha=0.99, lr=1e-3),
        seed("rnn_orth", "rnn_orth", f"{SRC}, copy T=200", alpha=0.99, lr=2e-4, rinit="random"),
        seed("rnn", "rnn", f"{SRC}, copy T=200 (Glorot normal)", alpha=0.9, lr=1e-3, rinit="xavier"),
    ),
    budget=15, paper_budget=15,
    description="copying memory, delay T=200, batch 10; one reported iteration = 100 updates (paper: 1500 updates)",
    smoke={"delay": 8, "updates": 1, "batch_size": 4, "n_val": 8, "n_test": 8, "hidden_size": 8, "epochs": 1,
           "param_budget": None},
    notes=NOTES + ("copy budget 18.9K parameters (supplement Fig. 4) for the fixed-parameter rows.",),
)

PSMNIST = Space(
    name="nnrnn/psmnist", paper=PAPER, task="psmnist",
    models=("nnrnn", "exprnn", "lstm", "rnn_orth", "rnn"),
    params=_params(rinit_default="cayley", iinit_default="xavier"),
    fixed={"optimizer": "rmsprop", "num_layers": 1, "epochs": 10},
    task_options={"batch_size": 100},
    model_fixed=_hidden(("nnrnn", "exprnn", "lstm", "rnn_orth", "rnn"), 512),
    seeds=(
        seed("nnrnn", "nnrnn", f"{SRC}, psMNIST: supplement (lr 1.5e-4, lr_orth ~1.5e-5, delta 0.15){AS_RUN}",
             alpha=0.99, lr=1.5e-4, lr_orth=1.5e-5, delta=0.15, Tdecay=1e-4, rinit="cayley", **NNRNN_AS_RUN),
        seed("nnrnn-readme", "nnrnn", f"{SRC}, psMNIST: nnRNN repo README (lr 2e-4, lr_orth 2e-5, delta 0.1)"
             f"{AS_RUN}", alpha=0.99, lr=2e-4, lr_orth=2e-5, delta=0.1, Tdecay=1e-4, rinit="cayley", **NNRNN_AS_RUN),
        seed("exprnn", "exprnn", f"{SRC}, psMNIST, N=512", alpha=0.99, lr=5e-4, lr_orth=5e-5, rinit="cayley"),
        budget_row("exprnn-budget", "exprnn", 722, "psmnist", f"{SRC}, psMNIST",
                   alpha=0.99, lr=5e-4, lr_orth=5e-5, rinit="cayley"),
        seed("lstm", "lstm", f"{SRC}, psMNIST, N=512: supplement RMSprop alpha 0.9", alpha=0.9, lr=5e-4),
        seed("lstm-readme", "lstm", f"{SRC}, psMNIST, N=512: README RMSprop alpha 0.99", alpha=0.99, lr=5e-4),
        budget_row("lstm-budget", "lstm", 257, "psmnist", f"{SRC}, psMNIST", alpha=0.9, lr=5e-4),
        seed("rnn_orth", "rnn_orth", f"{SRC}, psMNIST", alpha=0.99, lr=5e-5, rinit="random"),
        seed("rnn", "rnn", f"{SRC}, psMNIST 'EURNN / RNN' row (init: Glorot normal as in the Stair baselines)",
             alpha=0.9, lr=1e-4, rinit="xavier"),
    ),
    budget=10, paper_budget=100,
    description="permuted sequential MNIST (784 steps, RandomState(1234) permutation, 50k/10k split), batch 100",
    smoke={"batch_size": 4, "hidden_size": 8, "epochs": 1, "param_budget": None},
    notes=NOTES + ("psMNIST budget 269K parameters (supplement Fig. 4) for the fixed-parameter rows.",
                   "nnRNN psMNIST lr_orth is printed as '~1.5e-5' in the supplement; 1.5e-5 is used."),
)


def _ptb(bptt: int) -> Space:
    tdecay, clip = (1e-5, 10.0) if bptt == 150 else (1e-6, 5.0)
    models = ("nnrnn", "exprnn", "rnn_orth", "rnn")
    src = f"{SRC}, PTB bptt {bptt} (README updated runs)"
    seeds = [
        seed("nnrnn", "nnrnn", f"{src}: Adam betas (0.0, 0.9), grad clip {clip:g}{AS_RUN}",
             lr=2e-3, lr_orth=2e-4, delta=1e-4, Tdecay=tdecay, rinit="cayley", **NNRNN_AS_RUN),
        seed("exprnn", "exprnn", f"{src}, N=1024: lr_orth not given, [derived] lr/10 as the expRNN author advises",
             alpha=0.9, lr=1e-3, lr_orth=1e-4, rinit="cayley"),
        seed("rnn", "rnn", f"{src} (Glorot normal)", alpha=0.9, lr=1e-5, rinit="xavier"),
        seed("rnn_orth", "rnn_orth", src, alpha=0.9, lr=1e-4, rinit="cayley"),
    ]
    if bptt == 150:  # the table gives the fixed-budget expRNN settings for bptt 150 only
        seeds.insert(2, budget_row("exprnn-budget", "exprnn", 1386, "ptb_char", src,
                                   alpha=0.9, lr=8e-3, lr_orth=8e-4, rinit="cayley"))
    model_fixed = _hidden(models, 1024)
    model_fixed["nnrnn"].update(optimizer="adam", betas=(0.0, 0.9), grad_clip=clip)
    return Space(
        name=f"nnrnn/ptb_char{bptt}", paper=PAPER, task="ptb_char",
        models=models,
        params=_params(rinit_default="cayley", iinit_default="kaiming", rmsprop=("exprnn", "rnn_orth", "rnn")),
        fixed={"optimizer": "rmsprop", "num_layers": 1, "embed_dim": 200, "epochs": 10},
        task_options={"bptt": bptt, "batch_size": 128},
        model_fixed=model_fixed,
        seeds=tuple(seeds),
        budget=10, paper_budget=100,
        description=f"Penn Treebank characters, truncated BPTT {bptt} with carried state, batch 128, embedding 200",
        smoke={"bptt": 8, "batch_size": 4, "eval_batch_size": 4, "hidden_size": 8, "embed_dim": 8, "epochs": 1,
               "param_budget": None},
        notes=NOTES + ("PTB fixed budget about 1.32M parameters (README).",
                       "expRNN N=1024 lr_orth is not in the table; the seed uses lr/10 [derived].")
        + (("The fixed-budget expRNN row (N=1386) is given for bptt 150 only.",) if bptt == 300 else ()),
    )


SPACES = (COPY, PSMNIST, _ptb(150), _ptb(300))
