"""LSTM family (lstm, u_lstm, r_lstm, ur_lstm), GRU and Mogrifier LSTM: equations, fused vs reference, inits.

Gu et al., "Improving the Gating Mechanism of Recurrent Neural Networks", arXiv 1910.09890; Melis et al.,
"Mogrifier LSTM", arXiv 1909.01792; Cho et al. (GRU), arXiv 1406.1078.
"""
from __future__ import annotations

import math

import pytest
import torch

from rnns.errors import ConfigError
from rnns.gru import gru_step
from rnns.lstm import chrono_forget_bias, lstm_step, ugi_forget_bias
from rnns.model import SequenceModel, count_parameters
from rnns.registry import build_cell, cells

D, H, B, T = 3, 8, 4, 7
sig = torch.sigmoid

# every cell this file owns, with option sets worth covering
CASES = [
    ("lstm", {}), ("lstm", {"chrono": 20}), ("lstm", {"forget_bias": -0.5}), ("u_lstm", {}),
    ("r_lstm", {}), ("ur_lstm", {}), ("gru", {}),
    ("mogrifier_lstm", {}), ("mogrifier_lstm", {"rank": 2, "rounds": 4}), ("mogrifier_lstm", {"rounds": 0}),
]


def _cell(name, **opts):
    torch.manual_seed(0)
    return build_cell(name, D, H, **opts).double()


def _state(name, x):
    g = torch.Generator().manual_seed(1)
    h = torch.randn(x.shape[0], H, generator=g, dtype=x.dtype)
    return h if name == "gru" else (h, torch.randn(x.shape[0], H, generator=g, dtype=x.dtype))


def _close(a, b):
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    else:
        for u, v in zip(a, b, strict=True):
            _close(u, v)


def test_registered_names_and_options():
    reg = cells()
    # every gated cell drops its candidate inside the cell (issue 12 item 2), so each has a `dropout` option
    assert reg["lstm"].options() == {"forget_bias": 1.0, "chrono": 0, "dropout": 0.0}
    assert reg["u_lstm"].options() == reg["ur_lstm"].options() == reg["gru"].options() == {"dropout": 0.0}
    assert reg["r_lstm"].options() == {"forget_bias": 1.0, "dropout": 0.0}
    assert reg["mogrifier_lstm"].options() == {"rank": 0, "rounds": 5, "dropout": 0.0, "cap_input_gate": True,
                                               "gate_bias": True, "init": "lamb"}


@pytest.mark.parametrize("name,opts", CASES)
def test_forward_equals_chained_single_steps(name, opts):
    cell = _cell(name, **opts)
    x = torch.randn(B, T, D, dtype=torch.float64)
    for h0 in (None, _state(name, x)):
        y, hT = cell(x, h0)
        h, ys = h0, []
        for t in range(T):
            yt, h = cell(x[:, t:t + 1], h)
            ys.append(yt)
        _close(torch.cat(ys, dim=1), y)
        _close(h, hT)
        assert y.shape == (B, T, cell.output_size)


@pytest.mark.parametrize("name,opts", [c for c in CASES if c[0] in ("lstm", "u_lstm", "gru")])
def test_fused_kernel_equals_reference_step(name, opts):
    cell = _cell(name, **opts)
    x = torch.randn(B, T, D, dtype=torch.float64)
    for h0 in (None, _state(name, x)):
        _close(cell(x, h0), cell.step_reference(x, h0))


def test_lstm_step_by_hand():
    g = torch.Generator().manual_seed(2)
    x, h, c, w_ih, w_hh, b_ih, b_hh = (torch.randn(*s, generator=g, dtype=torch.float64)
                                       for s in ((B, D), (B, H), (B, H), (4 * H, D), (4 * H, H), (4 * H,), (4 * H,)))
    pre = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, gg, o = (pre[:, k * H:(k + 1) * H] for k in range(4))
    c1 = sig(f) * c + sig(i) * torch.tanh(gg)
    _close(lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh), (sig(o) * torch.tanh(c1), c1))
    mask = (torch.rand(B, H, generator=g) > 0.5).double() * 2  # candidate dropout: tanh(g) only, c_{t-1} intact
    c1 = sig(f) * c + sig(i) * torch.tanh(gg) * mask
    _close(lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh, mask), (sig(o) * torch.tanh(c1), c1))


