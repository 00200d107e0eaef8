"""Task contract: a spec (what the model must do and how it is scored) and batches on the training device.

A task is built by name from the registry: ``build_task(name, data_dir=..., seed=..., device=..., **options)``.
Everything the training loop needs to know about a task lives in its :class:`TaskSpec` and its objective, never
in ``if task == ...`` branches:

- the model's input (``input_kind`` continuous features of width ``input_size``, or integer tokens from a
  vocabulary of ``input_size``), its output width and the readout (``last`` step, ``mean`` over time, or ``all``
  steps), and whether hidden state is carried across consecutive batches (``stateful``, truncated BPTT);
- the objective (loss to minimise, additive statistics and the metrics computed from them), the metric used for
  selection and its mode.

Splits: ``train`` and ``val`` are always available (validation is carved from training data when the dataset
has none); ``test`` is opened only when asked for with ``allow_test=True`` at build time, so that a sweep cannot
read it while selecting.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import torch

from rnns.errors import ConfigError, suggest, unknown

DATA_ENV = "RNNSWEEP_DATA"  # data root when --data-dir is not given


class Batch(NamedTuple):
    x: torch.Tensor  # (B, T, D) float, or (B, T) long for token input
    y: torch.Tensor  # targets, shape depends on the objective
    mask: torch.Tensor | None = None  # (B, T) bool/float where the objective masks positions


@dataclass(frozen=True)
class TaskSpec:
    name: str
    paper: str
    input_size: int  # feature width, or vocabulary size when input_kind == "tokens"
    output_size: int  # logits per scored position
    seq_len: int
    readout: str  # "last" | "mean" | "all"
    metric: str  # selection metric reported as val_<metric>
    mode: str  # "max" | "min"
    input_kind: str = "continuous"  # "continuous" | "tokens"
    stateful: bool = False  # carry (detached) state across consecutive train/eval batches
    budget_unit: str = "epoch"  # what one reported iteration is: "epoch" or "updates"
    description: str = ""

    def __post_init__(self):
        if self.readout not in ("last", "mean", "all"):
            raise ValueError(f"readout {self.readout!r}")
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode {self.mode!r}")
        if self.input_kind not in ("continuous", "tokens"):
            raise ValueError(f"input_kind {self.input_kind!r}")


class Objective:
    """Loss, additive statistics and metrics of a task. Subclasses implement all three.

    ``out`` is the model output: (B, T, output_size) for readout "all", else (B, output_size).
    """

    metrics: tuple[str, ...] = ("loss",)

    def loss(self, out: torch.Tensor, batch: Batch) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def stats(self, out: torch.Tensor, batch: Batch) -> dict[str, float]:  # pragma: no cover
        """Additive sums over a batch (e.g. loss_sum, count, correct); summed over batches then summarised."""
        raise NotImplementedError

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:  # pragma: no cover
        raise NotImplementedError


class Task:
    """A built task: spec, objective and batch iterators on ``device``."""

    def __init__(self, spec: TaskSpec, objective: Objective):
        self.spec = spec
        self.objective = objective

    def batches(self, split: str, epoch: int = 0) -> Iterator[Batch]:  # pragma: no cover
        """Batches of a split. ``train`` may differ per epoch (shuffle/fresh samples seeded by epoch)."""
        raise NotImplementedError

    def files(self) -> list[Path]:
        """Data files this task read (for checksums in the sweep record); empty for synthetic tasks."""
        return []


@dataclass(frozen=True)
class TaskEntry:
    name: str
    builder: Callable[..., Task]
    paper: str
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)


TASKS: dict[str, TaskEntry] = {}
_loaded = False


def register_task(name: str, *, paper: str, description: str = "") -> Callable:
    """Register ``builder(*, data_dir, seed, device, allow_test, **options) -> Task``.

    The builder's keyword options after those four are the task's options, with their paper defaults.
    """

    def deco(fn: Callable[..., Task]) -> Callable[..., Task]:
        sig = inspect.signature(fn)
        fixed = {"data_dir", "seed", "device", "allow_test"}
        defaults = {p.name: p.default for p in sig.parameters.values() if p.name not in fixed and p.kind == p.KEYWORD_ONLY}
        if name in TASKS and TASKS[name].builder is not fn:
            raise RuntimeError(f"task name {name!r} registered twice")
        TASKS[name] = TaskEntry(name, fn, paper, description or (fn.__doc__ or "").strip().split("\n")[0], defaults)
        return fn

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import importlib
    import pkgutil

    import datasets as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"datasets.{mod.name}")
    _loaded = True


def tasks() -> dict[str, TaskEntry]:
    _load_all()
    return TASKS


def get_task(name: str) -> TaskEntry:
    reg = tasks()
    if name not in reg:
        raise unknown("task", name, reg)
    return reg[name]


def build_task(name: str, *, data_dir: str | os.PathLike | None = None, seed: int = 0,
               device: str | torch.device = "cpu", allow_test: bool = False, **options: Any) -> Task:
    entry = get_task(name)
    for k in options:
        if k not in entry.defaults:
            raise ConfigError(f"task {name!r} has no option {k!r}{suggest(k, entry.defaults)}; "
                              f"options: {', '.join(sorted(entry.defaults)) or 'none'}")
    return entry.builder(data_dir=resolve_data_dir(data_dir), seed=int(seed), device=torch.device(device),
                         allow_test=allow_test, **options)


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """--data-dir, else $RNNSWEEP_DATA, else None (synthetic tasks need none)."""
    d = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    return Path(d).expanduser().resolve() if d else None


def require_test(allow_test: bool, name: str) -> None:
    """Guard used by builders before they open a test split."""
    if not allow_test:
        raise ConfigError(f"task {name!r}: the test split is opened only for a configuration already chosen "
                          "(build with allow_test=True)")
