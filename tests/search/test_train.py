"""The pure training loop: determinism, exact resume, divergence, config validation, the test-split guard."""
from __future__ import annotations

import pytest
import torch

from rnns.errors import ConfigError
from search.config import split_config
from search.train import Diverged, Trainer

CFG = {"task": "copy_nnrnn", "model": "lstm", "delay": 5, "updates": 6, "n_val": 40, "hidden_size": 8, "epochs": 3,
       "lr": 3e-3, "seed": 7, "optimizer": "rmsprop"}


def _run(cfg, epochs=None):
    tr = Trainer(cfg, device="cpu")
    out = []
    while tr.epoch < (epochs or tr.epochs):
        out.append(tr.run_epoch())
    return tr, out


def test_same_seed_same_run_different_seed_different_run():
    _, a = _run(CFG)
    _, b = _run(CFG)
    _, c = _run({**CFG, "seed": 8})
    assert [r["val_loss"] for r in a] == [r["val_loss"] for r in b]
    assert [r["val_loss"] for r in a] != [r["val_loss"] for r in c]


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path):
    _, full = _run(CFG)
    tr, first = _run(CFG, epochs=2)
    sd = tr.state_dict()
    torch.save(sd, tmp_path / "ck.pt")
    tr2 = Trainer(CFG, device="cpu")
    tr2.load_state_dict(torch.load(tmp_path / "ck.pt", weights_only=True))
    rest = [tr2.run_epoch()]
    assert [r["val_loss"] for r in first + rest] == [r["val_loss"] for r in full]


def test_checkpoint_of_another_configuration_is_refused():
    tr, _ = _run(CFG, epochs=1)
    other = Trainer({**CFG, "lr": 1e-2}, device="cpu")
    with pytest.raises(ConfigError, match="another configuration .*lr"):
        other.load_state_dict(tr.state_dict())


def test_exploding_loss_is_diverged():
    tr = Trainer({**CFG, "max_loss": 1e-3}, device="cpu")
    with pytest.raises(Diverged, match="exceeded max_loss"):
        tr.train_epoch()


def test_nan_loss_is_diverged():
    tr = Trainer(CFG, device="cpu")
    with torch.no_grad():
        tr.model.decoder.weight.fill_(float("nan"))
    with pytest.raises(Diverged, match="non-finite"):
        tr.train_epoch()


def test_unknown_key_and_values():
    with pytest.raises(ConfigError, match="did you mean 'lr_orth'"):
        split_config({**CFG, "lr_ortho": 1.0})
    with pytest.raises(ConfigError, match="lr must be a positive"):
        Trainer({**CFG, "lr": -1.0}, device="cpu")
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        Trainer({**CFG, "epochs": 0}, device="cpu")
    with pytest.raises(ConfigError, match="has no option 'dropout_rate'|did you mean"):
        Trainer({**CFG, "dropout_rate": 0.1}, device="cpu")


def test_test_split_needs_a_chosen_configuration():
    tr, _ = _run(CFG, epochs=1)
    with pytest.raises(ConfigError, match="test split"):
        tr.test_best()
    chosen = Trainer(CFG, device="cpu", allow_test=True)
    chosen.best = tr.best
    assert "test_loss" in chosen.test_best()


def test_orthogonal_model_groups_reach_the_optimiser():
    tr = Trainer({**CFG, "model": "nnrnn", "lr_orth": 1e-4, "Tdecay": 1e-5, "delta": 0.1}, device="cpu")
    by_tag = {g["tag"]: g for g in tr.optimizer.param_groups}
    assert by_tag["orth"]["lr"] == 1e-4 and by_tag["tdecay"]["weight_decay"] == 1e-5
    assert tr.model.extra_loss() is not None
    tr.train_epoch()


def test_loss_read_once_per_epoch_still_catches_divergence_and_sums_exactly():
    """The GPU path reads the loss on the host only every ``check_every`` updates: a NaN or an exploding loss in
    between is still caught at the read, and the reported training loss is the per-step float64 sum."""
    tr = Trainer(CFG, device="cpu")
    tr.check_every = 10**6  # as on a GPU: one read at the end of the epoch
    with torch.no_grad():
        tr.model.decoder.weight.fill_(float("nan"))
    with pytest.raises(Diverged, match="non-finite"):
        tr.train_epoch()
    tr = Trainer({**CFG, "max_loss": 1e-3}, device="cpu")
    tr.check_every = 10**6
    with pytest.raises(Diverged, match="exceeded max_loss"):
        tr.train_epoch()
    # the reported loss equals the mean of the per-step losses summed on the host in float64, update by update
    a, b = Trainer(CFG, device="cpu"), Trainer(CFG, device="cpu")
    b.check_every = 10**6
    losses = []
    orig = a.task.objective.loss

    def spy(out, batch):
        v = orig(out, batch)
        losses.append(float(v.detach()))
        return v

    a.task.objective.loss = spy
    ra = a.train_epoch()
    rb = b.train_epoch()
    assert ra["train_loss"] == rb["train_loss"] == sum(losses) / len(losses)