def test_gru_step_by_hand():
    cell = _cell("gru")
    x = torch.randn(B, 1, D, dtype=torch.float64)
    h = torch.randn(B, H, dtype=torch.float64)
    m = cell.gru
    W, U, b, a = m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0
    s = [slice(k * H, (k + 1) * H) for k in range(3)]
    xt = x[:, 0]
    r = sig(xt @ W[s[0]].T + b[s[0]] + h @ U[s[0]].T + a[s[0]])
    z = sig(xt @ W[s[1]].T + b[s[1]] + h @ U[s[1]].T + a[s[1]])
    n = torch.tanh(xt @ W[s[2]].T + b[s[2]] + r * (h @ U[s[2]].T + a[s[2]]))
    h1 = (1 - z) * n + z * h
    y, hT = cell(x, h)
    _close((y[:, 0], hT), (h1, h1))
    _close(gru_step(xt, h, W, U, b, a), h1)


@pytest.mark.parametrize("name", ["ur_lstm", "r_lstm"])
def test_refine_step_by_hand(name):
    cell = _cell(name)
    with torch.no_grad():
        cell.b_f.normal_()  # make the shared bias non-trivial for r_lstm too
    x = torch.randn(B, 1, D, dtype=torch.float64)
    h, c = _state(name, x)
    pre = x[:, 0] @ cell.weight_ih.T + cell.bias + h @ cell.weight_hh.T
    fp, rp, up, op = (pre[:, k * H:(k + 1) * H] for k in range(4))
    f, r = sig(fp + cell.b_f), sig(rp - cell.b_f)
    g = r * (1 - (1 - f) ** 2) + (1 - r) * f ** 2  # the paper's unsimplified effective gate
    c1 = g * c + (1 - g) * torch.tanh(up)
    h1 = sig(op) * torch.tanh(c1)
    y, (hT, cT) = cell(x, (h, c))
    _close((y[:, 0], hT, cT), (h1, h1, c1))


@pytest.mark.parametrize("cap", [True, False])
@pytest.mark.parametrize("rank", [0, 2])
def test_mogrifier_step_by_hand(rank, cap):
    cell = _cell("mogrifier_lstm", rank=rank, rounds=3, cap_input_gate=cap)
    with torch.no_grad():  # non-zero mogrifier and LSTM biases so every term shows
        for p in (*[m.bias for m in cell.mix], cell.bias):
            p.normal_()
    x = torch.randn(B, 1, D, dtype=torch.float64)
    h, c = _state("mogrifier_lstm", x)

    def mat(mix):
        return mix.left @ mix.right if rank else mix.weight

    Q1, R2, Q3 = (mat(m) for m in cell.mix)
    b1, b2, b3 = (m.bias for m in cell.mix)
    assert Q1.shape == (D, H) and R2.shape == (H, D)
    x1 = 2 * sig(h @ Q1.T + b1) * x[:, 0]
    h2 = 2 * sig(x1 @ R2.T + b2) * h
    x3 = 2 * sig(h2 @ Q3.T + b3) * x1
    pre = x3 @ cell.weight_ih.T + h2 @ cell.weight_hh.T + cell.bias
    i, f, g, o = (pre[:, k * H:(k + 1) * H] for k in range(4))
    ig = torch.minimum(1 - sig(f), sig(i)) if cap else sig(i)  # the reference's cap_input_gate
    c1 = sig(f) * c + ig * torch.tanh(g)
    h1 = sig(o) * torch.tanh(c1)
    y, (hT, cT) = cell(x, (h, c))
    _close((y[:, 0], hT, cT), (h1, h1, c1))


