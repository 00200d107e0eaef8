"""The Tune trainable: the only module that calls Tune's reporting API.

Each reported iteration is one epoch of the pure loop (:class:`search.train.Trainer`), with a checkpoint holding
everything needed to resume (model, optimiser, schedule, best-validation weights, RNG states). A diverging trial
reports ``diverged=1`` with the reason and ends; the sweep goes on.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch._dynamo  # noqa: F401 - torch.optim imports it (1.5 s) when the first optimiser is built: pay it when the
# worker starts, once per reused process, not inside each trial's set-up time

from .train import DIVERGED, DIVERGED_REASON, Diverged, Trainer, val_key

CKPT_FILE = "trainer.pt"
WORST = 1e30  # the selection metric a diverged trial reports
DIGEST_FILE = CKPT_FILE + ".sha256"  # written beside the checkpoint; a damaged or truncated file never loads


class CheckpointError(RuntimeError):
    """A truncated, damaged or unreadable checkpoint file: the trial fails with this, it never resumes from it."""


def _threads(n: int | None) -> None:
    # one trial per CPU by default: more intra-op threads than the trial's CPUs only fight each other
    if n:
        torch.set_num_threads(max(1, int(n)))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(trainer: Trainer, directory: str | Path) -> Path:
    return save_state(trainer.state_dict(), directory)


def save_state(state: dict[str, Any], directory: str | Path) -> Path:
    """A trainer state (``Trainer.state_dict()``) written whole, with its sha256 beside it."""
    path = Path(directory) / CKPT_FILE
    tmp = path.with_suffix(".tmp")
    digest, digest_tmp = path.parent / DIGEST_FILE, path.parent / (DIGEST_FILE + ".tmp")
    try:
        with open(tmp, "wb") as f:  # closed even when the write fails, so a full disk gets its space back
            torch.save(state, f)
        digest_tmp.write_text(_sha256(tmp) + "\n")
    except (OSError, RuntimeError) as e:  # a full disk shows as "unexpected pos ..." from torch's zip writer
        for f in (tmp, digest_tmp):
            f.unlink(missing_ok=True)
        import shutil

        free = shutil.disk_usage(path.parent).free
        why = (str(e).splitlines() or [""])[0][:160]
        raise CheckpointError(f"could not write the checkpoint {path} ({type(e).__name__}: {why}); {free} bytes free "
                              "there: is the disk full?") from None
    os.replace(tmp, path)  # a checkpoint is either whole or absent
    os.replace(digest_tmp, digest)
    return path


def read_checkpoint(directory: str | Path, map_location=None) -> dict[str, Any]:
    """The trainer state saved in ``directory``, after checking it against its sha256 (weights only, no pickle).

    Raises :class:`CheckpointError` for a truncated or damaged file (torch.load alone accepts a file whose bytes
    were changed in place). A checkpoint written before digests existed is read without the check."""
    path = Path(directory) / CKPT_FILE
    digest = path.parent / DIGEST_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is missing")
    if digest.is_file():
        want = digest.read_text().strip()
        got = _sha256(path)
        if got != want:
            raise CheckpointError(f"checkpoint {path} is damaged or truncated (sha256 {got[:16]}... differs from the "
                                  f"{want[:16]}... written with it, size {path.stat().st_size} bytes): refusing to "
                                  "resume from it")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises OSError, EOFError, RuntimeError or UnpicklingError here
        why = (str(e).splitlines() or ["truncated"])[0][:200]
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {why}): refusing to resume "
                              "from it") from None


def load_checkpoint(trainer: Trainer, directory: str | Path, mutable: tuple[str, ...] = ()) -> None:
    trainer.load_state_dict(read_checkpoint(directory, map_location=trainer.device), mutable=mutable)


def train_trial(config: dict[str, Any], *, data_dir: str | None = None, device: str | None = None,
                cpus_per_trial: int | None = 1, gpu_memory_fraction: float | None = None,
                rename: dict[str, str] | None = None, mutable: tuple[str, ...] = (), plugins=()) -> None:
    """Tune function trainable (bind the keyword arguments with ``tune.with_parameters``).

    ``plugins``: the sweep's plugin files (:mod:`search.plugins`), loaded before the model is built.

    ``mutable``: keys PBT mutates; a checkpoint exploited from another trial may differ from this config in them.
    """
    from ray import tune

    from .plugins import load_plugins

    load_plugins(plugins)
    _threads(cpus_per_trial)
    if gpu_memory_fraction and torch.cuda.is_available():
        # trials sharing a GPU through fractional resources each get a hard slice of its memory
        torch.cuda.set_per_process_memory_fraction(float(gpu_memory_fraction))
    from .space_adapter import to_config

    trainer = Trainer(to_config(config, rename), data_dir=data_dir, device=device)
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            load_checkpoint(trainer, d, mutable=tuple(mutable))
    while trainer.epoch < trainer.epochs:
        try:
            metrics = trainer.run_epoch()
        except Diverged as e:
            spec = trainer.task.spec
            # finite: ASHA's rung cutoff is a percentile, which ±inf values turn into NaN (and then it stops nothing)
            worst = -WORST if spec.mode == "max" else WORST
            # the selection metric is reported (at its worst value) so that schedulers can rank the trial
            tune.report({DIVERGED: 1, DIVERGED_REASON: str(e), "epoch": trainer.epoch + 1,
                         val_key(spec.metric): worst, f"best_val_{spec.metric}": worst})
            return
        metrics[DIVERGED] = 0
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(trainer, d)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
