"""Trial packs (search.pack, issue 14): a pack of K member configurations trains exactly as K single trials.

Float64 equivalence runs the singles on their reference paths (RNNSWEEP_REFERENCE_CELLS=1), the paths the pack's
vmap uses; the synthetic task's inputs are cast to the default dtype (its batch maker writes float32).
"""
from __future__ import annotations

import math

import pytest
import torch

from datasets import synthetic
from rnns.errors import ConfigError
from rnns.registry import cells
from search.config import known_keys
from search.pack import PackTrainer, shape_spec, signature
from search.train import Trainer

BASE = {"task": "copy_nnrnn", "delay": 4, "updates": 5, "n_val": 30, "hidden_size": 6, "epochs": 2,
        "optimizer": "rmsprop", "batch_size": 4}
# three members per cell: different lr and seed, one clipped, one on Adam; each cell's own value-only options vary
CELL_MEMBERS = {
    "rnn": [{}, {"nonlin": "tanh"}, {}],
    "exprnn": [{"lr_orth": 1e-4}, {"lr_orth": 3e-4}, {"lr_orth": 2e-4}],
    "nnrnn": [{"lr_orth": 1e-4, "delta": 1e-4}, {"lr_orth": 2e-4, "delta": 0.1, "Tdecay": 1e-3},
              {"lr_orth": 3e-4, "delta": 1.0, "Tdecay": 1e-2}],
    "ur_lstm": [{}, {}, {}],
    "lru": [{"r_min": 0.5}, {"r_min": 0.9, "lr_factor": 0.5}, {"max_phase": 3.14}],
    # minimal-LRU's block: pre-norm BatchNorm (running statistics are stacked buffers), GLU, AdamW, warmup + cosine
    "lru_residual": [{"model": "lru", "block": "residual", "norm": "batch", "embed_dim": 6, "schedule": "cosine",
                      "warmup_epochs": 0.5, "r_min": 0.5, "optimizer": "adamw"}] * 3,
}
COMMON_MEMBERS = [{"lr": 1e-3, "seed": 1}, {"lr": 3e-3, "seed": 2, "grad_clip": 0.05},
                  {"lr": 2e-3, "seed": 3, "optimizer": "adam", "weight_decay": 1e-3}]


def configs(cell, **over):
    return [{**BASE, "model": cell, **COMMON_MEMBERS[k], **CELL_MEMBERS[cell][k], **over} for k in range(3)]


def test_pack_keeps_batchnorm_statistics_per_member(float64):
    cfgs = configs("lru_residual")
    pk = PackTrainer(cfgs, device="cpu")
    pk.run_epoch()
    singles, _ = run_singles(cfgs, 1)
    for k, i in enumerate(pk.ids):
        mine, theirs = pk.members[i].model.state_dict(), singles[k].model.state_dict()
        rm = [n for n in theirs if n.endswith("running_mean")]
        assert rm and all(torch.allclose(mine[n], theirs[n], rtol=1e-10, atol=0) for n in rm)
        assert int(mine[rm[0].replace("running_mean", "num_batches_tracked")]) == BASE["updates"]


@pytest.fixture
def float64(monkeypatch):
    """float64 everywhere (built and trained), reference paths for the singles."""
    monkeypatch.setenv("RNNSWEEP_REFERENCE_CELLS", "1")
    make = synthetic.copy_nnrnn_batch

    def cast(*a, **k):
        b = make(*a, **k)
        return b._replace(x=b.x.to(torch.get_default_dtype()))

    monkeypatch.setattr(synthetic, "copy_nnrnn_batch", cast)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def weight_rel(sd_a, sd_b) -> float:
    """Largest relative difference ||a - b|| / ||b|| over the tensors. (nnRNN's T starts at zero and RMSprop/Adam
    divide its tiny gradients by their own running scale: batched and single matrix_exp backward round differently
    at 1e-16 and that grows to ~1e-10 of T's largest entry in 10 updates, ~4e-11 of its norm.)"""
    return max(float((sd_a[n] - sd_b[n]).norm() / sd_b[n].norm().clamp_min(1e-300)) for n in sd_b
               if sd_b[n].is_floating_point())


