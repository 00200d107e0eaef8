"""RRU cell (equations, init, parameter count) and the RRU paper's modified RAdam against a slow reference.

Zakovskis et al., "Gates are not what you need in RNNs", arXiv 2108.00527 (PAPERS.md sections 4.1-4.2).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rnns.errors import ConfigError
from rnns.model import SequenceModel, count_parameters
from rnns.optim import build_optimizer
from rnns.registry import build_cell, cells
from rnns.rradam import RRAdam
from rnns.rru import rru_param_count

D, N, B, T = 3, 8, 4, 6


def _rru(**opts):
    torch.manual_seed(0)
    return build_cell("rru", D, N, **opts).double().eval()


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_options():
    assert cells()["rru"].options() == {"out_size": 0, "relu_layers": 1, "middle": 2.0, "dropout": 0.0}
    for bad in ({"out_size": -1}, {"relu_layers": 0}, {"middle": 0}, {"dropout": 1.0}):
        with pytest.raises(ConfigError):
            build_cell("rru", D, N, **bad)


def test_step_by_hand():
    cell = _rru(out_size=5, relu_layers=2, middle=1.5)
    with torch.no_grad():  # non-trivial s, zeta and biases so every term shows
        cell.zeta.normal_()
        cell.s.normal_(0, 0.2)
        for lin in (*cell.J, cell.W):
            lin.bias.normal_()
    x = torch.randn(B, 1, D, dtype=torch.float64)
    h = torch.randn(B, N, dtype=torch.float64)
    z = torch.cat([x[:, 0], h], dim=1)
    v = z @ cell.J[0].weight.T + cell.J[0].bias
    a = torch.relu(v / torch.sqrt((v ** 2).mean(dim=1, keepdim=True) + 1e-6))
    a = torch.relu(a @ cell.J[1].weight.T + cell.J[1].bias)
    cw = a @ cell.W.weight.T + cell.W.bias
    c, o = cw[:, :N], cw[:, N:]
    h1 = torch.sigmoid(10 * cell.s) * h + cell.zeta * c
    y, hT = cell(x, h)
    _close(y[:, 0], o)
    _close(hT, h1)
    assert cell.inner_size == round(1.5 * (D + N)) and y.shape == (B, 1, 5)


@pytest.mark.parametrize("opts", [{}, {"out_size": 5, "relu_layers": 3, "middle": 0.7}])
def test_forward_equals_chained_single_steps(opts):
    cell = _rru(**opts)
    with torch.no_grad():
        cell.zeta.normal_()
    x = torch.randn(B, T, D, dtype=torch.float64)
    for h0 in (None, torch.randn(B, N, dtype=torch.float64)):
        y, hT = cell(x, h0)
        h, ys = h0, []
        for t in range(T):
            yt, h = cell(x[:, t:t + 1], h)
            ys.append(yt)
        _close(torch.cat(ys, dim=1), y)
        _close(h, hT)


def test_init():
    torch.manual_seed(0)
    cell = build_cell("rru", D, 400, relu_layers=2)
    keep = torch.sigmoid(10 * cell.s.detach())
    assert keep.min() > 0.01 and keep.max() < 0.99 and keep.max() - keep.min() > 0.9  # spread over (0.01, 0.99)
    assert abs(float(keep.mean()) - 0.5) < 0.05
    assert torch.all(cell.zeta == 0)
    for lin in (*cell.J, cell.W):
        assert torch.all(lin.bias == 0)
        fan_out, fan_in = lin.weight.shape
        bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot uniform
        w = lin.weight.detach()
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    # default initial state (0.25 sqrt(N), 0, ..., 0), and at init (zeta = 0) h_T = sigma(10 s)^T h_0
    _, hT = cell(torch.randn(2, T, D))
    h0 = torch.zeros(400)
    h0[0] = 0.25 * math.sqrt(400)
    torch.testing.assert_close(hT, (keep ** T * h0).expand(2, 400))


@pytest.mark.parametrize("Din,Nh,O,m,L", [(3, 8, 0, 2.0, 1), (5, 7, 4, 1.3, 2), (1, 16, 64, 0.5, 3)])
def test_parameter_count(Din, Nh, O, m, L):
    cell = build_cell("rru", Din, Nh, out_size=O, middle=m, relu_layers=L)
    M = round(m * (Din + Nh))
    assert count_parameters(cell) == rru_param_count(Din, Nh, O or Nh, M, L)
    assert cell.output_size == (O or Nh)


def test_dropout_only_in_training():
    cell = _rru(dropout=0.5)
    with torch.no_grad():
        cell.zeta.fill_(1.0)
    x = torch.randn(B, T, D, dtype=torch.float64)
    _close(cell(x)[0], cell(x)[0])
    cell.train()
    assert not torch.equal(cell(x)[0], cell(x)[0])


def test_float64_default_dtype_builds_a_pure_float64_cell():
    """s was built with .float(): under a float64 default dtype the cell was mixed precision (issue 12 item 7)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        cell = build_cell("rru", D, N)
    finally:
        torch.set_default_dtype(old)
    assert {p.dtype for p in cell.parameters()} == {torch.float64}
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    y, h = cell(x)
    assert y.dtype == h.dtype == torch.float64
    y.sum().backward()
    assert cell.s.grad.dtype == torch.float64 and x.grad.dtype == torch.float64