def test_mogrifier_shapes_and_options():
    full, low = build_cell("mogrifier_lstm", D, H), build_cell("mogrifier_lstm", D, H, rank=2, rounds=6)
    lstm_part = 4 * H * (D + H) + 4 * H
    # Q1, Q3, Q5 and R2, R4, each with its bias (zero-initialised, as the reference)
    assert count_parameters(full) == lstm_part + 3 * D * H + 2 * H * D + 3 * D + 2 * H
    assert count_parameters(low) == lstm_part + 6 * 2 * (D + H) + 3 * D + 3 * H
    old = build_cell("mogrifier_lstm", D, H, gate_bias=False)
    assert count_parameters(old) == lstm_part + 3 * D * H + 2 * H * D
    for bad in ({"rank": -1}, {"rounds": -2}, {"rank": 2.5}, {"dropout": 1.0}, {"init": "glorot"}):
        with pytest.raises(ConfigError):
            build_cell("mogrifier_lstm", D, H, **bad)


def test_ugi_statistics():
    d = 4000
    b = ugi_forget_bias(d, generator=torch.Generator().manual_seed(0)).double()
    u = sig(b)
    assert u.min() >= 1 / d - 1e-6 and u.max() <= 1 - 1 / d + 1e-6
    # roughly uniform on [1/d, 1 - 1/d]: Kolmogorov-Smirnov distance far below the 1% critical 1.63/sqrt(d)
    ref = (torch.sort(u).values - 1 / d) / (1 - 2 / d)
    ks = (ref - torch.arange(1, d + 1, dtype=torch.float64) / d).abs().max()
    assert ks < 1.63 / math.sqrt(d)
    assert abs(float(u.mean()) - 0.5) < 0.03


def test_ur_lstm_init_biases():
    cell = _cell("ur_lstm")
    with torch.no_grad():
        eff_f = cell.bias[:H] + cell.b_f  # what the forget gate sees at zero input and state
        eff_r = cell.bias[H:2 * H] - cell.b_f
    assert torch.all((sig(eff_f) >= 1 / H - 1e-9) & (sig(eff_f) <= 1 - 1 / H + 1e-9))
    torch.testing.assert_close(eff_r, -eff_f)
    assert float(cell.b_f.detach().std()) > 0  # drawn, not a constant
    # functionally: zero weights and state give f = sigma(b_f) and r = sigma(-b_f) = 1 - f
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh.zero_()
    c0 = torch.ones(1, H, dtype=torch.float64)
    _, (_, c1) = cell(torch.zeros(1, 1, D, dtype=torch.float64), (torch.zeros(1, H, dtype=torch.float64), c0))
    f = sig(cell.b_f.detach())
    g = 2 * (1 - f) * f + (1 - 2 * (1 - f)) * f ** 2
    torch.testing.assert_close(c1[0], g + (1 - g) * torch.tanh(cell.bias[2 * H:3 * H].detach()))


def test_u_lstm_and_r_lstm_init():
    u = build_cell("u_lstm", D, 64).lstm
    bf = (u.bias_ih_l0[64:128] + u.bias_hh_l0[64:128]).detach()
    assert torch.all((sig(bf) >= 1 / 64 - 1e-6) & (sig(bf) <= 1 - 1 / 64 + 1e-6)) and float(bf.std()) > 0.5
    r = build_cell("r_lstm", D, H, forget_bias=2.5)
    assert torch.all(r.b_f == 0) and torch.all(r.bias[:H] == 2.5)
    assert float(r.bias[H:2 * H].detach().abs().max()) <= 1 / math.sqrt(H)  # refine slice keeps the standard init


