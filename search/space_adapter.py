"""Turn a declarative :class:`spaces.base.Space` into what each searcher consumes.

- Optuna (TPE, CMA-ES): a define-by-run function. Conditional parameters are suggested only where their
  ``when`` condition holds, so TPE never sees a parameter that does not apply. Seed points are enqueued with their
  index as a user attribute; the define-by-run function then applies the seed's other settings (a paper's hidden
  size or parameter budget) to that trial.
- Ray Tune random search: a ``param_space`` of Tune domains; conditional parameters are ``tune.sample_from``
  functions that return ``None`` where the condition fails (``None`` means "not applicable" to the trainer).
- Grid search: the explicit list of grid points (per model, only applicable parameters), evaluated in order.

Searchers record values by parameter *name*; a parameter may write another config *key* (``Param.key``), so
:func:`rename_map` / :func:`to_config` turn a searcher's dict into a trial configuration.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Iterator

from spaces.base import Param, Space

SEED_ATTR = "rnnsweep_seed_point"


def rename_map(space: Space) -> dict[str, str]:
    return {p.name: p.key for p in space.params if p.key and p.key != p.name}


def to_config(cfg: dict[str, Any], rename: dict[str, str] | None) -> dict[str, Any]:
    """A searcher's dict as a trial configuration: parameter names moved to their keys, None (n/a) dropped."""
    out = {}
    for k, v in cfg.items():
        k = (rename or {}).get(k, k)
        if v is not None:
            out[k] = v
        elif k not in out:
            out.setdefault(k, None)
    return {k: v for k, v in out.items() if v is not None}


class DefineByRun:
    """Picklable Optuna define-by-run function for a space (pickled with the searcher for ``--resume``)."""

    def __init__(self, space: Space, models: tuple[str, ...], seed_configs: list[dict[str, Any]] = ()):
        self.space = space
        self.models = tuple(models)
        self.seed_configs = list(seed_configs)

    def __call__(self, trial) -> dict[str, Any]:
        model = trial.suggest_categorical("model", list(self.models)) if len(self.models) > 1 else self.models[0]
        cfg: dict[str, Any] = {"model": model}
        for p in self.space.params:
            if p.config_key in cfg or not p.applies(cfg):
                continue
            cfg[p.config_key] = suggest(trial, p)
        constants = self.space.base_config(model)
        idx = _seed_index(trial)
        if idx is not None and idx < len(self.seed_configs):
            # an enqueued published configuration: its own settings (hidden size, budget...) replace fixed ones
            constants = {**constants, **{k: v for k, v in self.seed_configs[idx].items() if k not in cfg}}
        # returned constants join the sampled values in the trial config; a sampled value wins over a fixed one
        return {k: v for k, v in constants.items() if k not in cfg or (k == "model" and len(self.models) == 1)}


def _seed_index(trial) -> int | None:
    try:
        v = trial.user_attrs.get(SEED_ATTR)
    except AttributeError:
        return None
    return None if v is None else int(v)


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
    v = p.choices[int(rng.integers(len(p.choices)))]
    return v.item() if hasattr(v, "item") else v


class _Conditional:
    """A ``tune.sample_from`` body for one config key: the value of whichever parameter writing that key applies
    (parameters sharing a key have disjoint conditions), else None."""

    def __init__(self, params: list[Param]):
        self.params = params

    def __call__(self, spec) -> Any:
        import numpy as np

        for p in self.params:
            cfg = {k: spec.config[k] for k in p.when}
            if p.applies(cfg):
                return _draw(p, np.random.default_rng(np.random.randint(2**31)))
        return None


class _ModelFixed:
    """A ``tune.sample_from`` body giving one fixed key for whichever model was drawn."""

    def __init__(self, space: Space, key: str):
        self.space, self.key = space, key

    def __call__(self, spec) -> Any:
        return self.space.base_config(spec.config["model"]).get(self.key)


def tune_param_space(space: Space, models: tuple[str, ...]) -> dict[str, Any]:
    from ray import tune

    ps: dict[str, Any] = {"model": tune.choice(list(models)) if len(models) > 1 else models[0]}
    by_key: dict[str, list[Param]] = {}
    for p in space.params:
        by_key.setdefault(p.config_key, []).append(p)
    for key, group in by_key.items():
        p = group[0]
        if len(group) > 1 or p.when:
            ps[key] = tune.sample_from(_Conditional(group))
        elif p.kind == "loguniform":
            ps[key] = tune.loguniform(p.low, p.high)
        elif p.kind == "uniform":
            ps[key] = tune.uniform(p.low, p.high)
        elif p.kind == "int":
            ps[key] = tune.randint(int(p.low), int(p.high) + 1)
        else:
            ps[key] = tune.choice(list(p.choices))
    # fixed settings; those that differ per model are resolved after the model is drawn
    keys = set(space.fixed) | set(space.task_options) | {k for m in models for k in space.model_fixed.get(m, {})}
    for k in sorted(keys - set(ps)):
        vals = {repr(space.base_config(m).get(k)) for m in models}
        ps[k] = space.base_config(models[0]).get(k) if len(vals) == 1 else tune.sample_from(_ModelFixed(space, k))
    ps["task"] = space.task
    return ps


def iter_grid(space: Space, models: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Every combination of the grid values of the parameters that apply, model by model, lazily (a paper's grid
    can hold millions of points; a sweep takes as many as it has samples).

    Conditions on ``model`` are exact; a condition on another parameter is checked on each combination.
    """
    for m in models:
        base = space.base_config(m)
        applicable = [p for p in space.params if set(p.when) <= {"model"} and p.applies(base)]
        dependent = [p for p in space.params if set(p.when) - {"model"}]
        for combo in itertools.product(*(p.grid_values() for p in applicable)):
            cfg = {**base, **{p.config_key: v for p, v in zip(applicable, combo)}}
            extra = [p for p in dependent if p.applies(cfg)]
            for combo2 in itertools.product(*(p.grid_values() for p in extra)):
                yield {**cfg, **{p.config_key: v for p, v in zip(extra, combo2)}}


def grid_points(space: Space, models: tuple[str, ...], limit: int | None = None) -> list[dict[str, Any]]:
    return list(itertools.islice(iter_grid(space, models), limit))


def seed_configs(space: Space, models: tuple[str, ...]) -> list[tuple[dict[str, Any], str, str]]:
    """Published configurations of the selected models, as full trial configs: (config, source, name)."""
    out = []
    for sp in space.seeds:
        m = sp.config.get("model") or (models[0] if len(space.models) == 1 else None)
        if m not in models:
            continue
        cfg = space.seed_config(sp) if hasattr(space, "seed_config") else {**space.base_config(m), **sp.config}
        out.append(({**cfg, "model": m}, sp.source, sp.name))
    return out


def seed_param_values(space: Space, models: tuple[str, ...]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Per selected seed point: (values by parameter name for the searcher, the full trial configuration)."""
    out = []
    for sp in space.seeds:
        m = sp.config.get("model") or (models[0] if len(space.models) == 1 else None)
        if m not in models:
            continue
        params = dict(space.seed_params(sp)) if hasattr(space, "seed_params") else {
            k: v for k, v in sp.config.items() if k in {p.name for p in space.params}}
        if len(models) > 1:
            params["model"] = m
        full = space.seed_config(sp) if hasattr(space, "seed_config") else {**space.base_config(m), **sp.config}
        out.append((params, {**full, "model": m}))
    return out
