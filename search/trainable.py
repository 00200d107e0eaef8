"""The Tune trainable: the only module that calls Tune's reporting API.

Each reported iteration is one epoch of the pure loop (:class:`search.train.Trainer`), with a checkpoint holding
everything needed to resume (model, optimiser, schedule, best-validation weights, RNG states). A diverging trial
reports ``diverged=1`` with the reason and ends; the sweep goes on.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .train import DIVERGED, DIVERGED_REASON, Diverged, Trainer, val_key

CKPT_FILE = "trainer.pt"


def _threads(n: int | None) -> None:
    # one trial per CPU by default: more intra-op threads than the trial's CPUs only fight each other
    if n:
        torch.set_num_threads(max(1, int(n)))


def save_checkpoint(trainer: Trainer, directory: str | Path) -> Path:
    path = Path(directory) / CKPT_FILE
    tmp = path.with_suffix(".tmp")
    torch.save(trainer.state_dict(), tmp)
    os.replace(tmp, path)  # a checkpoint is either whole or absent
    return path


def load_checkpoint(trainer: Trainer, directory: str | Path) -> None:
    path = Path(directory) / CKPT_FILE
    trainer.load_state_dict(torch.load(path, map_location=trainer.device, weights_only=True))


def train_trial(config: dict[str, Any], *, data_dir: str | None = None, device: str | None = None,
                cpus_per_trial: int | None = 1, gpu_memory_fraction: float | None = None,
                rename: dict[str, str] | None = None) -> None:
    """Tune function trainable (bind the keyword arguments with ``tune.with_parameters``)."""
    from ray import tune

    _threads(cpus_per_trial)
    if gpu_memory_fraction and torch.cuda.is_available():
        # trials sharing a GPU through fractional resources each get a hard slice of its memory
        torch.cuda.set_per_process_memory_fraction(float(gpu_memory_fraction))
    from .space_adapter import to_config

    trainer = Trainer(to_config(config, rename), data_dir=data_dir, device=device)
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            load_checkpoint(trainer, d)
    while trainer.epoch < trainer.epochs:
        try:
            metrics = trainer.run_epoch()
        except Diverged as e:
            spec = trainer.task.spec
            worst = float("-inf") if spec.mode == "max" else float("inf")
            # the selection metric is reported (at its worst value) so that schedulers can rank the trial
            tune.report({DIVERGED: 1, DIVERGED_REASON: str(e), "epoch": trainer.epoch + 1,
                         val_key(spec.metric): worst, f"best_val_{spec.metric}": worst})
            return
        metrics[DIVERGED] = 0
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(trainer, d)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
