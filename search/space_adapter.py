"""Turn a declarative :class:`spaces.base.Space` into what each searcher consumes.

- Optuna (TPE, CMA-ES, random): a define-by-run function. Conditional parameters are suggested only where their
  ``when`` condition holds, so TPE never sees a parameter that does not apply.
- Ray Tune random search: a ``param_space`` of Tune domains; conditional parameters are ``tune.sample_from``
  functions that return ``None`` where the condition fails (``None`` means "not applicable" to the trainer).
- Grid search: the explicit list of grid points (per model, only applicable parameters), evaluated in order.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

from spaces.base import Param, Space


class DefineByRun:
    """Picklable Optuna define-by-run function for a space (pickled with the searcher for ``--resume``)."""

    def __init__(self, space: Space, models: tuple[str, ...]):
        self.space = space
        self.models = tuple(models)

    def __call__(self, trial) -> dict[str, Any]:
        model = trial.suggest_categorical("model", list(self.models)) if len(self.models) > 1 else self.models[0]
        cfg: dict[str, Any] = {"model": model}
        for p in self.space.params:
            if not p.applies(cfg):
                continue
            cfg[p.name] = suggest(trial, p)
        constants = self.space.base_config(model)
        # returned constants join the sampled values in the trial config; a sampled value wins over a fixed one
        return {k: v for k, v in constants.items() if k not in cfg or (k == "model" and len(self.models) == 1)}


def suggest(trial, p: Param):
    if p.kind == "loguniform":
        return trial.suggest_float(p.name, p.low, p.high, log=True)
    if p.kind == "uniform":
        return trial.suggest_float(p.name, p.low, p.high)
    if p.kind == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high))
    return trial.suggest_categorical(p.name, list(p.choices))


def _draw(p: Param, rng) -> Any:
    if p.kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
    if p.kind == "uniform":
        return float(rng.uniform(p.low, p.high))
    if p.kind == "int":
        return int(rng.integers(int(p.low), int(p.high) + 1))
    return p.choices[int(rng.integers(len(p.choices)))]


class _Conditional:
    """A ``tune.sample_from`` body: the parameter's value where its condition holds, else None."""

    def __init__(self, p: Param):
        self.p = p

    def __call__(self, spec) -> Any:
        import numpy as np

        cfg = {k: spec.config[k] for k in self.p.when}
        if not self.p.applies(cfg):
            return None
        return _draw(self.p, np.random.default_rng(np.random.randint(2**31)))


class _ModelFixed:
    """A ``tune.sample_from`` body giving one fixed key for whichever model was drawn."""

    def __init__(self, space: Space, key: str):
        self.space, self.key = space, key

    def __call__(self, spec) -> Any:
        return self.space.base_config(spec.config["model"]).get(self.key)


def tune_param_space(space: Space, models: tuple[str, ...]) -> dict[str, Any]:
    from ray import tune

    ps: dict[str, Any] = {"model": tune.choice(list(models)) if len(models) > 1 else models[0]}
    for p in space.params:
        if p.when:
            ps[p.name] = tune.sample_from(_Conditional(p))
        elif p.kind == "loguniform":
            ps[p.name] = tune.loguniform(p.low, p.high)
        elif p.kind == "uniform":
            ps[p.name] = tune.uniform(p.low, p.high)
        elif p.kind == "int":
            ps[p.name] = tune.randint(int(p.low), int(p.high) + 1)
        else:
            ps[p.name] = tune.choice(list(p.choices))
    # fixed settings; those that differ per model are resolved after the model is drawn
    keys = set(space.fixed) | set(space.task_options) | {k for m in models for k in space.model_fixed.get(m, {})}
    for k in sorted(keys - set(ps)):
        vals = {repr(space.base_config(m).get(k)) for m in models}
        ps[k] = space.base_config(models[0]).get(k) if len(vals) == 1 else tune.sample_from(_ModelFixed(space, k))
    ps["task"] = space.task
    return ps


def grid_points(space: Space, models: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every combination of the grid values of the parameters that apply, model by model."""
    points = []
    for m in models:
        applicable = [p for p in space.params if p.applies({"model": m})]
        for combo in itertools.product(*(p.grid_values() for p in applicable)):
            cfg = {**space.base_config(m), **{p.name: v for p, v in zip(applicable, combo)}}
            points.append(cfg)
    return points


def seed_configs(space: Space, models: tuple[str, ...]) -> list[tuple[dict[str, Any], str, str]]:
    """Published configurations of the selected models, as full trial configs: (config, source, name)."""
    out = []
    for sp in space.seeds:
        m = sp.config.get("model", models[0] if len(models) == 1 else None)
        if m not in models:
            continue
        out.append(({**space.base_config(m), **sp.config, "model": m}, sp.source, sp.name))
    return out
