"""The pure training loop: build a trial's task, model and optimiser from a flat config; train and evaluate.

Knows nothing of Ray or MLflow (the Tune trainable in :mod:`search.trainable` drives it one epoch at a time),
nor of any cell or task by name: everything comes from the task's spec and objective and the cells' own
parameter groups and extra losses.
"""
from __future__ import annotations

import itertools
import math
import random
import time
from typing import Any, Callable

import numpy as np
import torch

from datasets.base import build_task
from rnns.base import detach_state
from rnns.errors import ConfigError
from rnns.model import SequenceModel, count_parameters
from rnns.optim import build_optimizer, build_schedule

from .config import split_config

# Metric names shared by the trainable, the schedulers, the searchers and the MLflow records.
EPOCH = "epoch"
TRAIN_LOSS = "train_loss"
DIVERGED = "diverged"
DIVERGED_REASON = "diverged_reason"
NUM_PARAMS = "num_params"


def val_key(metric: str) -> str:
    return f"val_{metric}"


def test_key(metric: str) -> str:
    return f"test_{metric}"


class Diverged(RuntimeError):
    """Training produced a non-finite or exploding loss."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Trainer:
    """One trial: task, model, optimiser, schedule, and the loop. ``state_dict`` makes it resumable."""

    def __init__(self, config: dict[str, Any], *, data_dir: str | None = None, device: str | torch.device | None = None,
                 allow_test: bool = False):
        self.config = dict(config)
        sc = split_config(self.config)
        self.split = sc
        self.device = torch.device(device) if device is not None else default_device()
        self.epochs = int(sc.train_opts.get("epochs", 10))
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        self.grad_clip = float(sc.train_opts.get("grad_clip", 0.0) or 0.0)
        self.max_loss = float(sc.train_opts.get("max_loss", 1e4))
        # a cap on batches per split and epoch, for smoke runs on real data (0 = the whole split)
        self.max_batches = int(sc.train_opts.get("max_batches", 0) or 0)
        # updates between reads of the loss on the host (divergence checks): on a GPU the launch queue runs freely
        # in between; on the CPU reading a value costs nothing, so every update is checked as it happens
        self.check_every = 1 if self.device.type == "cpu" else 256
        seed_everything(sc.seed)
        self.task = build_task(sc.task, data_dir=data_dir, seed=sc.seed, device=self.device, allow_test=allow_test,
                               **sc.task_opts)
        spec = self.task.spec
        model_opts = dict(sc.model_opts)
        budget = sc.train_opts.get("param_budget")
        if budget:
            from rnns.budget import hidden_for_budget  # the equal-parameter-budget solver

            model_opts["hidden_size"] = hidden_for_budget(
                sc.model, spec.input_size, spec.output_size, spec.readout, int(budget),
                token_input=spec.input_kind == "tokens", **{k: v for k, v in model_opts.items() if k != "hidden_size"})
        self.hidden_size = model_opts.get("hidden_size")
        self.model = SequenceModel(sc.model, spec.input_size, spec.output_size, spec.readout,
                                   token_input=spec.input_kind == "tokens", **model_opts).to(self.device)
        self.num_params = count_parameters(self.model)
        self.optimizer = build_optimizer(self.model, **sc.optim_opts)
        self.steps_per_epoch = max(1, sum(1 for _ in self._count_batches()))
        warmup_epochs = float(sc.sched_opts.get("warmup_epochs", 0.0))
        self.scheduler = build_schedule(
            self.optimizer, schedule=sc.sched_opts.get("schedule", "none"),
            total_steps=self.epochs * self.steps_per_epoch, warmup_steps=int(round(warmup_epochs * self.steps_per_epoch)),
            lr_min=float(sc.sched_opts.get("lr_min", 1e-7)))
        self.epoch = 0  # epochs completed
        self.best: dict[str, Any] | None = None  # best validation metrics and the epoch they were reached

    def _batches(self, split: str, epoch: int):
        it = self.task.batches(split, epoch)
        return itertools.islice(it, self.max_batches) if self.max_batches else it

    def _count_batches(self):
        # streaming tasks know their count without generating; others are iterated once (cheap: on-device tensors)
        n = getattr(self.task, "updates", 0) or None
        if n:
            return range(min(n, self.max_batches) if self.max_batches else n)
        return self._batches("train", 0)

    # ---- one epoch -------------------------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, float]:
        """Train one epoch; raises :class:`Diverged` on a non-finite or exploding loss.

        The loss is summed and its running maximum kept on the device and read once, at the end of the epoch
        (every ``check_every`` updates at most): no host synchronisation per update, which on a GPU stalls the
        launch queue at every step. The sum is kept in float64 in update order, so the reported training loss is
        the same number the per-step ``float()`` sum gave. A non-finite or too large loss is still caught, at the
        next read, and the trial ends as diverged as before (its weights are not used any further).
        """
        self.model.train()
        spec, obj = self.task.spec, self.task.objective
        state = None
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        worst = torch.full((), -math.inf, dtype=torch.float64, device=self.device)
        n = 0
        for batch in self._batches("train", self.epoch):
            try:
                out, new_state = self.model(batch.x, state)
                loss = obj.loss(out, batch)
                extra = self.model.extra_loss()
                if extra is not None:
                    loss = loss + extra
                value = loss.detach().to(torch.float64)
                total += value
                worst = torch.maximum(worst, value)  # maximum propagates NaN: one NaN step is never forgotten
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                self.optimizer.step()
            except RuntimeError:
                # a non-finite loss not read yet can make a later op fail (a solve on NaN weights): that is divergence
                self._check_loss(float(worst))
                raise
            if self.scheduler is not None:
                self.scheduler.step()
            state = detach_state(new_state) if spec.stateful else None
            n += 1
            if n % self.check_every == 0:
                self._check_loss(float(worst))
        self._check_loss(float(worst) if n else 0.0)
        self.epoch += 1
        return {TRAIN_LOSS: float(total) / max(n, 1)}

    def _check_loss(self, worst: float) -> None:
        if not math.isfinite(worst):
            raise Diverged(f"non-finite training loss ({worst}) at epoch {self.epoch + 1}")
        if worst > self.max_loss:
            raise Diverged(f"training loss {worst:.4g} exceeded max_loss {self.max_loss:g} at epoch {self.epoch + 1}")

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> dict[str, float]:
        self.model.eval()
        spec, obj = self.task.spec, self.task.objective
        sums: dict[str, float] = {}
        state = None
        for batch in self._batches(split, 0):
            out, new_state = self.model(batch.x, state)
            for k, v in obj.stats(out, batch).items():
                sums[k] = sums.get(k, 0.0) + float(v)
            state = new_state if spec.stateful else None
        return obj.summarize(sums)

    def is_better(self, metrics: dict[str, float], than: dict[str, float] | None) -> bool:
        if than is None:
            return True
        m, mode = self.task.spec.metric, self.task.spec.mode
        return metrics[m] > than[m] if mode == "max" else metrics[m] < than[m]

    def run_epoch(self) -> dict[str, Any]:
        """Train one epoch, validate, keep the best-validation weights; the metrics a trial reports."""
        t0 = time.perf_counter()
        train = self.train_epoch()
        return self.epoch_metrics(train, t0)

    def epoch_metrics(self, train: dict[str, float], t0: float) -> dict[str, Any]:
        """After an epoch of training (``train``: its metrics; ``t0``: when it began): validate, keep the
        best-validation weights, and return the epoch's metrics (a trial pack calls this for each member)."""
        val = self.evaluate("val")
        out = {EPOCH: self.epoch, **train, **{val_key(k): v for k, v in val.items()},
               NUM_PARAMS: self.num_params, "epoch_seconds": time.perf_counter() - t0}
        if self.is_better(val, None if self.best is None else self.best["val"]):
            self.best = {"epoch": self.epoch, "val": val,
                         "weights": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
        m = self.task.spec.metric
        out[f"best_val_{m}"] = self.best["val"][m]
        return out

    def fit(self, report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train to the configured number of epochs (from wherever the trainer is) and return the last metrics."""
        last: dict[str, Any] = {}
        while self.epoch < self.epochs:
            last = self.run_epoch()
            if report is not None:
                report(last)
        return last

    def test_best(self) -> dict[str, float]:
        """Test metrics of the best-validation weights (the task must be built with allow_test=True)."""
        if self.best is not None:
            self.model.load_state_dict(self.best["weights"])
        return {test_key(k): v for k, v in self.evaluate("test").items()}

    # ---- checkpoints -----------------------------------------------------------------------------------------
    def _reapply_group_settings(self) -> None:
        from rnns.optim import group_settings

        o = self.split.optim_opts
        for g in self.optimizer.param_groups:
            g.update(group_settings(g["tag"], lr=o.get("lr", 1e-3), lr_orth=o.get("lr_orth"),
                                    weight_decay=o.get("weight_decay", 0.0), Tdecay=o.get("Tdecay", 0.0),
                                    lr_factor=o.get("lr_factor", 1.0)))
            g["initial_lr"] = g["lr"]  # a schedule multiplies the new base rate from here on

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config, "epoch": self.epoch, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "best": self.best, "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state()[1].tolist(),
            "python_rng": list(random.getstate()[1]),
        }

    def load_state_dict(self, sd: dict[str, Any], mutable: tuple[str, ...] = ()) -> None:
        """Restore a checkpoint of this configuration. ``mutable`` keys may differ (PBT continues another trial's
        weights with mutated hyperparameters); the optimiser then takes this configuration's rates."""
        mine = {k: v for k, v in self.config.items() if v is not None}
        theirs = {k: v for k, v in sd.get("config", {}).items() if v is not None}
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if [k for k in diff if k not in mutable]:
            raise ConfigError(f"checkpoint belongs to another configuration (differs in: {', '.join(diff)})")
        self.model.load_state_dict(sd["model"])
        self.optimizer.load_state_dict(sd["optimizer"])
        if diff:
            self._reapply_group_settings()
        if self.scheduler is not None and sd.get("scheduler") is not None:
            self.scheduler.load_state_dict(sd["scheduler"])
        self.epoch = int(sd["epoch"])
        self.best = sd.get("best")
        torch.set_rng_state(sd["torch_rng"])
        np.random.set_state(("MT19937", np.array(sd["numpy_rng"], dtype=np.uint32), 624, 0, 0.0))
        random.setstate((3, tuple(sd["python_rng"]), None))
