"""UR-LSTM: "Improving the Gating Mechanism of Recurrent Neural Networks" (Gu, Gulcehre, Paine, Hoffman, Pascanu,
ICML 2020, arXiv 1910.09890).

The official code was never released. The fixed settings and seed points are the YAML defaults of the unofficial
PyTorch reimplementation r0mainK/ur-lstm (PAPERS 3.2), whose author says they follow the paper (with doubt on the
LM embedding size); the paper's own hidden sizes, batch sizes and step counts are UNCERTAIN. Models: UR-LSTM and
its ablations U-LSTM (uniform gate init only) and R-LSTM (refine gate only), and the LSTM with a constant forget
bias. Spaces: ``urlstm/copy``, ``urlstm/adding``, ``urlstm/smnist``, ``urlstm/psmnist``, ``urlstm/scifar``,
``urlstm/wikitext103``.
"""
from __future__ import annotations

from typing import Any

from .base import Param, SeedPoint, Space

PAPER = "urlstm"
MODELS = ("ur_lstm", "u_lstm", "r_lstm", "lstm")
FORGET_BIAS = ("r_lstm", "lstm")  # constant forget-gate bias; UR-/U-LSTM use the uniform gate init instead
SRC = "r0mainK/ur-lstm YAML defaults (reimplementation, not tuned values), PAPERS 3.2"

# r0mainK: AdamW lr 1e-3 with PyTorch's default weight decay 0.01, gradient norm clipped to 1, forget bias 1.0
DEFAULTS = {"lr": 1e-3, "weight_decay": 0.01, "forget_bias": 1.0}

PARAMS = (
    Param("lr", "loguniform", 1e-4, 1e-2, grid=(3e-4, 1e-3, 3e-3), default=1e-3, doc="AdamW learning rate"),
    Param("weight_decay", "choice", choices=(0.0, 1e-4, 1e-3, 0.01, 0.1), default=0.01,
          doc="AdamW weight decay (0.01 is PyTorch's default, probably not the paper's)"),
    Param("forget_bias", "uniform", 0.0, 3.0, when={"model": FORGET_BIAS}, default=1.0,
          doc="constant forget-gate bias of the LSTM / R-LSTM ([derived] range around the configs' 1.0)"),
)

NOTES = (
    "The paper's text could not be retrieved: hidden sizes, batch sizes, steps and T follow the reimplementation "
    "and are UNCERTAIN as the paper's values.",
    "Seed points are the reimplementation's defaults (seed 22), the same for every model: not tuned values.",
    "The paper's chrono-init (C-), master-gate (-M) and ordered-neuron (O-) ablations are not in the space.",
)


def _seeds(task: str) -> tuple[SeedPoint, ...]:
    out = []
    for m in MODELS:
        cfg: dict[str, Any] = {"model": m, "lr": DEFAULTS["lr"], "weight_decay": DEFAULTS["weight_decay"]}
        if m in FORGET_BIAS:
            cfg["forget_bias"] = DEFAULTS["forget_bias"]
        out.append(SeedPoint(cfg, f"{SRC}, {task}: AdamW lr 1e-3 (weight decay 0.01), clip 1, seed 22"
                             + (", forget_bias 1.0" if m in FORGET_BIAS else ""), name=f"r0mainK-{m}"))
    return tuple(out)


def _space(key: str, task: str, *, fixed: dict[str, Any], task_options: dict[str, Any], budget: int,
           paper_budget: int | None, description: str, smoke: dict[str, Any], notes: tuple[str, ...] = ()) -> Space:
    return Space(
        name=f"urlstm/{key}", paper=PAPER, task=task, models=MODELS, params=PARAMS,
        fixed={"optimizer": "adamw", "grad_clip": 1.0, "num_layers": 1, **fixed, "epochs": budget},
        task_options=task_options, seeds=_seeds(key), budget=budget, paper_budget=paper_budget,
        description=description, smoke={"epochs": 1, "batch_size": 4, "hidden_size": 8, **smoke}, notes=NOTES + notes,
    )


_IMAGE_NOTE = ("r0mainK flattens all hidden states into Linear -> ReLU(256) -> Linear(10); this project's model "
               "reads out the task's readout (the last step) through one linear layer.",)

SPACES = (
    _space("copy", "copy_urlstm", fixed={"hidden_size": 256}, task_options={"batch_size": 10, "updates": 100},
           budget=20, paper_budget=100,
           description="UR-LSTM copy: 10 tokens, lag 480, 10 cue steps (length 500), CE on the last 10 outputs; "
                       "batch 10; one reported iteration = 100 updates (config: 10,000 steps)",
           smoke={"lag": 8, "updates": 1, "n_val": 8, "n_test": 8}),
    _space("adding", "adding", fixed={"hidden_size": 256}, task_options={"batch_size": 10, "updates": 100},
           budget=20, paper_budget=1000,
           description="adding problem, length 2000, MSE on the last output; batch 10; one reported iteration = "
                       "100 updates (config: 100,000 steps)",
           smoke={"length": 16, "updates": 1, "n_val": 8, "n_test": 8}),
    _space("smnist", "smnist", fixed={"hidden_size": 1024}, task_options={"batch_size": 50}, budget=10,
           paper_budget=150, description="sequential MNIST (784 x 1, pixels not normalised), batch 50",
           smoke={}, notes=_IMAGE_NOTE),
    _space("psmnist", "psmnist", fixed={"hidden_size": 1024}, task_options={"batch_size": 50}, budget=10,
           paper_budget=150, description="permuted sequential MNIST, one fixed permutation, batch 50",
           smoke={}, notes=_IMAGE_NOTE + ("r0mainK draws a different permutation per example (a bug); this "
                                          "project's psmnist uses one fixed permutation.",)),
    _space("scifar", "scifar", fixed={"hidden_size": 1024}, task_options={"batch_size": 50}, budget=10,
           paper_budget=150, description="sequential CIFAR-10 (1024 x 3), batch 50", smoke={}, notes=_IMAGE_NOTE),
    _space("wikitext103", "wikitext103", fixed={"hidden_size": 3072, "embed_dim": 1024, "dropout": 0.3},
           task_options={"batch_size": 128, "bptt": 128}, budget=3, paper_budget=100,
           description="WikiText-103 word LM, embedding 1024 (dropout 0.3), hidden 3072, batch 128, bptt 128",
           smoke={"bptt": 8, "eval_batch_size": 4, "embed_dim": 8},
           notes=("r0mainK projects the hidden state to 1024 and ties the decoder to the embedding; this project's "
                  "model has no projection or tying. Its dropout 0.3 is on the embedding; here 'dropout' is each "
                  "cell's recurrent dropout on the candidate (Semeniuta et al., as in the RRU paper's code; a fresh "
                  "mask per step, none between layers), a different place for the same rate.",
                  "The LM embedding size is the one value the reimplementation's author doubts.")),
)