def test_stacked_layers_take_out_size():
    model = SequenceModel("rru", D, 4, "last", hidden_size=N, num_layers=2, out_size=5)
    assert model.layers[1].input_size == 5 and model.decoder.in_features == 5
    out, _ = model(torch.randn(B, T, D))
    out.sum().backward()
    assert out.shape == (B, 4)


# ----------------------------------------------------------------------------------------------- rradam


def _reference_rradam(params, grads_per_step, *, lr, b1, b2, eps, mult, wd):
    """Element by element, Python floats: the equations of PAPERS 4.2 as directly as they read."""
    ps = [[float(v) for v in p.flatten()] for p in params]
    ms = [[0.0] * len(p) for p in ps]
    vs = [[0.0] * len(p) for p in ps]
    rho_inf = 2 / (1 - b2) - 1
    for t, grads in enumerate(grads_per_step, start=1):
        for p, m, v, gt in zip(ps, ms, vs, grads):
            g = [float(e) for e in gt.flatten()]
            if mult is not None:
                clip = mult * math.sqrt(sum(v) / (1 - b2 ** t)) + 0.01
                norm = math.sqrt(sum(e * e for e in g))
                if norm > clip:
                    g = [e * clip / norm for e in g]
            rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
            r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) if rho >= 5 else 1.0
            for k in range(len(p)):
                v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
                m[k] = b1 * m[k] + (1 - b1) * g[k] / (math.sqrt(v[k] / (1 - b2 ** t)) + eps)
                p[k] -= lr * (r * m[k] / (1 - b1 ** t) + wd * p[k])
    return ps


@pytest.mark.parametrize("mult,wd,b2", [(2.0, 0.0, 0.999), (None, 0.1, 0.999), (0.5, 0.0, 0.9)])
def test_rradam_matches_reference(mult, wd, b2):
    g = torch.Generator().manual_seed(0)
    params = [nn.Parameter(torch.randn(3, 4, generator=g, dtype=torch.float64)),
              nn.Parameter(torch.randn(5, generator=g, dtype=torch.float64))]
    start = [p.detach().clone() for p in params]
    # gradient scales jump around so the clip binds on some steps and not on others; 12 steps pass rho_t >= 5
    steps = [[torch.randn(p.shape, generator=g, dtype=torch.float64) * s for p in params]
             for s in (1.0, 0.01, 3.0, 0.2, 1.0, 5.0, 0.1, 1.0, 2.0, 0.05, 1.0, 10.0)]
    opt = RRAdam(params, lr=0.01, betas=(0.9, b2), eps=1e-7, clip_multiplier=mult, weight_decay=wd)
    for grads in steps:
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        opt.step()
    ref = _reference_rradam(start, steps, lr=0.01, b1=0.9, b2=b2, eps=1e-7, mult=mult, wd=wd)
    for p, r in zip(params, ref):
        _close(p.detach().flatten(), torch.tensor(r, dtype=torch.float64))


def test_rradam_first_step_clip_and_registry():
    p = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = RRAdam([p], lr=1.0, clip_multiplier=5.0)
    p.grad = torch.full((4,), 100.0, dtype=torch.float64)
    opt.step()  # v_0 = 0, so the first gradient is clipped to norm 0.01; the normalised update is still ~ -1
    assert torch.all(p < 0) and torch.allclose(p, torch.full((4,), -1.0, dtype=torch.float64), atol=1e-4)
    model = SequenceModel("rru", D, 2, "last", hidden_size=N)
    opt = build_optimizer(model, optimizer="rradam", lr=1e-3, clip_multiplier=1.5, momentum=0.9)
    assert isinstance(opt, RRAdam) and opt.param_groups[0]["clip_multiplier"] == 1.5
    assert opt.param_groups[0]["eps"] == 1e-7
    model(torch.randn(2, T, D))[0].sum().backward()
    opt.step()
    with pytest.raises(ConfigError):
        RRAdam([p], clip_multiplier=-1.0)
