"""The real files of shared/data load with the standard split sizes, permutations and vocabularies.

Skipped when the data root ($RNNSWEEP_DATA, else /work/shared/data) is absent. Built tasks are memoised for the
session (tiny_data.built), so each dataset is read once.
"""
import math

import numpy as np
import pytest
import torch

from datasets import images, text
from rnns.errors import ConfigError
from tiny_data import HAVE_REAL, REAL, built

pytestmark = pytest.mark.skipif(not HAVE_REAL, reason=f"real data not found at {REAL}")


# ---------------------------------------------------------------------------------------------------------- MNIST


def test_psmnist_sizes_and_nnrnn_permutation():
    task = built("psmnist", REAL, allow_test=True)
    assert (task.size("train"), task.size("val"), task.size("test")) == (50000, 10000, 10000)
    rng = np.random.RandomState(1234)
    perm, rows = rng.permutation(784), rng.permutation(60000)
    raw_x, raw_y = images.load_mnist(REAL, True, "psmnist")
    x, y = task.rows("train")
    for i in (0, 1, 49999):
        assert torch.equal(x[i], raw_x[rows[i]][perm]) and y[i] == raw_y[rows[i]]
    vx, _ = task.rows("val")
    assert torch.equal(vx[0], raw_x[rows[50000]][perm])
    tx, _ = task.rows("test")
    assert torch.equal(tx[5], images.load_mnist(REAL, False, "psmnist")[0][5][perm])


def test_smnist_shares_the_split_unpermuted():
    s, p = built("smnist", REAL), built("psmnist", REAL, allow_test=True)
    rows = np.random.RandomState(1234)
    rows.permutation(784)
    r = rows.permutation(60000)
    raw_x, _ = images.load_mnist(REAL, True, "smnist")
    assert torch.equal(s.rows("train")[0][3], raw_x[r[3]])
    assert torch.equal(s.rows("train")[1], p.rows("train")[1])  # same rows, same labels


def test_psmnist_rru_permutation_and_last_10k_validation():
    task = built("psmnist_rru", REAL)
    perm = np.random.RandomState(0).permutation(784)
    raw_x, raw_y = images.load_mnist(REAL, True, "psmnist_rru")
    assert (task.size("train"), task.size("val")) == (50000, 10000)
    assert torch.equal(task.rows("train")[0][7], raw_x[7][perm])
    assert torch.equal(task.rows("val")[0][0], raw_x[50000][perm]) and torch.equal(task.rows("val")[1], raw_y[50000:])
    assert task.objective.label_smoothing == 0.1
    assert not np.array_equal(perm, np.random.RandomState(1234).permutation(784))
    s = built("smnist_rru", REAL)
    assert torch.equal(s.rows("train")[0][7], raw_x[7])


def test_mnist_batches_scaled_pixels_and_order():
    task = built("psmnist", REAL, allow_test=True)
    b = next(task.batches("train"))
    assert b.x.shape == (100, 784, 1) and b.x.dtype == torch.float32 and b.y.shape == (100,)
    assert torch.equal(b.x.squeeze(-1), task.rows("train")[0][:100].float() / 255)  # nnRNN: fixed order
    rru = built("psmnist_rru", REAL)
    e0, e1 = next(rru.batches("train", 0)), next(rru.batches("train", 1))
    assert e0.x.shape == (64, 784, 1) and not torch.equal(e0.y, e1.y)  # RRU: shuffled per epoch
    assert float(b.x.max()) <= 1.0 and float(b.x.min()) >= 0.0


def test_mnist_test_split_refused():
    with pytest.raises(ConfigError, match="allow_test"):
        built("smnist", REAL).batches("test")


# ------------------------------------------------------------------------------------------------------------ PTB


def test_ptb_word_token_counts():
    task = built("ptb_word", REAL, allow_test=True)
    assert (task.size("train"), task.size("val"), task.size("test")) == (929589, 73760, 82430)
    assert task.spec.input_size == 10000 and task.spec.metric == "ppl" and not task.spec.stateful
    b = next(task.batches("train"))
    assert b.x.shape == (64, 64) and b.x.dtype == torch.long and torch.equal(b.x[:, 1:], b.y[:, :-1])
    n_val = sum(int(bb.y.numel()) for bb in task.batches("val"))
    assert n_val == 73760 - 1  # every next token of the split scored once


def test_ptb_char_vocabulary_and_stateful_stream():
    task = built("ptb_char", REAL)
    assert task.spec.input_size == 50 and task.spec.metric == "bpc" and task.spec.stateful
    assert task.vocab.itos[0] == "<eos>" and "_" in task.vocab.stoi
    assert task.size("train") > 5_000_000
    it = task.batches("train")
    b0, b1 = next(it), next(it)
    assert b0.x.shape == (128, 150) and torch.equal(b1.x[:, 0], b0.y[:, -1])  # rows continue across chunks
    v = next(task.batches("val"))
    assert v.x.shape == (10, 150)
    with pytest.raises(ConfigError, match="allow_test"):
        task.batches("test")


# ---------------------------------------------------------------------------------------------------------- music


@pytest.mark.parametrize("name,sizes", [("jsb", (229, 76, 77)), ("nottingham", (694, 173, 170)),
                                        ("musedata", (524, 135, 124)), ("piano_midi", (87, 12, 25))])
def test_music_split_sizes(name, sizes):
    task = built(name, REAL, allow_test=True)
    assert (task.n_songs["train"], task.n_songs["val"], task.n_songs["test"]) == sizes
    b = next(task.batches("train"))
    assert b.x.shape == (16, 200, 88) and b.y.shape == (16, 200, 88) and b.mask.shape == (16, 200)
    assert torch.equal(b.x[:, 1:] * b.mask[:, 1:, None], b.y[:, :-1] * b.mask[:, 1:, None])  # y is x shifted


def test_music_zero_logits_score_88_ln2_per_step():
    task = built("jsb", REAL, allow_test=True)
    sums = {}
    for b in task.batches("val"):
        for k, v in task.objective.stats(torch.zeros_like(b.y), b).items():
            sums[k] = sums.get(k, 0.0) + v
    assert sums["count"] == 4526  # JSB validation: the frames after each song's first
    assert task.objective.summarize(sums)["nll"] == pytest.approx(88 * math.log(2), rel=1e-6)


# ----------------------------------------------------------------------------------------------------------- IMDB


def test_imdb_standard_sizes_and_carved_validation():
    train = text.read_imdb(REAL, "imdb_bytes", "train")
    assert len(train) == 25000 and sum(y for _, y in train) == 12500
    assert len(text.read_imdb(REAL, "imdb_bytes", "test")) == 25000
    task = built("imdb_bytes", REAL)
    assert (task.size("train"), task.size("val")) == (22500, 2500)
    b = next(task.batches("val"))
    assert b.x.shape == (64, 4096) and int(b.x.max()) <= 256 and task.spec.input_size == 257
    assert torch.equal(b.x == 0, ~b.mask)  # id 0 only for padding
    first = train[int(np.sort(np.random.RandomState(text.IMDB_VAL_SEED).permutation(25000)[:2500])[0])][0]
    assert bytes((b.x[0][b.mask[0]] - 1).tolist()) == first.encode()[:4096]
    with pytest.raises(ConfigError, match="allow_test"):
        task.batches("test")
