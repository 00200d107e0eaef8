"""Search-space contract: declarative data, no ray or optuna here (``search`` converts a Space for each searcher).

A :class:`Space` is named ``paper/task``. It holds:

- ``task``: the task registry name, and ``task_options`` fixed for the whole space (e.g. delay 200);
- ``models``: the cell registry names compared (the sweep's ``model`` parameter is a choice among them unless the
  user fixes one);
- ``params``: :class:`Param` distributions; a param with ``when={"model": ("nnrnn", "srnn_nn")}`` is sampled
  only when the config's ``model`` is one of those (conditional, define-by-run for Optuna);
- ``fixed``: settings applied to every trial (epochs, batch_size, hidden_size, optimizer, ...) and
  ``model_fixed``: per-model overrides (a paper's hidden size per model, or a ``param_budget``);
- ``seeds``: the papers' published configurations, each a :class:`SeedPoint` with its source line; a sweep
  evaluates them first;
- ``budget``: the max number of reported iterations (epochs, or blocks of updates) of a full-budget trial.

A full trial configuration is ``{**fixed, **model_fixed[model], "model": model, **sampled}`` (flat keys).

Extensions (all optional, with backward-compatible defaults):

- ``Param.key``: the configuration key a parameter writes, when it differs from its name. Two parameters may share
  a key under disjoint conditions (``A_init`` takes different values for a dense and a diagonal RNN; Optuna cannot
  give one name two value sets). ``Param.config_key`` is ``key or name``; ``when`` conditions name config keys.
- ``Param.default``: the code default a seed point takes when its source leaves the parameter out. A Space fills
  these into its seed points when it is built (the seed's source says which values are such defaults), so every
  seed point is a complete configuration of the parameters that apply to its model.
- ``SeedPoint.run_length``: how long the source trained (epochs, warmup_epochs, updates); a sweep runs every
  trial, seed points included, at the space's ``budget`` instead.
- ``Space.paper_budget``: the source's full training length in the same unit as ``budget``; ``Space.smoke``:
  overrides that make a trial tiny (one step, a few units) for tests and CI, see :func:`smoke_config`;
  ``Space.notes``: caveats (UNCERTAIN sources, deviations) shown by ``spaces show``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rnns.errors import ConfigError

KINDS = ("loguniform", "uniform", "int", "choice")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # one of KINDS
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    when: dict[str, tuple] = field(default_factory=dict)  # sampled only where config[k] in values, for every k
    grid: tuple = ()  # values a grid search visits (defaults: choices, or low/high for numeric params)
    doc: str = ""
    default: Any = None  # value for a seed point whose source omits this parameter (None: left to the searcher)
    key: str = ""  # configuration key written, when it differs from ``name``

    @property
    def config_key(self) -> str:
        return self.key or self.name

    def validate(self, space: str) -> None:
        where = f"space {space!r}, parameter {self.name!r}"
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "choice":
            if not self.choices:
                raise ConfigError(f"{where}: a choice needs at least one value")
            if len(set(map(repr, self.choices))) != len(self.choices):
                raise ConfigError(f"{where}: choices repeat a value: {self.choices}")
            self._check_default(where)
            return
        if self.low is None or self.high is None or not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ConfigError(f"{where}: needs finite low and high")
        if self.low > self.high:
            raise ConfigError(f"{where}: range [{self.low}, {self.high}] is inverted; give low <= high")
        if self.kind == "loguniform" and self.low <= 0:
            raise ConfigError(f"{where}: a log-uniform range must be positive, got low={self.low}")
        if self.kind == "int" and (int(self.low) != self.low or int(self.high) != self.high):
            raise ConfigError(f"{where}: an int range needs integer bounds")
        for g in self.grid:
            if not self.contains(g):
                raise ConfigError(f"{where}: grid value {g} lies outside [{self.low}, {self.high}]")
        self._check_default(where)

    def _check_default(self, where: str) -> None:
        if self.default is not None and not self.contains(self.default):
            raise ConfigError(f"{where}: default {self.default!r} is outside the parameter's values ({self.span()})")

    def span(self) -> str:
        """The values in words: ``log-uniform [1e-05, 0.01]``, ``one of 0.5, 0.9, 0.99``."""
        if self.kind == "choice":
            return "one of " + ", ".join(fmt_value(c) for c in self.choices)
        label = {"loguniform": "log-uniform", "uniform": "uniform", "int": "integer"}[self.kind]
        return f"{label} [{fmt_value(self.low)}, {fmt_value(self.high)}]"

    def applies(self, config: dict[str, Any]) -> bool:
        return all(config.get(k) in vals for k, vals in self.when.items())

    def grid_values(self) -> tuple:
        if self.grid:
            return tuple(self.grid)
        if self.kind == "choice":
            return tuple(self.choices)
        return (self.low, self.high) if self.low != self.high else (self.low,)

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return any(_same(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and int(value) != value:
            return False
        return self.low <= value <= self.high


def _same(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1 (a choice of booleans vs a choice of integers)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@dataclass(frozen=True)
class SeedPoint:
    """A published configuration: values for the space's parameters (and ``model``), with where it came from."""

    config: dict[str, Any]
    source: str
    name: str = ""  # short handle for `reproduce --published NAME`
    run_length: dict[str, Any] = field(default_factory=dict)  # the source's epochs / warmup_epochs / updates


