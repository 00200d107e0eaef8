"""expRNN: "Cheap Orthogonal Constraints in Neural Networks: A Simple Parametrization of the Orthogonal and
Unitary Group" (Lezcano-Casado & Martinez-Rubio, ICML 2019, arXiv 1901.08428).

Spaces ``exprnn/copy1000``, ``exprnn/copy2000``, ``exprnn/smnist`` and ``exprnn/pmnist`` with the settings of the
lezcano/expRNN README at its first commits (PAPERS 5.5): RMSprop for both parameter groups, lr_orth = lr / 10,
batch 128, 70 epochs on MNIST, Kaiming-normal input kernel, modReLU. An LSTM is included as the reference baseline
(no seed points: the README gives none for it).
"""
from __future__ import annotations

from .base import Param, SeedPoint, Space
from .nnrnn import alpha_param, iinit_param, lr_orth_param, lr_param, rinit_param

PAPER = "exprnn"
SRC = "lezcano/expRNN README (first commits, Jan 2019), PAPERS 5.5"
MODELS = ("exprnn", "lstm")

# README: hidden size -> (lr, lr_orth = lr / 10) for sequential and permuted MNIST, Cayley init
MNIST_LR = {"smnist": {170: (7e-4, 7e-5), 360: (5e-4, 5e-5), 512: (3e-4, 3e-5)},
            "pmnist": {170: (1e-3, 1e-4), 360: (7e-4, 7e-5), 512: (5e-4, 5e-5)}}
COPY_ROW = {"hidden_size": 190, "rinit": "henaff", "lr": 2e-4, "lr_orth": 2e-5}

NOTES = (
    "RMSprop alpha is not given by the README: the default 0.99 is PyTorch's [derived].",
    "The expRNN paper's accuracies (pMNIST ~94.0/96.2/96.6, sMNIST ~98.0/98.4/98.7) are from memory: UNCERTAIN.",
)


def _params(rinit_default: str) -> tuple[Param, ...]:
    return (
        lr_param(),
        lr_orth_param(("exprnn",)),
        alpha_param(default=0.99),
        rinit_param(("exprnn",), default=rinit_default, choices=("henaff", "cayley", "random", "xavier")),
        iinit_param(("exprnn",), default="kaiming"),
    )


def _copy(length: int) -> Space:
    return Space(
        name=f"exprnn/copy{length}", paper=PAPER, task="copy_exprnn", models=MODELS,
        params=_params("henaff"),
        fixed={"optimizer": "rmsprop", "num_layers": 1, "hidden_size": 190, "epochs": 20},
        task_options={"lag": length, "batch_size": 128},
        seeds=(SeedPoint({"model": "exprnn", **{k: v for k, v in COPY_ROW.items() if k != "hidden_size"}},
                         f"{SRC}: copy L in {{1000, 2000}}, hidden 190, henaff, lr 2e-4, lr_orth 2e-5",
                         name="exprnn"),),
        budget=20,
        description=f"expRNN copying memory: one-hot input, lag L={length}, loss on every step",
        smoke={"lag": 8, "batch_size": 4, "updates": 1, "n_val": 8, "n_test": 8, "hidden_size": 8, "epochs": 1},
        notes=NOTES + ("Copy batch size and number of iterations are not in the README: batch 128 as for MNIST "
                       "(UNCERTAIN).",),
    )


def _mnist(key: str, task: str) -> Space:
    lrs = MNIST_LR[key]
    return Space(
        name=f"exprnn/{key}", paper=PAPER, task=task, models=MODELS,
        params=(Param("hidden_size", "choice", choices=tuple(lrs), doc="the README's three model sizes"),)
        + _params("cayley"),
        fixed={"optimizer": "rmsprop", "num_layers": 1, "epochs": 10},
        task_options={"batch_size": 128},
        seeds=tuple(SeedPoint({"model": "exprnn", "hidden_size": n, "lr": lr, "lr_orth": lr_orth, "rinit": "cayley"},
                              f"{SRC}: {key} hidden {n}, lr {lr:g}, lr_orth = lr/10, Cayley", name=f"exprnn-{n}")
                    for n, (lr, lr_orth) in lrs.items()),
        budget=10, paper_budget=70,
        description=("sequential" if key == "smnist" else "permuted") + " MNIST, batch 128 (README: 70 epochs)",
        smoke={"batch_size": 4, "hidden_size": 8, "epochs": 1},
        notes=NOTES + (("pMNIST runs on this project's psmnist task (the nnRNN/Stair permutation and split), "
                        "not necessarily expRNN's.",) if key == "pmnist" else ()),
    )


SPACES = (_copy(1000), _copy(2000), _mnist("smnist", "smnist"), _mnist("pmnist", "psmnist"))
