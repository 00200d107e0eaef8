"""Disk a sweep needs and keeps: the checkpoints of finished trials pruned to what is read later, and the free space
a sweep needs estimated from its largest model.

What reads a checkpoint after its trial has finished (search/sweep.py): ``--resume`` restarts only unfinished or
errored trials (their last checkpoint: Tune's ``CheckpointConfig(num_to_keep=1)``, whose trainer state holds the
best-validation weights too); without a confirmation stage the best trial of each model is tested from its
checkpoint (``tag_without_confirmation``: the first of ``_ranked`` per model); with one, the confirmation runs of the
chosen configuration (their own stage). PBT restarts trials from other trials' checkpoints: nothing is pruned there.
So a finished (TERMINATED) trial keeps its checkpoint only while it is among the best of its model; an errored trial
keeps it (``--resume`` retries it from there).
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from ray.tune import Callback

CKPT_GLOB = "checkpoint_*"


def keep_best(rows: list[dict[str, Any]], metric_name: str, mode: str, budget: int) -> set[int]:
    """Indices of ``rows`` that the sweep may still read: per model, every row tied with the best of
    ``search.sweep._ranked`` (the rule ``tag_without_confirmation`` picks by)."""
    from .sweep import _ranked, _score

    keep: set[int] = set()
    ranked = _ranked(rows, metric_name, mode, budget)
    best: dict[Any, float] = {}
    for r in ranked:
        best.setdefault(r["config"].get("model"), _score(r, metric_name))
    for i, r in enumerate(rows):
        m = r["config"].get("model")
        if m in best and any(r is x for x in ranked) and _score(r, metric_name) == best[m]:
            keep.add(i)
    return keep


class CheckpointPruner(Callback):
    """Removes the checkpoints of finished trials that can no longer be the best of their model (local storage)."""

    def __init__(self, *, metric_name: str, mode: str, budget: int, rename: dict[str, str] | None = None):
        self.metric_name, self.mode, self.budget, self.rename = metric_name, mode, int(budget), rename or {}
        self.done: dict[str, dict[str, Any]] = {}
        self.freed = 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        from .space_adapter import to_config

        path = getattr(trial, "path", None)
        if not path or "://" in str(path):
            return
        from .pack_tune import MEMBERS, members_of

        members = members_of(trial.config)
        if members is not None:  # a trial pack: its checkpoint stays while any member can be its model's best
            last = (trial.last_result or {}).get(MEMBERS) or {}
            for mid, cfg in members:
                self.done[mid] = {"config": to_config(dict(cfg), self.rename), "error": False,
                                  "metrics": dict(last.get(mid) or {}), "dir": Path(path)}
        else:
            self.done[trial.trial_id] = {"config": to_config(dict(trial.config), self.rename), "error": False,
                                         "metrics": dict(trial.last_result or {}), "dir": Path(path)}
        self.prune()

    def prune(self) -> None:
        rows = list(self.done.values())
        keep = keep_best(rows, self.metric_name, self.mode, self.budget)
        kept_dirs = {rows[i]["dir"] for i in keep}
        for i, r in enumerate(rows):
            if i in keep or r["dir"] in kept_dirs:
                continue
            for d in r["dir"].glob(CKPT_GLOB):
                if d.is_dir():
                    self.freed += sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
                    shutil.rmtree(d, ignore_errors=True)


# ---- free space ------------------------------------------------------------------------------------------------------
MIN_FREE_ENV = "RNNSWEEP_MIN_FREE_MB"  # set: the free space --storage must have, in MiB (overrides the estimate)
SLACK = 64 * 2**20  # Tune's own files, logs, the results of the trials


def state_bytes(n_params: int) -> int:
    """A trainer checkpoint of a model with ``n_params`` float32 parameters: the weights, the best-validation weights
    and up to two optimiser slots per parameter (Adam's moments), plus the pickle's overhead."""
    return 4 * 4 * int(n_params) + 2**16


def _largest(values: list) -> Any:
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return max(nums) if nums else None


def largest_params(space, run_space, models: tuple[str, ...], data_dir: str | None) -> int | None:
    """The parameter count of the largest model the sweep can build: each numeric parameter of the space at its
    largest value (widths, depths), and each seed point, built on PyTorch's meta device (no memory, no data); models
    larger than this machine's memory are left out; None when none can be counted."""
    import torch

    from rnns.model import SequenceModel, count_parameters

    from .config import split_config
    from .preflight import _Dry, _values

    from .space_adapter import seed_configs

    dry = _Dry(data_dir)
    most = None
    candidates = []
    for m in models:
        cfg = {k: v for k, v in run_space.base_config(m).items() if v is not None}
        for p in run_space.params:
            if p.config_key in cfg or not p.applies(cfg):
                continue
            big = _largest(_values(p))
            cfg[p.config_key] = big if big is not None else (p.default if p.default is not None else _values(p)[0])
        candidates.append(cfg)
    candidates += [{k: v for k, v in cfg.items() if v is not None} for cfg, _src, _name in seed_configs(run_space, models)]
    for cfg in candidates:
        try:
            sc = split_config(cfg)
            if sc.train_opts.get("param_budget"):
                n = int(sc.train_opts["param_budget"])
            else:
                spec = dry.spec(sc.task, sc.task_opts)
                with torch.device("meta"):
                    model = SequenceModel(sc.model, spec.input_size, spec.output_size, spec.readout,
                                          token_input=spec.input_kind == "tokens", **sc.model_opts)
                n = count_parameters(model)
        except Exception:  # noqa: BLE001 - a cell that computes at construction: no estimate for it
            continue
        if 4 * n > _host_memory():
            # cannot even be held in memory: its trials fail on allocation (recorded as out of memory) before any
            # checkpoint is written; counting it would refuse the sweep for a disk it never uses
            continue
        most = n if most is None else max(most, n)
    return most


def _host_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def checkpoints_alive(*, scheduler: str, num_samples: int, budget: int, concurrent: int, models: int,
                      confirm_top: int, confirm_seeds: int) -> int:
    """How many trainer checkpoints can be on disk at once: PBT keeps every epoch of every trial; otherwise two per
    running trial (Tune writes the new one before removing the old), the best finished trial of each model, and
    the confirmation runs."""
    if scheduler == "pbt":
        return max(1, num_samples) * max(1, budget)
    return 2 * min(concurrent, num_samples) + models + confirm_top * confirm_seeds * models


def needed_bytes(ckpt_bytes: int | None, alive: int) -> int:
    if ckpt_bytes is None:
        return 512 * 2**20  # no estimate: the former constant
    return SLACK + int(math.ceil(1.25 * ckpt_bytes * alive))


def free_bytes(storage: str) -> int:
    p = Path(storage.removeprefix("file://"))
    while not p.exists() and p.parent != p:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize
