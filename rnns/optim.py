"""Optimisers, parameter groups and learning-rate schedules.

Cells tag their parameters (see :mod:`rnns.base`); this module turns tags into optimiser groups:

| tag        | learning rate      | weight decay   | used by                                   |
|------------|--------------------|----------------|-------------------------------------------|
| default    | lr                 | weight_decay   | everything untagged                       |
| orth       | lr_orth            | 0              | expRNN skew parameter, nnRNN's log P      |
| tdecay     | lr                 | Tdecay         | nnRNN's non-normal part T                 |
| recurrent  | lr * lr_factor     | 0              | LRU / diagonal RNN (nu, theta, gamma, B)  |
| no_decay   | lr                 | 0              | norms, biases where a paper says so       |

Optimisers are registered by name; other modules (the RRU recipe) add theirs with ``@register_optimizer``.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from .errors import ConfigError, unknown

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {}
OPTIM_OPTIONS = ("optimizer", "lr", "lr_orth", "alpha", "betas", "momentum", "eps", "weight_decay", "Tdecay",
                 "lr_factor", "clip_multiplier")
SCHEDULE_OPTIONS = ("schedule", "warmup_epochs", "lr_min")


def register_optimizer(name: str):
    def deco(fn):
        OPTIMIZERS[name] = fn
        return fn

    return deco


@register_optimizer("rmsprop")
def _rmsprop(groups, *, alpha=0.99, eps=1e-8, momentum=0.0, **_):
    return torch.optim.RMSprop(groups, alpha=alpha, eps=eps, momentum=momentum)


@register_optimizer("adam")
def _adam(groups, *, betas=(0.9, 0.999), eps=1e-8, **_):
    return torch.optim.Adam(groups, betas=tuple(betas), eps=eps)


@register_optimizer("adamw")
def _adamw(groups, *, betas=(0.9, 0.999), eps=1e-8, **_):
    return torch.optim.AdamW(groups, betas=tuple(betas), eps=eps)


@register_optimizer("sgd")
def _sgd(groups, *, momentum=0.0, **_):
    return torch.optim.SGD(groups, momentum=momentum)


def group_settings(tag: str, *, lr: float, lr_orth: float | None, weight_decay: float, Tdecay: float,
                   lr_factor: float) -> dict[str, float]:
    if tag == "default":
        return {"lr": lr, "weight_decay": weight_decay}
    if tag == "orth":
        if lr_orth is None:
            raise ConfigError("this model has orthogonal parameters: set lr_orth (papers use about lr/10)")
        return {"lr": lr_orth, "weight_decay": 0.0}
    if tag == "tdecay":
        return {"lr": lr, "weight_decay": Tdecay}
    if tag == "recurrent":
        return {"lr": lr * lr_factor, "weight_decay": 0.0}
    if tag == "no_decay":
        return {"lr": lr, "weight_decay": 0.0}
    raise ValueError(f"unknown parameter-group tag {tag!r}")


def build_optimizer(model: nn.Module, *, optimizer: str = "rmsprop", lr: float = 1e-3, lr_orth: float | None = None,
                    weight_decay: float = 0.0, Tdecay: float = 0.0, lr_factor: float = 1.0, **kw: Any):
    """One optimiser over the model's tagged groups (each group remembers its tag under 'tag')."""
    # the ensure-registered import: optimisers defined in other rnns modules register on import
    from .registry import _load_all

    _load_all()
    if optimizer not in OPTIMIZERS:
        raise unknown("optimizer", optimizer, OPTIMIZERS)
    for name, v in (("lr", lr), ("lr_orth", lr_orth), ("weight_decay", weight_decay), ("Tdecay", Tdecay),
                    ("lr_factor", lr_factor)):
        if v is not None and (not math.isfinite(v) or v < 0 or (name in ("lr", "lr_orth", "lr_factor") and v == 0)):
            raise ConfigError(f"{name} must be a positive finite number, got {v}")
    tagged = model.param_groups() if hasattr(model, "param_groups") else {"default": list(model.parameters())}
    groups = []
    for tag, params in tagged.items():
        params = [p for p in params if p.requires_grad]
        if params:
            s = group_settings(tag, lr=lr, lr_orth=lr_orth, weight_decay=weight_decay, Tdecay=Tdecay, lr_factor=lr_factor)
            groups.append({"params": params, "tag": tag, **s})
    return OPTIMIZERS[optimizer](groups, **kw)


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, lr_min_ratio: float) -> float:
    """LR multiplier after ``step`` optimiser steps: linear warmup to 1, then cosine down to ``lr_min_ratio``.

        step < W:       (step + 1) / W                                    W = warmup_steps (1/W, ..., 1)
        W <= step:      r + (1 - r) (1 + cos(pi min(1, (step - W) / (total_steps - W)))) / 2

    so the multiplier is exactly ``lr_min_ratio`` at ``step == total_steps`` and stays there after. Unlike
    minimal-LRU's code (whose cosine counter keeps the warmup steps and so reaches lr_min ``warmup_steps`` early),
    the cosine phase here counts from the end of the warmup.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return lr_min_ratio + (1 - lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def build_schedule(opt: torch.optim.Optimizer, *, schedule: str = "none", total_steps: int = 1, warmup_steps: int = 0,
                   lr_min: float = 1e-7):
    """Per-step LambdaLR (call ``.step()`` after every optimiser step), or None for a constant learning rate.

    Every group follows the same multiplier, so the largest group learning rate ends at ``lr_min`` and the others
    (the ``recurrent`` group at lr * lr_factor) end at the same fraction of their own.
    """
    if schedule == "none":
        return None
    if schedule != "cosine":
        raise unknown("schedule", schedule, ["none", "cosine"])
    if total_steps < 1 or warmup_steps < 0:
        raise ConfigError(f"schedule needs total_steps >= 1 and warmup_steps >= 0, "
                          f"got {total_steps} and {warmup_steps}")
    if not (math.isfinite(lr_min) and lr_min >= 0):
        raise ConfigError(f"lr_min must be a non-negative finite number, got {lr_min}")
    base = max(g["lr"] for g in opt.param_groups)
    ratio = min(1.0, lr_min / base) if base > 0 else 0.0
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, warmup_steps=warmup_steps, total_steps=total_steps, lr_min_ratio=ratio))
