"""rnns.model and rnns.optim: readouts, the minimal-LRU residual block, parameter groups and the LR schedule."""
import pytest
import torch
from torch.nn import functional as F

from rnns.errors import ConfigError
from rnns.model import MODEL_OPTIONS, ResidualBlock, SequenceModel, count_parameters, split_model_options
from rnns.optim import build_optimizer, build_schedule, warmup_cosine
from rnns.registry import build_cell

MY_CELLS = ["lru", "diag_rnn", "linear_rnn", "rnn"]


def _model(cell="lru", readout="all", **kw):
    torch.manual_seed(0)
    opts = dict(hidden_size=8, num_layers=2, embed_dim=6, block="residual", norm="layer")
    opts.update(kw)
    return SequenceModel(cell, 3, 4, readout, **opts).eval()


def test_readouts_are_views_of_every_step():
    x = torch.randn(2, 7, 3)
    every, _ = _model(readout="all")(x)
    last, _ = _model(readout="last")(x)
    mean, _ = _model(readout="mean")(x)
    assert every.shape == (2, 7, 4) and last.shape == (2, 4) and mean.shape == (2, 4)
    torch.testing.assert_close(last, every[:, -1])
    torch.testing.assert_close(mean, every.mean(dim=1))  # the decoder is affine, so it commutes with the mean


def test_state_carries_across_chunks():
    m = _model(cell="lru")
    x = torch.randn(2, 9, 3)
    y, _ = m(x)
    y1, s = m(x[:, :4])
    y2, _ = m(x[:, 4:], s)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)


@pytest.mark.parametrize("second_gelu", [False, True])
@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_residual_block_by_hand(second_gelu, norm):
    torch.manual_seed(0)
    block = ResidualBlock(build_cell("lru", 6, 8), 6, norm, 0.0, second_gelu).train()
    u = torch.randn(3, 5, 6)
    out, _ = block(u)
    if norm == "batch":  # statistics pooled over batch and time, per feature
        mu, var = u.mean(dim=(0, 1)), u.var(dim=(0, 1), unbiased=False)
        z = (u - mu) / torch.sqrt(var + 1e-5)
    else:
        z = F.layer_norm(u, (6,), eps=1e-6)  # Flax's LayerNorm epsilon (issue 12 item 5)
    v = F.gelu(block.cell(z)[0], approximate="tanh")  # Flax's nn.gelu, the tanh approximation (issue 12 item 5)
    if second_gelu:
        v = F.gelu(v, approximate="tanh")
    v = block.glu_a(v) * torch.sigmoid(block.glu_b(v))
    torch.testing.assert_close(out, u + v)


def test_batchnorm_momentum_matches_flax():
    block = ResidualBlock(build_cell("lru", 6, 8), 6, "batch", 0.0)
    assert block.norm.norm.momentum == pytest.approx(0.01)  # flax momentum 0.99 on the running average


def test_dropout_mask_shared_over_time():
    torch.manual_seed(0)
    block = ResidualBlock(build_cell("lru", 16, 8), 16, "layer", 0.5).train()
    kept = block._drop(torch.ones(4, 10, 16)) != 0  # (B, T, H)
    assert (kept == kept[:, :1]).all()  # one mask per (sequence, feature)
    assert 0 < kept.float().mean() < 1


def test_flax_dense_init_in_residual_model():
    m = SequenceModel("lru", 3, 4, "mean", hidden_size=8, embed_dim=256, block="residual")
    w = m.layers[0].glu_a.weight
    assert m.layers[0].glu_a.bias.abs().max() == 0 and m.decoder.bias.abs().max() == 0
    assert abs(w.std().item() - 1 / 16) < 0.004  # variance 1 / fan_in
    assert w.abs().max() <= 2 / 16 / 0.87962566103423978 + 1e-6  # truncated at 2 sd


def test_second_gelu_only_in_residual():
    assert "second_gelu" in MODEL_OPTIONS
    with pytest.raises(ConfigError):
        SequenceModel("lru", 3, 4, "last", embed_dim=6, second_gelu=True)


