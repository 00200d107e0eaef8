"""The demo space learns: with its own settings a short LSTM run beats the copy task's trivial baseline."""
from __future__ import annotations

import pytest

from datasets.baselines import trivial_baseline
from search.train import Trainer
from spaces.registry import get_space


def test_demo_copy_settings():
    s = get_space("demo/copy")
    assert s.task_options["onehot"] is True and s.task_options["delay"] == 20
    assert s.task_options["updates"] * s.task_options["batch_size"] >= 10_000  # enough data per epoch to learn
    assert trivial_baseline(s.task, s.task_options).value == pytest.approx(0.5199, abs=1e-4)


def test_demo_copy_lstm_beats_baseline_quickly():
    s = get_space("demo/copy")
    cfg = {"task": s.task, "model": "lstm", **s.fixed, **s.task_options, "lr": 1e-2, "alpha": 0.99,
           "hidden_size": 64, "forget_bias": 1.0, "seed": 0, "epochs": 2, "updates": 1000, "n_val": 200}
    t = Trainer(cfg, device="cpu")
    for _ in range(2):
        r = t.run_epoch()
    base = trivial_baseline(s.task, s.task_options).value
    assert r["best_val_loss"] < 0.95 * base