def run_singles(cfgs, epochs):
    singles = [Trainer(c, device="cpu") for c in cfgs]
    return singles, [[s.run_epoch() for _ in range(epochs)] for s in singles]


def assert_member_equals_single(pk, i, single, pack_rows, single_rows, tol):
    assert len(pack_rows) == len(single_rows)
    for p, s in zip(pack_rows, single_rows):
        assert p["diverged"] == 0
        assert set(p) == set(s) | {"diverged"}  # exactly Trainer.run_epoch's keys
        assert p["epoch"] == s["epoch"]
        assert rel(p["train_loss"], s["train_loss"]) <= tol, (i, p["train_loss"], s["train_loss"])
        assert rel(p["val_loss"], s["val_loss"]) <= tol, (i, p["val_loss"], s["val_loss"])
        assert rel(p["val_accuracy"], s["val_accuracy"]) <= tol
    assert weight_rel(pk.members[i].model.state_dict(), single.model.state_dict()) <= tol


@pytest.mark.parametrize("cell", sorted(CELL_MEMBERS))
def test_pack_equals_single_trials_float64(cell, float64):
    cfgs = configs(cell)
    pk = PackTrainer(cfgs, device="cpu")
    rows = {i: [] for i in pk.ids}
    for _ in range(2):
        for i, m in pk.run_epoch().items():
            rows[i].append(m)
    singles, srows = run_singles(cfgs, 2)
    assert pk.alive == pk.ids and not pk.ended
    for k, i in enumerate(pk.ids):
        assert_member_equals_single(pk, i, singles[k], rows[i], srows[k], 1e-10)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_pack_equals_single_trials_float32_fast_singles(cell):
    # the singles run their ordinary (fast) paths; one epoch agrees to float32 round-off amplified by training
    cfgs = [{**BASE, "model": cell, **COMMON_MEMBERS[k], "epochs": 1} for k in range(3)]
    pk = PackTrainer(cfgs, device="cpu")
    out = pk.run_epoch()
    singles, srows = run_singles(cfgs, 1)
    for k, i in enumerate(pk.ids):
        assert_member_equals_single(pk, i, singles[k], [out[i]], srows[k], 1e-5)


def test_clipping_one_member_never_touches_another(float64):
    a = {**BASE, "model": "rnn", "lr": 1e-2, "seed": 1}
    b = {**BASE, "model": "rnn", "lr": 1e-2, "seed": 2}
    p1 = PackTrainer([a, {**b, "grad_clip": 1e-6}], device="cpu")
    p2 = PackTrainer([a, b], device="cpu")
    r1, r2 = p1.run_epoch(), p2.run_epoch()
    assert r1["m0"]["train_loss"] == r2["m0"]["train_loss"]
    for n, t in p1.members["m0"].model.state_dict().items():
        assert torch.equal(t, p2.members["m0"].model.state_dict()[n])
    # and the clip did act on its own member
    assert weight_rel(p1.members["m1"].model.state_dict(), p2.members["m1"].model.state_dict()) > 1e-3


@pytest.mark.parametrize("how", ["huge_lr", "nan_weights"])
def test_divergence_ends_one_member_only(how, float64):
    cfgs = configs("rnn")
    if how == "huge_lr":
        cfgs[1] = {**cfgs[1], "lr": 1e3, "grad_clip": 0, "max_loss": 3.0}
    pk = PackTrainer(cfgs, device="cpu")
    if how == "nan_weights":
        with torch.no_grad():
            pk.members["m1"].model.decoder.weight[0, 0] = float("nan")  # a view of the stack: the pack sees it
    r1, r2 = pk.run_epoch(), pk.run_epoch()
    assert r1["m1"]["diverged"] == 1 and r1["m1"]["epoch"] == 1
    assert ("non-finite" if how == "nan_weights" else "exceeded max_loss") in r1["m1"]["diverged_reason"]
    assert "m1" not in r2 and pk.alive == ["m0", "m2"] and pk.ended["m1"].startswith("diverged: ")
    singles, srows = run_singles([cfgs[0], cfgs[2]], 2)
    for s, i, sr in zip(singles, ("m0", "m2"), srows):
        assert_member_equals_single(pk, i, s, [r1[i], r2[i]], sr, 1e-10)
        assert all(torch.isfinite(t).all() for t in pk.members[i].model.state_dict().values())