def test_split_model_options():
    mine, rest = split_model_options("lru", {"num_layers": 2, "r_min": 0.5, "lr": 1e-3, "second_gelu": True})
    assert mine == {"num_layers": 2, "r_min": 0.5, "second_gelu": True} and rest == {"lr": 1e-3}


@pytest.mark.parametrize("block", ["residual", "stack"])
@pytest.mark.parametrize("cell", MY_CELLS)
def test_param_groups_cover_every_parameter_once(cell, block):
    m = _model(cell=cell, block=block, norm="batch" if block == "residual" else "none")
    groups = m.param_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(m.parameters()))
    assert sum(p.numel() for ps in groups.values() for p in ps) == count_parameters(m)


def test_optimizer_groups_lru_recipe():
    m = _model(cell="lru", norm="batch")
    opt = build_optimizer(m, optimizer="adamw", lr=1e-3, weight_decay=0.05, lr_factor=0.25)
    by_tag = {g["tag"]: g for g in opt.param_groups}
    assert set(by_tag) == {"recurrent", "default"}
    rec, default = by_tag["recurrent"], by_tag["default"]
    assert rec["lr"] == pytest.approx(2.5e-4) and rec["weight_decay"] == 0.0
    assert default["lr"] == pytest.approx(1e-3) and default["weight_decay"] == 0.05
    lrus = m.cells()
    want = {id(p) for c in lrus for p in (c.nu_log, c.theta_log, c.gamma_log, c.B_re, c.B_im)}
    assert {id(p) for p in rec["params"]} == want
    default_ids = {id(p) for p in default["params"]}
    for c in lrus:
        assert {id(c.C_re), id(c.C_im), id(c.D)} <= default_ids
    assert id(m.encoder.weight) in default_ids and id(m.decoder.weight) in default_ids
    assert id(m.layers[0].glu_a.weight) in default_ids and id(m.layers[0].norm.norm.weight) in default_ids


def test_warmup_cosine_shape():
    W, T, r = 10, 110, 1e-3
    f = [warmup_cosine(s, warmup_steps=W, total_steps=T, lr_min_ratio=r) for s in range(T + 20)]
    assert f[0] == pytest.approx(1 / W) and f[W - 1] == pytest.approx(1.0) and f[W] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(f[:W - 1], f[1:W]))  # warmup rises
    assert all(b <= a for a, b in zip(f[W:T], f[W + 1:T + 1]))  # cosine falls
    assert f[(W + T) // 2] == pytest.approx(r + (1 - r) / 2)  # halfway through the cosine, not halfway overall
    assert f[T] == r and all(v == r for v in f[T:])  # lr_min exactly at total_steps, and it stays there
    assert f[T - 1] > r
    assert warmup_cosine(0, warmup_steps=0, total_steps=T, lr_min_ratio=r) == 1.0


def test_schedule_reaches_lr_min_at_total_steps():
    m = _model(cell="lru")
    opt = build_optimizer(m, optimizer="adamw", lr=1e-3, lr_factor=0.5)
    sched = build_schedule(opt, schedule="cosine", total_steps=30, warmup_steps=5, lr_min=1e-7)
    lrs = []
    for _ in range(30):
        lrs.append({g["tag"]: g["lr"] for g in opt.param_groups})
        opt.step()
        sched.step()
    assert lrs[0]["default"] == pytest.approx(2e-4) and lrs[4]["default"] == pytest.approx(1e-3)
    final = {g["tag"]: g["lr"] for g in opt.param_groups}
    assert final["default"] == pytest.approx(1e-7, rel=1e-9)
    assert final["recurrent"] == pytest.approx(0.5e-7, rel=1e-9)  # the same fraction of its own rate


@pytest.mark.parametrize("kw", [{"total_steps": 0}, {"warmup_steps": -1}, {"lr_min": -1.0}, {"schedule": "step"}])
def test_schedule_bad_settings(kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError):
        build_schedule(opt, **{"schedule": "cosine", **kw})

