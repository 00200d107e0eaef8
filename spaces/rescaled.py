"""Rescaled Glorot: "Revisiting Glorot Initialization for Long-Range Linear Recurrences" (Bar, Seleznova,
Alexander, Kutyniok, Giryes, arXiv 2505.19827), code NogaBar/Rescaled_Glorot_for_RNN.

Spaces ``rescaled/scifar``, ``rescaled/listops`` and ``rescaled/imdb`` compare the linear diagonal complex RNN
(``diag_rnn``), the dense linear RNN (``linear_rnn``) and the LRU under the recurrent initialisations of the repo:
Glorot N(0, 1/N), halved Glorot N(0, 1/(2N)), rescaled Glorot (``fixed``: the std divided by c_N so the spectral
radius sits just below 1), identity, and for the diagonal RNN a uniform disk (the LRU keeps its ring init as a
further choice). Rescaled Glorot is undefined (NaN) for N <= 163, so every hidden size here is above that and
:func:`spaces.registry.validate` rejects a space or seed point that could pair ``A_init: fixed`` with N <= 163.

Seed points: the repo's README commands (PAPERS 1.5), all diag-rnn with ``--A_init fixed`` and 6 layers. The
paper's results tables could not be retrieved.
"""
from __future__ import annotations

from typing import Any

from .base import Param, SeedPoint, Space
from .lru import FIXED, common_params, ring_params

PAPER = "rescaled"
MODELS = ("diag_rnn", "linear_rnn", "lru")
SRC = "Rescaled_Glorot_for_RNN README command (diag-rnn, --A_init fixed, 6 layers), PAPERS 1.5"

# README table: task -> d_model, d_hidden, lr_factor, warmup epochs, epochs, batch, dropout
README: dict[str, dict[str, Any]] = {
    "scifar": {"embed_dim": 512, "hidden_size": 384, "lr_factor": 0.025, "warmup_epochs": 18, "epochs": 180,
               "batch_size": 50, "dropout": 0.1},
    "listops": {"embed_dim": 256, "hidden_size": 192, "lr_factor": 0.05, "warmup_epochs": 5, "epochs": 50,
                "batch_size": 32, "dropout": 0.0},
    "imdb": {"embed_dim": 192, "hidden_size": 256, "lr_factor": 0.025, "warmup_epochs": 7, "epochs": 65,
             "batch_size": 32, "dropout": 0.1},
}
# unlisted options keep the repo defaults (run_train.py): lr_base 1e-3, weight decay 0.05, batchnorm
REPO_DEFAULTS = {"lr": 1e-3, "weight_decay": 0.05, "lr_factor": 0.25, "r_min": 0.4, "r_max": 0.9, "max_phase": 3.14,
                 "A_init": "glorot", "num_layers": 4, "embed_dim": 256, "hidden_size": 128}
TASKS = {"scifar": "scifar", "listops": "listops", "imdb": "imdb_bytes"}
BUDGETS = {"scifar": 10, "listops": 5, "imdb": 5}

RESCALED_MIN_HIDDEN = 164  # c_N = 1 + sqrt(gamma_N / 4N) + ... needs gamma_N = ln(N / (2 pi (ln N)^2)) > 0

PARAMS = common_params(lr_factors=(0.025, 0.05, 0.1, 0.25, 0.5)) + (
    Param("A_init_diag", "choice", key="A_init", choices=("glorot", "halved_glorot", "fixed", "identity", "uniform"),
          when={"model": ("diag_rnn",)}, default="glorot",
          doc="diagonal RNN: eigenvalues of a Glorot / halved / rescaled-Glorot matrix, all ones, or the uniform disk"),
    Param("A_init_dense", "choice", key="A_init", choices=("glorot", "halved_glorot", "fixed", "identity"),
          when={"model": ("linear_rnn",)}, default="glorot",
          doc="dense linear RNN: A ~ Glorot, halved Glorot, rescaled Glorot, or the identity"),
    Param("A_init_lru", "choice", key="A_init", choices=("ring", "glorot", "halved_glorot", "fixed"),
          when={"model": ("lru",)}, default="ring",
          doc="LRU: the ring init, or the eigenvalues of a Glorot / halved / rescaled-Glorot matrix"),
) + ring_params({"model": ("lru",)}, r_min_default=0.4, r_max_default=0.9,
                max_phase_default=3.14) + (
    Param("embed_dim", "choice", choices=(192, 256, 512), doc="model width H (d_model)"),
    Param("hidden_size", "choice", choices=(192, 256, 384, 512),
          doc="state width N (d_hidden); all above 163, where rescaled Glorot is defined"),
)

NOTES = (
    "The paper's results tables could not be retrieved: no published accuracies for these spaces.",
    "The repo's block applies GELU twice (Dropout(GELU(y)) then GELU); this project's residual block applies it once.",
    "The diagonal RNN's 'uniform' init has a repo bug (phase = 2 pi |a|); which behaviour the cell keeps is the "
    "cell's choice.",
    "warmup_epochs is 10% of the space's budget, as in the README commands (18/180, 5/50, 7/65).",
    "IMDB: the repo validates on the test set; this project's task carves validation from train.",
    "The openreview venue and decision of the paper are UNCERTAIN.",
)


def _seed(key: str) -> SeedPoint:
    row = README[key]
    cfg = {"model": "diag_rnn", "A_init": "fixed", "num_layers": 6, "lr": REPO_DEFAULTS["lr"],
           "weight_decay": REPO_DEFAULTS["weight_decay"],
           **{k: row[k] for k in ("embed_dim", "hidden_size", "lr_factor", "batch_size", "dropout")}}
    return SeedPoint(cfg, f"{SRC}, {key}: d_model {row['embed_dim']}, d_hidden {row['hidden_size']}, lr_factor "
                          f"{row['lr_factor']:g}, warmup {row['warmup_epochs']}, {row['epochs']} epochs, batch "
                          f"{row['batch_size']}, dropout {row['dropout']:g}; lr 1e-3 and wd 0.05 are repo defaults",
                     name="readme", run_length={"epochs": row["epochs"], "warmup_epochs": row["warmup_epochs"]})


def _space(key: str) -> Space:
    budget = BUDGETS[key]
    return Space(
        name=f"rescaled/{key}", paper=PAPER, task=TASKS[key], models=MODELS, params=PARAMS,
        fixed={**FIXED, "num_layers": 6, "warmup_epochs": budget // 10, "epochs": budget},
        task_options={"batch_size": README[key]["batch_size"]},
        seeds=(_seed(key),), budget=budget, paper_budget=README[key]["epochs"],
        description={"scifar": "sequential CIFAR-10, colour (1024 x 3)", "listops": "LRA ListOps (length 2048)",
                     "imdb": "LRA Text: IMDB bytes (length 4096)"}[key] + f"; batch {README[key]['batch_size']}",
        # A_init glorot: the smoke hidden size (8) is far below where rescaled Glorot is defined
        smoke={"batch_size": 4, "hidden_size": 8, "embed_dim": 8, "num_layers": 1, "epochs": 1, "warmup_epochs": 0,
               "A_init": "glorot", **({"length": 16, "n_val": 8} if key == "imdb" else {})},
        notes=NOTES,
    )


SPACES = tuple(_space(k) for k in ("scifar", "listops", "imdb"))