def test_drop_stops_one_member(float64):
    cfgs = configs("rnn")
    pk = PackTrainer(cfgs, device="cpu")
    r1 = pk.run_epoch()
    pk.drop("m1")
    w = {n: t.clone() for n, t in pk.members["m1"].model.state_dict().items()}
    r2 = pk.run_epoch()
    assert set(r2) == {"m0", "m2"} and pk.ended == {"m1": "stopped"} and pk.alive == ["m0", "m2"]
    assert pk.members["m1"].epoch == 1
    for n, t in pk.members["m1"].model.state_dict().items():
        assert torch.equal(t, w[n])  # a dropped member's weights stay as they were
    singles, srows = run_singles([cfgs[0], cfgs[2]], 2)
    for s, i, sr in zip(singles, ("m0", "m2"), srows):
        assert_member_equals_single(pk, i, s, [r1[i], r2[i]], sr, 1e-10)
    with pytest.raises(KeyError):
        pk.drop("nobody")


def test_member_state_dict_loads_into_a_single_trainer():
    cfgs = configs("rnn")
    pk = PackTrainer(cfgs, ids=["a", "b", "c"], device="cpu")
    rec = pk.run_epoch()
    sd = pk.member_state_dict("b")
    before = sd["model"]["decoder.weight"].clone()
    pk.run_epoch()  # the pack trains on: the extracted state is a copy, not a view of the stack
    assert torch.equal(sd["model"]["decoder.weight"], before)
    tr = Trainer(cfgs[1], device="cpu")
    tr.load_state_dict(sd)
    assert tr.epoch == 1
    assert tr.evaluate("val")["loss"] == rec["b"]["val_loss"]
    tr.model.load_state_dict(tr.best["weights"])
    assert tr.evaluate("val")["loss"] == rec["b"]["best_val_loss"]


def test_pack_resume_equals_uninterrupted(tmp_path):
    cfgs = configs("nnrnn", epochs=3)
    full = PackTrainer(cfgs, device="cpu")
    want = [full.run_epoch() for _ in range(3)]
    part = PackTrainer(cfgs, device="cpu")
    got = [part.run_epoch()]
    torch.save(part.state_dict(), tmp_path / "pack.pt")
    again = PackTrainer(cfgs, device="cpu")
    again.load_state_dict(torch.load(tmp_path / "pack.pt", weights_only=True))
    assert again.epoch == 1
    got += [again.run_epoch() for _ in range(2)]
    for w, g in zip(want, got):
        assert {i: m["val_loss"] for i, m in w.items()} == {i: m["val_loss"] for i, m in g.items()}
        assert {i: m["train_loss"] for i, m in w.items()} == {i: m["train_loss"] for i, m in g.items()}
    # a dropped member stays dropped across a resume
    part2 = PackTrainer(cfgs, device="cpu")
    part2.run_epoch()
    part2.drop("m0")
    again2 = PackTrainer(cfgs, device="cpu")
    again2.load_state_dict(part2.state_dict())
    assert again2.alive == ["m1", "m2"] and again2.ended == {"m0": "stopped"}
    assert set(again2.run_epoch()) == {"m1", "m2"}


def test_members_of_different_shapes_are_refused():
    with pytest.raises(ConfigError, match="differ in shape.*hidden|differ in shape.*param"):
        PackTrainer([{**BASE, "model": "rnn"}, {**BASE, "model": "rnn", "hidden_size": 8}], device="cpu")
    with pytest.raises(ConfigError, match="differ.*nonlin"):
        PackTrainer([{**BASE, "model": "rnn"}, {**BASE, "model": "rnn", "nonlin": "relu"}], device="cpu")
    with pytest.raises(ConfigError, match="epochs"):
        PackTrainer([{**BASE, "model": "rnn"}, {**BASE, "model": "rnn", "epochs": 3}], device="cpu")


