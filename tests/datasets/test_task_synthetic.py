"""Synthetic tasks: exact layouts of the four copy variants and the adding problem, and their constant baselines."""
import math

import pytest
import torch

from datasets.base import build_task
from datasets.synthetic import (adding_baseline_mse, adding_batch, copy_baseline_loss, copy_exprnn_batch,
                                copy_nnrnn_batch, copy_urlstm_batch)
from rnns.errors import ConfigError

NEG = -1e4  # a logit whose probability underflows to exactly 0 in float32


def _gen(seed=0):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _eval(task, out_fn):
    """Metrics of a split under a model-free output function out_fn(batch) -> logits."""
    sums = {}
    for b in task.batches("val"):
        for k, v in task.objective.stats(out_fn(b), b).items():
            sums[k] = sums.get(k, 0.0) + v
    return task.objective.summarize(sums)


def _blank_then_uniform(b, n_classes, scored_last=10):
    """Logits of the best input-independent strategy: blank (0) for sure, then uniform over symbols 1..8."""
    B, T = b.y.shape
    out = torch.full((B, T, n_classes), NEG)
    out[:, :T - scored_last, 0] = 0.0
    out[:, T - scored_last:, 1:9] = 0.0
    return out


@pytest.mark.parametrize("onehot", [False, True])
def test_copy_nnrnn_layout(onehot):
    delay = 15
    b = copy_nnrnn_batch(64, _gen(), delay=delay, onehot=onehot)
    tok = b.x.argmax(-1) if onehot else b.x.squeeze(-1).long()
    T = delay + 20
    assert tok.shape == (64, T) and b.x.shape[-1] == (10 if onehot else 1)
    assert ((tok[:, :10] >= 1) & (tok[:, :10] <= 8)).all()
    assert (tok[:, 10:10 + delay - 1] == 0).all()
    assert (tok[:, 10 + delay - 1] == 9).all()  # a single cue, then 10 blanks
    assert (tok[:, 10 + delay:] == 0).all()
    assert (b.y[:, :delay + 10] == 0).all() and torch.equal(b.y[:, -10:], tok[:, :10])


def test_copy_exprnn_layout():
    lag = 12
    b = copy_exprnn_batch(64, _gen(), lag=lag)
    tok = b.x.argmax(-1)
    assert b.x.shape == (64, lag + 20, 10)
    assert ((tok[:, :10] >= 1) & (tok[:, :10] <= 8)).all()
    assert (tok[:, 10:10 + lag] == 0).all()
    assert (tok[:, 10 + lag] == 9).all() and (tok[:, 11 + lag:] == 0).all()  # marker, then K-1 = 9 blanks
    assert (b.y[:, :lag + 10] == 0).all() and torch.equal(b.y[:, -10:], tok[:, :10])
    assert torch.equal(b.y[:, 10 + lag], tok[:, 0])  # the first symbol is due at the marker's own step


def test_copy_urlstm_layout():
    lag = 12
    b = copy_urlstm_batch(64, _gen(), lag=lag)
    tok = b.x.argmax(-1)
    assert b.x.shape == (64, lag + 20, 10) and (b.x.sum(-1) == 1).all()
    assert ((tok[:, :10] >= 1) & (tok[:, :10] <= 8)).all()
    assert (tok[:, 10:10 + lag] == 0).all() and (tok[:, -10:] == 9).all()  # 10 cue tokens
    assert torch.equal(b.y[:, -10:], tok[:, :10])
    assert b.mask.sum().item() == 64 * 10 and b.mask[:, -10:].all()


@pytest.mark.parametrize("delay", [5, 200])
def test_copy_nnrnn_constant_baseline_exact(delay):
    task = build_task("copy_nnrnn", delay=delay, n_val=50)
    m = _eval(task, lambda b: _blank_then_uniform(b, 9))
    assert m["loss"] == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-6)
    assert copy_baseline_loss(delay) == pytest.approx(10 * math.log(8) / (delay + 20), rel=1e-12)