@dataclass
class Space:
    name: str  # "paper/task"
    paper: str
    task: str
    models: tuple[str, ...]
    params: tuple[Param, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)
    model_fixed: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[SeedPoint, ...] = ()
    budget: int = 10
    description: str = ""
    paper_budget: int | None = None  # the source's full training length, in the unit of ``budget``
    smoke: dict[str, Any] = field(default_factory=dict)  # tiny-trial overrides, see smoke_config
    notes: tuple[str, ...] = ()  # caveats: UNCERTAIN sources, deviations from the paper

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def __post_init__(self) -> None:
        self.seeds = tuple(self._complete(s) for s in self.seeds)

    def _complete(self, seed: SeedPoint) -> SeedPoint:
        """The seed point with the defaults of applicable parameters its source omits, named in its source."""
        model = seed.config.get("model") or (self.models[0] if len(self.models) == 1 else None)
        if model is None:
            return seed
        cfg = {**self.base_config(model), **seed.config}
        added: dict[str, Any] = {}
        for p in self.params:
            k = p.config_key
            if k not in cfg and p.default is not None and p.applies(cfg):
                cfg[k] = added[k] = p.default
        if not added:
            return seed
        note = ", ".join(f"{k} {fmt_value(v)}" for k, v in added.items())
        return SeedPoint({**seed.config, **added}, f"{seed.source}; code defaults: {note}", seed.name,
                         seed.run_length)

    def seed_params(self, seed: SeedPoint) -> dict[str, Any]:
        """A seed point's values of the space's parameters, by parameter name (what a searcher enqueues)."""
        cfg = {**self.base_config(seed.config.get("model") or self.models[0]), **seed.config}
        return {p.name: cfg[p.config_key] for p in self.params if p.config_key in seed.config and p.applies(cfg)}

    def seed_overrides(self, seed: SeedPoint) -> dict[str, Any]:
        """A seed point's values of keys that are not parameters (hidden_size, param_budget, batch_size, ...):
        settings that replace the fixed ones for that trial; ``None`` removes one."""
        keys = {p.config_key for p in self.params}
        return {k: v for k, v in seed.config.items() if k not in keys and k != "model"}

    def keyed(self, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` with values held under a parameter's name moved to its ``key`` (what a searcher that records
        values by parameter name, such as Optuna, hands back); ``None`` (not applicable) values are dropped."""
        out = dict(config)
        for p in self.params:
            if p.key and p.name in out:
                v = out.pop(p.name)
                if v is not None:
                    out[p.key] = v
        return out

    def base_config(self, model: str) -> dict[str, Any]:
        """Fixed settings for one model, before sampling."""
        return {**self.fixed, **self.task_options, **self.model_fixed.get(model, {}), "task": self.task,
                "model": model}

    def params_for(self, config: dict[str, Any]) -> tuple[Param, ...]:
        """The parameters a trial samples, in order, given its fixed settings (``base_config``).

        Exact for conditions on ``model``; a condition on an earlier parameter is judged with that parameter's
        default (or not met when it has none).
        """
        cfg = dict(config)
        out = []
        for p in self.params:
            if p.applies(cfg):
                out.append(p)
                cfg.setdefault(p.config_key, p.default)
        return tuple(out)

    def seed_config(self, seed: SeedPoint) -> dict[str, Any]:
        """The full trial configuration of a seed point: fixed settings, parameter defaults its source omits, and
        its own values (which win). Parameters that do not apply to its model are left out."""
        model = seed.config.get("model") or self.models[0]
        cfg = {**self.base_config(model), **seed.config, "model": model}
        for p in self.params:
            k = p.config_key
            if k not in seed.config and p.applies(cfg) and p.default is not None:
                cfg[k] = p.default
        return cfg

    def seed(self, name: str) -> SeedPoint:
        for s in self.seeds:
            if s.name == name:
                return s
        raise KeyError(name)


def smoke_config(space: Space, config: dict[str, Any], known: set[str] | None = None) -> dict[str, Any]:
    """``config`` made tiny for a smoke run: ``space.smoke`` overrides applied.

    An override is applied only where the trial can take the key (``known``: the keys valid for the config's task
    and model, e.g. ``search.config.known_keys``; when omitted, only keys already in ``config`` and task/trainer
    keys are overridden), so one smoke dict serves every model of a space. A ``None`` value removes a setting
    (``param_budget: None`` with a small ``hidden_size`` skips the budget solve).
    """
    out = dict(config)
    for k, v in space.smoke.items():
        if (known is not None and k in known) or (known is None and (k in out or k in _ALWAYS_SMOKE)):
            if v is None:
                out.pop(k, None)
            else:
                out[k] = v
    return out


# keys every task/trainer takes, overridden by smoke_config even when absent from the configuration
_ALWAYS_SMOKE = ("epochs", "batch_size")
