"""A trial configuration is one flat dict; this module says which component owns each key.

Torch-only (no ray/optuna/mlflow), so ``spaces`` can validate a space against it when the space is loaded.

| owner     | keys                                                                                      |
|-----------|-------------------------------------------------------------------------------------------|
| identity  | task, model, seed                                                                         |
| task      | the task builder's keyword options (batch_size, delay, bptt, ...)                         |
| model     | rnns.model.MODEL_OPTIONS + the cell's own options; ``param_budget`` solves hidden_size     |
| optimiser | rnns.optim.OPTIM_OPTIONS                                                                  |
| schedule  | rnns.optim.SCHEDULE_OPTIONS (schedule, warmup_epochs, lr_min)                             |
| trainer   | epochs, grad_clip, max_loss (divergence threshold), max_batches (smoke runs: cap per split)|
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datasets.base import get_task
from rnns.errors import ConfigError, suggest
from rnns.model import MODEL_OPTIONS
from rnns.optim import OPTIM_OPTIONS, SCHEDULE_OPTIONS
from rnns.registry import get_cell

IDENTITY_KEYS = ("task", "model", "seed")
TRAIN_KEYS = ("epochs", "grad_clip", "max_loss", "param_budget", "max_batches")


@dataclass
class SplitConfig:
    task: str
    model: str
    seed: int
    task_opts: dict[str, Any]
    model_opts: dict[str, Any]
    optim_opts: dict[str, Any]
    sched_opts: dict[str, Any]
    train_opts: dict[str, Any]


def known_keys(task: str, model: str) -> set[str]:
    return (set(IDENTITY_KEYS) | set(TRAIN_KEYS) | set(get_task(task).defaults) | set(MODEL_OPTIONS)
            | set(get_cell(model).options()) | set(OPTIM_OPTIONS) | set(SCHEDULE_OPTIONS))


def split_config(cfg: dict[str, Any]) -> SplitConfig:
    """Split a flat trial config by owner; an unknown key is a ConfigError naming the nearest valid key.

    ``None`` values mean "not applicable" (a conditional parameter that was not sampled) and are dropped.
    """
    for k in ("task", "model"):
        if k not in cfg:
            raise ConfigError(f"configuration has no {k!r}")
    cfg = {k: v for k, v in cfg.items() if v is not None}
    task, model = cfg["task"], cfg["model"]
    tdefaults = get_task(task).defaults
    copts = get_cell(model).options()
    known = known_keys(task, model)
    for k in cfg:
        if k not in known:
            raise ConfigError(f"parameter {k!r} is not used by task {task!r} or model {model!r}{suggest(k, known)}")
    return SplitConfig(
        task=task, model=model, seed=int(cfg.get("seed", 0)),
        task_opts={k: v for k, v in cfg.items() if k in tdefaults},
        model_opts={k: v for k, v in cfg.items() if k in MODEL_OPTIONS or k in copts},
        optim_opts={k: v for k, v in cfg.items() if k in OPTIM_OPTIONS},
        sched_opts={k: v for k, v in cfg.items() if k in SCHEDULE_OPTIONS},
        train_opts={k: v for k, v in cfg.items() if k in TRAIN_KEYS},
    )
