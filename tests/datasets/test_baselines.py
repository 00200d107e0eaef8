"""Trivial baselines (datasets/baselines.py): each value against the loss of the trivial predictor it names,
computed on generated batches of the task itself."""
from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from datasets.base import build_task
from datasets.baselines import margin, summary_lines, trivial_baseline
from rnns.errors import ConfigError

DATA = Path(os.environ.get("RNNSWEEP_DATA", "/work/shared/data"))


def _objective_of_constant(task, logits_fn):
    t = build_task(task["name"], **task["options"])
    out_stats = None
    for b in t.batches("val"):
        out = logits_fn(b)
        s = t.objective.stats(out, b)
        out_stats = s if out_stats is None else {k: out_stats[k] + s[k] for k in s}
    return t.objective.summarize(out_stats)


@pytest.mark.parametrize("delay", [20, 200])
def test_copy_nnrnn_baseline_is_the_memoryless_strategy(delay):
    b = trivial_baseline("copy_nnrnn", {"delay": delay})
    assert b.mode == "min" and b.metric == "loss"
    assert b.value == pytest.approx(10 * math.log(8) / (delay + 20))
    # blanks with certainty until the last 10 steps, then uniform over the 8 symbols (class 0 = blank excluded)
    def logits(batch):
        n, T = batch.y.shape
        out = torch.full((n, T, 9), -1e4)
        out[:, :-10, 0] = 0.0
        out[:, -10:, 1:] = 0.0
        return out
    got = _objective_of_constant({"name": "copy_nnrnn", "options": {"delay": delay, "n_val": 50, "onehot": True}},
                                 logits)
    assert got["loss"] == pytest.approx(b.value, rel=1e-5)
    assert trivial_baseline("copy_nnrnn", {}).value == pytest.approx(0.0945, abs=1e-4)  # default delay 200


def test_adding_and_urlstm_and_lru_and_classes():
    assert trivial_baseline("adding", {"length": 100}).value == pytest.approx(1 / 6)
    assert trivial_baseline("copy_urlstm", {"lag": 100}).value == pytest.approx(math.log(8))
    assert trivial_baseline("copy_exprnn", {"lag": 1000}).value == pytest.approx(10 * math.log(8) / 1020)
    lru = trivial_baseline("copy_lru", {})
    assert (lru.value, lru.mode, lru.metric) == (0.5, "max", "accuracy")
    assert trivial_baseline("psmnist", {}).value == pytest.approx(0.1)
    assert trivial_baseline("imdb_bytes", {}).value == pytest.approx(0.5)
    assert trivial_baseline("ptb_char", {}) is None
    assert trivial_baseline("jsb", {}) is None  # needs the data


def test_adding_baseline_is_the_mse_of_predicting_one():
    got = _objective_of_constant({"name": "adding", "options": {"length": 50, "n_val": 1000}},
                                 lambda b: torch.ones(b.y.shape))
    assert got["mse"] == pytest.approx(trivial_baseline("adding", {}).value, rel=0.1)


def test_margin():
    assert margin(0.26, 0.52, "min") == pytest.approx(0.5)
    assert margin(0.78, 0.52, "min") == pytest.approx(-0.5)
    assert margin(0.75, 0.5, "max") == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        margin(1.0, 0.5, "up")
    with pytest.raises(ConfigError):
        margin(1.0, 0.0, "min")
    with pytest.raises(ConfigError):
        trivial_baseline("copy_nnrnn", {"delay": 0})
    with pytest.raises(ConfigError):
        trivial_baseline("no_such_task", {})


def test_summary_lines_state_baseline_and_margin():
    exp = SimpleNamespace(space="demo/copy", overrides={}, data_dir=None)
    summary = {"metric": "val_loss", "best": {"lstm": {"val_mean": 0.26}, "rnn": {"val_mean": 0.53}}}
    text = summary_lines(exp, summary)
    assert "trivial baseline: loss 0.5199" in text
    assert "lstm: validation loss 0.2600 vs baseline 0.5199: 50.0% better" in text
    assert "rnn: validation loss 0.5300 vs baseline 0.5199: 2.0% worse" in text
    text = summary_lines(exp, {"metric": "val_loss", "best": {"lstm": {"val_mean": 0.26}}})
    assert "rnn: no confirmed result" in text
    exp2 = SimpleNamespace(space="demo/copy", overrides={"delay": 200}, data_dir=None)
    assert "0.0945" in summary_lines(exp2, summary)


@pytest.mark.skipif(not (DATA / "music" / "JSB_Chorales.mat").exists(), reason="JSB Chorales not in the data dir")
def test_music_baseline_from_data():
    b = trivial_baseline("jsb", {}, data_dir=str(DATA))
    assert b.metric == "nll" and b.mode == "min"
    # JSB: about 4 of 88 notes on per step; note-frequency NLL is well above the published ~8.5 of RNNs
    assert 9.0 < b.value < 15.0
