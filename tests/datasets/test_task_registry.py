"""Every registered task builds on small inputs and yields batches of its spec's shapes; the test split is guarded."""
import math

import pytest
import torch

from datasets.base import TASKS, build_task, tasks
from rnns.errors import ConfigError
from tiny_data import HAVE_REAL, built, tiny_root

EXPECTED = {"copy_nnrnn", "copy_lru", "copy_urlstm", "copy_exprnn", "adding", "smnist", "psmnist", "smnist_rru",
            "psmnist_rru", "scifar", "scifar_gray", "ptb_char", "ptb_word", "text8", "enwik8", "imdb_bytes",
            "imdb_words", "wikitext103", "jsb", "nottingham", "musedata", "piano_midi", "listops"}
NEEDS_REAL = {"smnist", "psmnist", "smnist_rru", "psmnist_rru", "ptb_char", "ptb_word", "jsb", "nottingham",
              "musedata", "piano_midi"}
SMALL = {  # options that keep each build fast; everything else at its paper default
    "copy_nnrnn": {"delay": 20, "n_val": 16, "n_test": 8}, "copy_exprnn": {"lag": 20, "n_val": 16, "n_test": 8},
    "copy_urlstm": {"lag": 20, "n_val": 16, "n_test": 8}, "copy_lru": {"n_train": 64, "n_val": 16, "n_test": 8},
    "adding": {"length": 30, "n_val": 16, "n_test": 8}, "imdb_bytes": {"n_val": 10}, "imdb_words": {"n_val": 10},
    "text8": {"bptt": 50}, "enwik8": {"bptt": 50}, "wikitext103": {"bptt": 20, "batch_size": 4},
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tiny_root(tmp_path_factory.mktemp("tiny_root"))


@pytest.fixture(autouse=True)
def trust_cifar(monkeypatch):
    import torchvision

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)


def test_registry_names():
    assert set(tasks()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builds_and_batches_match_spec(name, root):
    if name in NEEDS_REAL and not HAVE_REAL:
        pytest.skip("real data absent")
    task = built(name, root, **SMALL.get(name, {}))
    spec = task.spec
    assert spec.name == name and spec.metric in task.objective.metrics and spec.mode in ("min", "max")
    entry = TASKS[name]
    assert entry.paper and entry.description and set(SMALL.get(name, {})) <= set(entry.defaults)
    for split in ("train", "val"):
        b = next(iter(task.batches(split)))
        B = b.x.shape[0]
        if spec.input_kind == "tokens":
            assert b.x.dtype == torch.long and b.x.ndim == 2
            assert 0 <= int(b.x.min()) and int(b.x.max()) < spec.input_size
        else:
            assert b.x.dtype == torch.float32 and b.x.ndim == 3 and b.x.shape[-1] == spec.input_size
        T = b.x.shape[1]
        assert T <= spec.seq_len or name in ("jsb", "nottingham", "musedata", "piano_midi")
        if spec.readout == "all":
            out = torch.randn(B, T, spec.output_size)
            assert b.y.shape[:2] == (B, T)
        else:
            out = torch.randn(B, spec.output_size)
            assert b.y.shape[0] == B
        if b.mask is not None:
            assert b.mask.shape == (B, T)
        loss = task.objective.loss(out, b)
        assert loss.ndim == 0 and math.isfinite(loss.item())
        metrics = task.objective.summarize(task.objective.stats(out, b))
        assert math.isfinite(metrics[spec.metric])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_test_split_refused_without_allow_test(name, root):
    if name in NEEDS_REAL and not HAVE_REAL:
        pytest.skip("real data absent")
    task = built(name, root, **SMALL.get(name, {}))
    with pytest.raises(ConfigError, match="allow_test"):
        next(iter(task.batches("test")))


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ConfigError, match="did you mean 'bptt'"):
        build_task("ptb_char", bpt=100)
    with pytest.raises(ConfigError, match="unknown task"):
        build_task("ptb_chars")


@pytest.mark.parametrize("name,opts", [("ptb_char", {"bptt": 0}), ("imdb_words", {"truncate": "middle"}),
                                       ("listops", {"source": "web"}), ("scifar", {"val_fraction": 1.5}),
                                       ("jsb", {"stride": 300}), ("imdb_bytes", {"n_val": 10 ** 9})])
def test_bad_option_values(name, opts, root):
    if name in NEEDS_REAL and not HAVE_REAL:
        pytest.skip("real data absent")
    with pytest.raises(ConfigError):
        build_task(name, data_dir=root, **opts)
