"""Timestamps from inside a trial, for bench/bench_overhead.py.

``timed_train_trial`` wraps :func:`search.trainable.train_trial` (the benchmark puts it in that module's place in its
own driver process, so the Tuner pickles this function by reference and the Ray worker imports this module). It
records, in the worker: when the trainable started, when the first training step began (the first call of
``Trainer.train_epoch``), when it ended, the wall time spent inside the epochs (``Trainer.run_epoch``), and the
worker's CPU time, and appends them as one JSON line to the file
named by ``RNNSWEEP_BENCH_TIMES``. Nothing else about the trial changes.
"""
from __future__ import annotations

import json
import os
import time

from search import trainable as _trainable
from search.train import Trainer

_ORIGINAL = _trainable.train_trial  # bound at import, before any patching: the real trainable


def mark_first_step(record: dict) -> None:
    """Patch Trainer (in this process) to note in ``record`` the wall time of the first ``train_epoch`` call and the
    total wall time spent inside ``run_epoch`` (training + validation of every epoch), ``epochs_wall``."""
    orig = Trainer.train_epoch
    if getattr(orig, "_bench_wrapped", False):
        return
    orig_run = Trainer.run_epoch

    def train_epoch(self):
        record.setdefault("first_step", time.time())
        return orig(self)

    def run_epoch(self):
        t0 = time.perf_counter()
        try:
            return orig_run(self)
        finally:
            record["epochs_wall"] = record.get("epochs_wall", 0.0) + time.perf_counter() - t0

    train_epoch._bench_wrapped = True
    Trainer.train_epoch = train_epoch
    Trainer.run_epoch = run_epoch


def timed_train_trial(config, **kw):
    rec = {"start": time.time(), "cpu0": time.process_time()}
    mark_first_step(rec)
    try:
        return _ORIGINAL(config, **kw)
    finally:
        rec["end"] = time.time()
        rec["cpu"] = time.process_time() - rec.pop("cpu0")
        path = os.environ.get("RNNSWEEP_BENCH_TIMES")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(rec) + "\n")