@pytest.mark.parametrize("cell", sorted(cells()))
def test_every_cell_trains_in_a_pack(cell):
    cfg = {**BASE, "model": cell, "updates": 2, "n_val": 8, "epochs": 1, "hidden_size": 4, "lr_orth": 1e-4,
           "delay": 2}
    pk = PackTrainer([{**cfg, "seed": 1, "lr": 1e-3}, {**cfg, "seed": 2, "lr": 3e-3}], device="cpu")
    out = pk.run_epoch()
    assert not pk.ended, pk.ended
    assert all(m["diverged"] == 0 and math.isfinite(m["val_loss"]) for m in out.values())
    # the members really are the single trials (fast paths differ from the pack's by round-off only)
    single = Trainer({**cfg, "seed": 2, "lr": 3e-3}, device="cpu")
    assert rel(out["m1"]["train_loss"], single.run_epoch()["train_loss"]) < 1e-4


SIGNATURE_SPACES = ("demo/copy", "demo/copy_lru", "nnrnn/copy", "urlstm/copy", "lru/copy", "stair/copy",
                    "exprnn/copy1000")


def test_signature_agrees_with_the_built_members():
    """For configurations of registered spaces that differ in one parameter, signature() is equal exactly when
    the built members have the same shapes, task and forward function."""
    from spaces.base import smoke_config
    from spaces.registry import get_space

    small = {"epochs": 1, "updates": 1, "n_train": 8, "n_val": 4, "batch_size": 2, "delay": 3, "pattern": 2,
             "seq_len": 6}
    checked = 0
    for name in SIGNATURE_SPACES:
        space = get_space(name)
        for model in space.models:
            cfg = smoke_config(space, space.base_config(model), known_keys(space.task, model))
            cfg.pop("param_budget", None)
            cfg.setdefault("hidden_size", 8)
            cfg.setdefault("lr_orth", 1e-4)
            cfg["hidden_size"] = min(int(cfg["hidden_size"]), 8)
            keys = known_keys(space.task, model)
            cfg.update({k: v for k, v in small.items() if k in keys})
            for p in space.params_for(cfg):
                vals = p.grid_values()
                if len(vals) < 2:
                    continue
                a, b = {**cfg, p.config_key: vals[0]}, {**cfg, p.config_key: vals[-1]}
                if p.config_key == "hidden_size":
                    a["hidden_size"], b["hidden_size"] = 4, 6
                same_sig = signature(a) == signature(b)
                ta, tb = Trainer(a, device="cpu"), Trainer(b, device="cpu")
                assert same_sig == (shape_spec(ta) == shape_spec(tb)), (name, model, p.config_key)
                checked += 1
    assert checked >= 100


def test_stateful_task_carries_each_members_state(float64):
    """A stateful task (truncated BPTT across batches, as the language-model tasks): every member carries its own
    state from batch to batch, also after another member ended. Two layers of ur_lstm: a list of (h, c) tuples."""
    import dataclasses

    cfgs = configs("ur_lstm", num_layers=2)
    cfgs[1] = {**cfgs[1], "lr": 1e3, "grad_clip": 0, "max_loss": 2.3}  # ends within the first epoch
    pk = PackTrainer(cfgs, device="cpu")
    singles = [Trainer(c, device="cpu") for c in (cfgs[0], cfgs[2])]
    for tr in list(pk.members.values()) + singles:
        tr.task.spec = dataclasses.replace(tr.task.spec, stateful=True)
    rows = [pk.run_epoch() for _ in range(2)]
    assert rows[0]["m1"]["diverged"] == 1
    for s, i in zip(singles, ("m0", "m2")):
        srows = [s.run_epoch() for _ in range(2)]
        assert_member_equals_single(pk, i, s, [r[i] for r in rows], srows, 1e-10)