def test_lstm_forget_bias_and_chrono():
    m = build_cell("lstm", D, H, forget_bias=1.5).lstm
    torch.testing.assert_close(m.bias_ih_l0[H:2 * H] + m.bias_hh_l0[H:2 * H], torch.full((H,), 1.5))
    t_max = 50
    m = build_cell("lstm", D, 256, chrono=t_max).lstm
    bf = (m.bias_ih_l0[256:512] + m.bias_hh_l0[256:512]).detach()
    bi = (m.bias_ih_l0[:256] + m.bias_hh_l0[:256]).detach()
    assert bf.min() >= 0 and bf.max() <= math.log(t_max - 1) + 1e-6
    torch.testing.assert_close(bi, -bf)
    e = torch.exp(chrono_forget_bias(4000, t_max, generator=torch.Generator().manual_seed(0)).double())
    assert e.min() >= 1 - 1e-6 and e.max() <= t_max - 1 + 1e-4
    assert abs(float(e.mean()) - t_max / 2) < 1.0  # uniform on [1, T_max - 1] has mean T_max / 2
    for bad in (1, -3, float("inf")):
        with pytest.raises(ConfigError):
            build_cell("lstm", D, H, chrono=bad)


@pytest.mark.parametrize("name", ["lstm", "u_lstm", "r_lstm", "ur_lstm", "gru", "mogrifier_lstm"])
def test_in_sequence_model_trains(name):
    torch.manual_seed(0)
    model = SequenceModel(name, D, 5, "last", hidden_size=H, num_layers=2, dropout=0.1)
    out, state = model(torch.randn(B, T, D))
    out.sum().backward()
    assert out.shape == (B, 5) and len(state) == 2
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# ----------------------------------------------------------------------------------------------- Mogrifier vs lamb


def _lamb_mogrifier(x, h, c, fm, W, bias, cap, masks):
    """The reference equations (lamb tiled_lstm / RRU MogrifierLSTMCell) in their own layout, step by step.

    fm[r]: (kernel (n_in, n_out), bias) or ((a (n_in, k), b (k, n_out)), bias); round r even gates x by h, odd h by x.
    W ((D + d), 4d) with column tiles (j, o, f, i), bias (4d,). masks: (T, B, d) or None.
    """
    def lin(v, m):
        k, b = m
        return (v @ k[0] @ k[1] if isinstance(k, tuple) else v @ k) + b

    ys = []
    for t in range(x.shape[1]):
        xt, ht = x[:, t], h
        for r, m in enumerate(fm):
            if r % 2 == 0:
                xt = xt * (2 * sig(lin(ht, m)))
            else:
                ht = ht * (2 * sig(lin(xt, m)))
        j_, o_, f_, i_ = (torch.cat([xt, ht], 1) @ W + bias).split(h.shape[1], dim=1)
        f, j, o, i = sig(f_), torch.tanh(j_), sig(o_), sig(i_)
        if masks is not None:
            j = j * masks[t]
        c = f * c + (torch.minimum(1 - f, i) if cap else i) * j
        h = o * torch.tanh(c)
        ys.append(h)
    return torch.stack(ys, 1), (h, c)


@pytest.mark.parametrize("rank,rounds,cap,drop", [(0, 5, True, 0.0), (2, 4, True, 0.3), (0, 3, False, 0.3),
                                                  (3, 6, True, 0.0), (0, 0, True, 0.0)])
