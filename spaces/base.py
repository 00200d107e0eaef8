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

    def validate(self, space: str) -> None:
        where = f"space {space!r}, parameter {self.name!r}"
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "choice":
            if not self.choices:
                raise ConfigError(f"{where}: a choice needs at least one value")
            return
        if self.low is None or self.high is None or not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ConfigError(f"{where}: needs finite low and high")
        if self.low > self.high:
            raise ConfigError(f"{where}: range [{self.low}, {self.high}] is inverted; give low <= high")
        if self.kind == "loguniform" and self.low <= 0:
            raise ConfigError(f"{where}: a log-uniform range must be positive, got low={self.low}")
        if self.kind == "int" and (int(self.low) != self.low or int(self.high) != self.high):
            raise ConfigError(f"{where}: an int range needs integer bounds")

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
            return value in self.choices
        return self.low <= value <= self.high


@dataclass(frozen=True)
class SeedPoint:
    """A published configuration: values for the space's parameters (and ``model``), with where it came from."""

    config: dict[str, Any]
    source: str
    name: str = ""  # short handle for `reproduce --published NAME`


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

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def base_config(self, model: str) -> dict[str, Any]:
        """Fixed settings for one model, before sampling."""
        return {**self.fixed, **self.task_options, **self.model_fixed.get(model, {}), "task": self.task,
                "model": model}