def test_copy_exprnn_constant_baseline_exact():
    task = build_task("copy_exprnn", lag=40, n_val=50)
    assert task.spec.seq_len == 60 and task.spec.input_size == 10
    m = _eval(task, lambda b: _blank_then_uniform(b, 9))
    assert m["loss"] == pytest.approx(10 * math.log(8) / 60, rel=1e-6)


def test_copy_urlstm_constant_baseline_exact():
    task = build_task("copy_urlstm", lag=40, n_val=50)
    assert task.spec.seq_len == 60 and task.spec.output_size == 10
    m = _eval(task, lambda b: _blank_then_uniform(b, 10))  # only the last 10 steps count
    assert m["loss"] == pytest.approx(math.log(8), rel=1e-6)
    out = _blank_then_uniform(next(task.batches("val")), 10)
    assert task.objective.loss(out, next(task.batches("val"))).item() == pytest.approx(math.log(8), rel=1e-6)


def test_copy_lru_constant_baseline_exact():
    task = build_task("copy_lru", n_train=64, n_val=50)
    m = _eval(task, lambda b: torch.zeros(*b.x.shape[:2], 14))
    assert m["loss"] == pytest.approx(math.log(2), rel=1e-6)
    b = next(task.batches("val"))
    assert b.x.shape[1] == 48 and (b.x[:, 27, 7] == 1).all() and b.mask[:, 28:].all() and not b.mask[:, :28].any()


def test_adding_layout_and_ranges():
    L = 8
    b = adding_batch(4000, _gen(), length=L)
    marks = b.x[:, :, 1]
    assert b.x.shape == (4000, L, 2) and ((b.x[:, :, 0] >= 0) & (b.x[:, :, 0] < 1)).all()
    first = marks.argmax(1)  # first marked step (the one in [0, L/2-1], or the shared L/2-1)
    last = L - 1 - marks.flip(1).argmax(1)
    assert set(first.tolist()) == set(range(L // 2)) and set(last.tolist()) == set(range(L // 2 - 1, L))
    same = marks.sum(1) == 1  # both draws hit the overlap step L/2-1
    assert same.any() and (first[same] == L // 2 - 1).all()
    vals = b.x[:, :, 0]
    want = vals.gather(1, first[:, None]) + vals.gather(1, last[:, None])
    assert torch.allclose(b.y[~same], want[~same])
    assert torch.allclose(b.y[same], 2 * vals.gather(1, first[:, None])[same])


def test_adding_baseline_and_spec():
    task = build_task("adding", length=100, n_val=4000)
    assert task.spec.readout == "last" and task.spec.metric == "mse" and task.spec.mode == "min"
    m = _eval(task, lambda b: torch.ones(b.x.shape[0], 1))
    assert m["mse"] == pytest.approx(adding_baseline_mse(), abs=0.01)


def test_streams_seeded_and_fresh_per_epoch():
    a = build_task("copy_urlstm", lag=10, seed=3)
    b = build_task("copy_urlstm", lag=10, seed=3)
    c = build_task("copy_urlstm", lag=10, seed=4)
    assert torch.equal(next(a.batches("val")).x, next(b.batches("val")).x)
    assert torch.equal(next(a.batches("train", 1)).x, next(b.batches("train", 1)).x)
    assert not torch.equal(next(a.batches("train", 0)).x, next(a.batches("train", 1)).x)
    assert not torch.equal(next(a.batches("train", 0)).x, next(c.batches("train", 0)).x)
    assert sum(1 for _ in a.batches("train")) == 100  # default updates per reported epoch
    assert sum(1 for _ in build_task("adding", length=10, updates=7).batches("train")) == 7


@pytest.mark.parametrize("name", ["copy_urlstm", "copy_exprnn", "adding"])
def test_test_split_guard(name):
    with pytest.raises(ConfigError, match="allow_test"):
        next(build_task(name).batches("test"))
    assert next(build_task(name, allow_test=True, n_test=8).batches("test")).x.shape[0] == 8


@pytest.mark.parametrize("name,opt", [("copy_urlstm", {"lag": 0}), ("copy_exprnn", {"lag": -3}),
                                      ("adding", {"length": 2}), ("adding", {"batch_size": 1.5})])
def test_bad_options(name, opt):
    with pytest.raises(ConfigError):
        build_task(name, **opt)