def test_mogrifier_against_lamb_reference(rank, rounds, cap, drop):
    from rnns.gated_fast import candidate_masks

    cell = _cell("mogrifier_lstm", rank=rank, rounds=rounds, cap_input_gate=cap, dropout=drop).train()
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))  # non-zero biases everywhere, so each term is tested
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(B, H, generator=g, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(B, H, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(B, T, H, generator=g, dtype=torch.float64)  # a loss weight per output
    torch.manual_seed(7)
    y, (hT, cT) = cell(x, (h0, c0))
    ((y * w).sum() + (hT * cT).sum()).backward()
    ours = [x.grad, h0.grad, c0.grad] + [p.grad for p in cell.parameters()]

    leaves = {n: p.detach().clone().requires_grad_() for n, p in cell.named_parameters()}
    xr, hr, cr = (v.detach().clone().requires_grad_() for v in (x, h0, c0))
    fm = []
    for r in range(rounds):
        k = (leaves[f"mix.{r}.right"].T, leaves[f"mix.{r}.left"].T) if rank else leaves[f"mix.{r}.weight"].T
        fm.append((k, leaves[f"mix.{r}.bias"]))
    i_, f_, g_, o_ = torch.cat([leaves["weight_ih"], leaves["weight_hh"]], 1).T.split(H, dim=1)
    W = torch.cat([g_, o_, f_, i_], 1)  # tiles (j, o, f, i)
    bi, bf, bg, bo = leaves["bias"].split(H)
    torch.manual_seed(7)
    masks = candidate_masks(drop, T, B, H, x)
    yr, (hr_T, cr_T) = _lamb_mogrifier(xr, hr, cr, fm, W, torch.cat([bg, bo, bf, bi]), cap, masks)
    ((yr * w).sum() + (hr_T * cr_T).sum()).backward()
    _close((y, hT, cT), (yr, hr_T, cr_T))
    _close(ours, [xr.grad, hr.grad, cr.grad] + [leaves[n].grad for n, _ in cell.named_parameters()])
    if drop:
        assert (masks == 0).any()  # the masks really dropped something


@torch.no_grad()
def test_mogrifier_lamb_init():
    torch.manual_seed(0)
    Din, d, k = 200, 300, 40
    full = build_cell("mogrifier_lstm", Din, d, rounds=2)
    low = build_cell("mogrifier_lstm", Din, d, rank=k, rounds=2)
    for cell in (full, low):
        for w, fan_in in ((cell.weight_ih, Din), (cell.weight_hh, d)):
            s = math.sqrt(1.3 / fan_in)  # lamb: truncated normal stddev sqrt(1.3 / fan_in), variance ~ 1 / fan_in
            assert abs(float(w.std()) * math.sqrt(fan_in) - 1) < 0.03 and float(w.abs().max()) <= 2 * s
        assert torch.all(cell.bias == 0) and all(torch.all(m.bias == 0) for m in cell.mix)
    for m, (n_in, n_out) in zip(full.mix, ((d, Din), (Din, d))):
        bound = math.sqrt(6 / (n_in + n_out))  # Glorot uniform
        assert float(m.weight.abs().max()) <= bound and float(m.weight.abs().max()) > 0.98 * bound
    for m, n_in in zip(low.mix, (d, Din)):
        s = (1 / (n_in * k)) ** 0.25
        for f in (m.left, m.right):
            assert float(f.abs().max()) <= 2 * s and abs(float(f.std()) / (0.8796 * s) - 1) < 0.05
        # the product has variance ~ 1 / n_in (times the truncation's 0.8796^4)
        prod = (m.left @ m.right).detach()
        assert abs(float(prod.std()) * math.sqrt(n_in) / 0.8796 ** 2 - 1) < 0.05


# ----------------------------------------------------------------------------------------------- dropout (issue 12)

DROP_CELLS = ["lstm", "u_lstm", "r_lstm", "ur_lstm", "gru", "mogrifier_lstm"]


def _by_hand_with_masks(name, cell, x, h0, masks):
    """Each cell's equations with the candidate multiplied by masks[t] (recurrent dropout without memory loss)."""
    if name == "mogrifier_lstm":
        return None  # covered by test_mogrifier_against_lamb_reference
    h, c = (h0, None) if name == "gru" else h0
    ys = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if name == "gru":
            m = cell.gru
            r_, z_, n_ = (xt @ m.weight_ih_l0.T + m.bias_ih_l0).split(H, dim=1)
            hr, hz, hn = (h @ m.weight_hh_l0.T + m.bias_hh_l0).split(H, dim=1)
            z = sig(z_ + hz)
            h = (1 - z) * torch.tanh(n_ + sig(r_ + hr) * hn) * masks[t] + z * h
        elif name in ("lstm", "u_lstm"):
            m = cell.lstm
            i, f, g, o = (xt @ m.weight_ih_l0.T + m.bias_ih_l0 + h @ m.weight_hh_l0.T + m.bias_hh_l0).split(H, dim=1)
            c = sig(f) * c + sig(i) * torch.tanh(g) * masks[t]
            h = sig(o) * torch.tanh(c)
        else:
            fp, rp, up, op = (xt @ cell.weight_ih.T + cell.bias + h @ cell.weight_hh.T).split(H, dim=1)
            f, r = sig(fp + cell.b_f), sig(rp - cell.b_f)
            gg = r * (1 - (1 - f) ** 2) + (1 - r) * f ** 2
            c = gg * c + (1 - gg) * torch.tanh(up) * masks[t]
            h = sig(op) * torch.tanh(c)
        ys.append(h)
    return torch.stack(ys, 1), (h if name == "gru" else (h, c))


@pytest.mark.parametrize("name", DROP_CELLS)
def test_candidate_dropout_by_hand(name):
    from rnns.gated_fast import candidate_masks

    cell = _cell(name, dropout=0.4).train()
    x = torch.randn(B, T, D, dtype=torch.float64)
    h0 = _state(name, x)
    torch.manual_seed(11)
    got = cell(x, h0)
    torch.manual_seed(11)
    masks = candidate_masks(0.4, T, B, H, x)
    assert set(masks.unique().tolist()) == {0.0, 1 / 0.6}
    want = _by_hand_with_masks(name, cell, x, h0, masks)
    if want is not None:
        _close(got, want)
    assert not torch.equal(cell(x, h0)[0], cell(x, h0)[0])  # a fresh mask per call
    cell.eval()  # no dropout at evaluation: the fused kernel or the plain step
    _close(cell(x, h0), _cell(name)(x, h0) if name != "mogrifier_lstm" else cell(x, h0))


@pytest.mark.parametrize("name", DROP_CELLS + ["rru"])
def test_one_layer_model_dropout_acts(name):
    """Issue 12 item 2: in the one-layer music spaces the searched dropout did nothing for lstm, gru, mogrifier."""
    torch.manual_seed(0)
    model = SequenceModel(name, D, 5, "all", hidden_size=H, num_layers=1, dropout=0.5)
    if name == "rru":
        with torch.no_grad():
            model.layers[0].zeta.fill_(1.0)  # ReZero starts at 0, which would hide the inner dropout
    x = torch.randn(B, T, D)
    assert not torch.equal(model(x)[0], model(x)[0])
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])


@pytest.mark.parametrize("name", DROP_CELLS + ["rru"])
def test_no_dropout_between_layers_of_cells_with_their_own(name):
    """The RRU paper's code drops inside every cell and nowhere else: two-layer RRU no longer gets it twice."""
    torch.manual_seed(0)
    model = SequenceModel(name, D, 5, "all", hidden_size=H, num_layers=2, dropout=0.5)
    assert isinstance(model.between, torch.nn.Identity)
    assert all(getattr(c, "dropout", None) == 0.5 or getattr(getattr(c, "drop", None), "p", None) == 0.5
               for c in model.cells())
    for c in model.cells():  # switch the cells' own dropout off: nothing random may remain in training mode
        if name == "rru":
            c.drop.p = 0.0
        else:
            c.dropout = 0.0
    x = torch.randn(B, T, D)
    assert torch.equal(model(x)[0], model(x)[0])
    rnn = SequenceModel("rnn", D, 5, "all", hidden_size=H, num_layers=2, dropout=0.5)  # no own dropout: between
    assert isinstance(rnn.between, torch.nn.Dropout) and rnn.between.p == 0.5
