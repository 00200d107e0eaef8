"""Stair RNN cells (rnns.stair): rho schedules, h_k = rho_k * Phi(x_k, h_{k-1}), learned alpha and exp-alpha.

Paper: "Stair Recurrent Neural Networks" (NeurIPS 2021 submission, no arXiv id); PAPERS.md section 5.2.
Equation checks run in float64.
"""
from __future__ import annotations

import pytest
import torch

from rnns.errors import ConfigError
from rnns.model import SequenceModel
from rnns.optim import build_optimizer
from rnns.registry import build_cell
from rnns.stair import RHOS, rho, rho_schedule
from fastref import fast_vs_reference

D, H, B, T = 3, 8, 3, 6
F64 = torch.float64

# PAPERS.md 5.2: rho at k = 0, 1, 2, 10, 100 (rounded to 3 decimals there, 4 for .9999)
RHO_TABLE = {
    "n": [.500, .667, .750, .917, .990],
    "n2": [.750, .889, .938, .993, .9999],
    "logn": [-.443, .090, .279, .598, .784],
    "log2n": [.519, .566, .598, .700, .813],
    "sqrtlogn": [.046, .151, .212, .376, .536],
    "expn": [.865, .950, .982, 1.0, 1.0],
}
# stair name -> (base cell name, base options equal to the stair defaults)
STAIR_BASE = {
    "srnn": ("rnn", {"nonlin": "modrelu", "rinit": "random"}),
    "srnn_exp": ("exprnn", {}),
    "srnn_nn": ("nnrnn", {}),
}
ELMAN_STAIRS = list(STAIR_BASE)
ALL_STAIRS = ELMAN_STAIRS + ["srnn_lstm"]


def make(name, seed=0, **opts):
    """A float64 cell with every parameter moved off its init."""
    torch.manual_seed(seed)
    cell = build_cell(name, D, H, **opts).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return cell


def upper(v):
    """Strictly upper-triangular (H, H) matrix from its H(H-1)/2 entries, row by row."""
    M = torch.zeros(H, H, dtype=v.dtype)
    iu = torch.triu_indices(H, H, 1)
    M[iu[0], iu[1]] = v
    return M


def skew(v):
    M = upper(v)
    return M - M.T


def preact(cell, x, h):
    """a = U x + h W for the Elman-form stair cells, from their equations (PAPERS.md 5.3). x (B, D), h (B, H)."""
    if hasattr(cell, "V"):  # Elman RNN, U with bias
        return x @ cell.U.weight.T + cell.U.bias + h @ cell.V.weight.T
    if hasattr(cell, "log_P"):  # nnRNN
        P = torch.linalg.matrix_exp(skew(cell.log_P))
        m = H // 2
        A = torch.zeros(H, H, dtype=F64)
        for i in range(m):
            a, t = cell.alpha[i], cell.theta[i]
            A[2 * i:2 * i + 2, 2 * i:2 * i + 2] = a * torch.stack([torch.stack([t.cos(), -t.sin()]),
                                                                   torch.stack([t.sin(), t.cos()])])
        return x @ cell.U.weight.T + h @ (P @ (upper(cell.T) + A) @ P.T)
    return x @ cell.U.weight.T + h @ torch.linalg.matrix_exp(skew(cell.S))  # expRNN


def phi(cell, a):
    return torch.sign(a) * torch.clamp(a.abs() + cell.phi.b, min=0)  # modReLU (all stair defaults)


def lstm_step(cell, x, h, c):
    """Standard LSTM from the equations, gate order (i, f, g, o). x (B, D), h, c (B, H)."""
    z = x @ cell.W_x.weight.T + cell.W_x.bias + h @ cell.W_h.weight.T
    i, f, g, o = z.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def scales(cell, steps):
    return cell.rho_alpha[:steps] if cell.rho in ("alpha", "exp-alpha") else rho_schedule(cell.rho, steps)


def reference(cell, x, state):
    """The stair recurrence by hand, k counted from 0 in this call. Returns (y (B, T, H), state)."""
    r = scales(cell, x.shape[1])
    ys = []
    for k in range(x.shape[1]):
        if cell.__class__.__name__ == "StairLSTM":
            h, c = lstm_step(cell, x[:, k], *state)
            state = (r[k] * h, c)
            ys.append(state[0])
            continue
        a = preact(cell, x[:, k], state)
        state = (1 - torch.exp(-r[k] * a)) * phi(cell, a) if cell.rho == "exp-alpha" else r[k] * phi(cell, a)
        ys.append(state)
    return torch.stack(ys, 1), state


def h0_for(name):
    h = torch.randn(B, H, dtype=F64)
    return (h, torch.randn(B, H, dtype=F64)) if name == "srnn_lstm" else h


def close(a, b, tol=1e-12):
    if isinstance(a, tuple):
        return all(close(u, v, tol) for u, v in zip(a, b))
    return torch.allclose(a, b, atol=tol)


# ---------------------------------------------------------------------------------------------- rho schedules

@pytest.mark.parametrize("name", list(RHO_TABLE))
def test_rho_matches_papers_table(name):
    got = rho(name, torch.tensor([0, 1, 2, 10, 100]))
    want = torch.tensor(RHO_TABLE[name], dtype=F64)
    assert torch.allclose(got, want, atol=5.1e-4)
    if name == "n2":
        assert got[-1].item() == pytest.approx(.9999, abs=5.1e-5)
    assert rho(name, 3).item() == pytest.approx(rho_schedule(name, 4)[3].item())


def test_rho_none_is_one_and_unknown_raises():
    assert torch.equal(rho_schedule("none", 5), torch.ones(5, dtype=F64))
    with pytest.raises(ConfigError, match="rho"):
        rho("n3", 0)


# ------------------------------------------------------------------------------------------------ stair cells

# exp-alpha is not defined for the LSTM (a ConfigError, tested below)
@pytest.mark.parametrize("name,r", [(n, r) for n in ALL_STAIRS
                                    for r in ("n", "logn", "expn", "alpha", "exp-alpha", "none")
                                    if not (n == "srnn_lstm" and r == "exp-alpha")])
def test_forward_equals_reference(name, r):
    cell = make(name, rho=r, seq_len=T + 2)
    x, s0 = torch.randn(B, T, D, dtype=F64), h0_for(name)
    if r == "exp-alpha":
        # 1 - exp(-alpha a) grows exponentially for negative pre-activations (as in the code): keep them small
        x, s0 = 0.2 * x, 0.2 * s0
    y, sT = cell(x, s0)
    y_ref, s_ref = reference(cell, x, s0)
    assert torch.isfinite(y).all()
    assert close(y, y_ref) and close(sT, s_ref)


@pytest.mark.parametrize("name", ALL_STAIRS)
def test_one_step_by_hand(name):
    """k = 0 from zero state: h_0 = rho_0 * phi(U x_0 + b); written out without the reference loop."""
    cell = make(name, rho="n")
    x = torch.randn(B, 1, D, dtype=F64)
    y, _ = cell(x)
    z = torch.zeros(B, H, dtype=F64)
    if name == "srnn_lstm":
        want = 0.5 * lstm_step(cell, x[:, 0], z, z)[0]
    else:
        want = 0.5 * phi(cell, preact(cell, x[:, 0], z))
    assert torch.allclose(y[:, 0], want, atol=1e-12)


@pytest.mark.parametrize("name", ELMAN_STAIRS)
def test_rho_none_equals_base_cell(name):
    base_name, base_opts = STAIR_BASE[name]
    stair = make(name, rho="none")
    torch.manual_seed(1)
    base = build_cell(base_name, D, H, **base_opts).double()
    base.load_state_dict(stair.state_dict())
    x, h0 = torch.randn(B, T, D, dtype=F64), torch.randn(B, H, dtype=F64)
    assert close(stair(x, h0), base(x, h0))


@pytest.mark.parametrize("name", ALL_STAIRS)
def test_rho_none_forward_equals_chained_single_steps(name):
    cell = make(name, rho="none")
    x, s = torch.randn(B, T, D, dtype=F64), h0_for(name)
    y, sT = cell(x, s)
    ys = []
    for t in range(T):
        yt, s = cell(x[:, t:t + 1], s)
        ys.append(yt)
    assert close(y, torch.cat(ys, 1)) and close(sT, s)


@pytest.mark.parametrize("name", ALL_STAIRS)
@pytest.mark.parametrize("r", ["n", "alpha"])
def test_step_index_restarts_at_each_call(name, r):
    """Chunks chained with state (truncated BPTT) restart k at 0: equal to the reference run per chunk."""
    cell = make(name, rho=r, seq_len=T)
    x, s0 = torch.randn(B, T, D, dtype=F64), h0_for(name)
    y1, s1 = cell(x[:, :4], s0)
    y2, s2 = cell(x[:, 4:], s1)
    r1, t1 = reference(cell, x[:, :4], s0)
    r2, t2 = reference(cell, x[:, 4:], t1)
    assert close(torch.cat([y1, y2], 1), torch.cat([r1, r2], 1)) and close(s2, t2)
    assert not close(y2, cell(x, s0)[0][:, 4:], 1e-6)  # k did restart (rho_0 != rho_4)


def test_learned_rho_parameters():
    c = build_cell("srnn", D, H, rho="alpha", seq_len=5)
    assert c.rho_alpha.shape == (5,) and (c.rho_alpha == 1).all()
    assert (build_cell("srnn", D, H, rho="alpha", seq_len=5, alpha_init=0.98).rho_alpha == 0.98).all()
    e = build_cell("srnn_nn", D, H, rho="exp-alpha", seq_len=50).rho_alpha
    assert ((e >= 0) & (e < 1)).all() and e.std() > 0.1
    c(torch.randn(2, 3, D))  # a shorter final chunk uses the first steps' scalars
    y, _ = c(torch.randn(2, 5, D))
    y.sum().backward()
    assert c.rho_alpha.grad is not None and (c.rho_alpha.grad != 0).all()
    with pytest.raises(ConfigError, match="seq_len"):
        c(torch.randn(2, 6, D))
    # fixed schedules ignore seq_len / alpha_init (a flat search configuration may carry them)
    assert not any("rho_alpha" in n for n, _ in build_cell("srnn", D, H, rho="n", seq_len=5).named_parameters())


def test_stair_keeps_base_groups_and_penalty():
    e = make("srnn_exp", rho="alpha", seq_len=T)
    assert e.param_groups() == {"orth": [e.S]}
    n = make("srnn_nn", rho="n", delta=0.3)
    assert n.param_groups() == {"orth": [n.log_P], "tdecay": [n.T]}
    assert torch.allclose(n.extra_loss(), 0.3 * ((n.alpha - 1) ** 2).sum())
    model = SequenceModel("srnn_nn", D, 2, "all", hidden_size=H, num_layers=2, rho="alpha", seq_len=T)
    groups = model.param_groups()
    assert set(groups) == {"orth", "tdecay", "default"}
    assert any(p is model.layers[0].rho_alpha for p in groups["default"])
    opt = build_optimizer(model, lr=1e-3, lr_orth=1e-4, Tdecay=1e-4)
    out, state = model(torch.randn(2, T, D))
    (out.square().mean() + model.extra_loss()).backward()
    opt.step()
    assert out.shape == (2, T, 2) and len(state) == 2


@pytest.mark.parametrize("name,opts,match", [
    ("srnn", {"rho": "n3"}, "rho"),
    ("srnn_exp", {"rho": "1n"}, "rho"),
    ("srnn_lstm", {"rho": "sqrtlogn2"}, "rho"),
    ("srnn", {"rho": "alpha"}, "seq_len"),
    ("srnn_nn", {"rho": "exp-alpha", "seq_len": 0}, "seq_len"),
    ("srnn_lstm", {"rho": "exp-alpha", "seq_len": 4}, "exp-alpha"),
    ("srnn", {"rinit": "haar"}, "rinit"),
    ("srnn_exp", {"rinit": "kaiming"}, "rinit"),
    ("srnn_nn", {"iinit": "orthogonal"}, "iinit"),
    ("srnn_lstm", {"rinit": "henaff"}, "option"),
])
def test_bad_options_raise_config_error(name, opts, match):
    with pytest.raises(ConfigError, match=match):
        build_cell(name, D, H, **opts)


def test_srnn_nn_odd_hidden_raises():
    with pytest.raises(ConfigError, match="even"):
        build_cell("srnn_nn", D, 7)


def test_rho_choices_listed():
    assert set(RHOS) == set(RHO_TABLE) | {"none", "alpha", "exp-alpha"}


# ------------------------------------------------------------------------------- fast path against reference

@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("name,r,opts", [(n, r, {}) for n in ("srnn", "srnn_exp", "srnn_nn")
                                         for r in ("n", "logn", "expn", "alpha", "exp-alpha", "none")]
                         + [("srnn", r, {"nonlin": nl}) for r in ("alpha", "exp-alpha")
                            for nl in ("tanh", "relu", "none")])
def test_fast_path_equals_reference(name, r, opts, dtype, tol, monkeypatch):
    """The explicit-BPTT fast path (rnns.elman_bptt) against the step loop under autograd (RNNSWEEP_REFERENCE_CELLS=1):
    outputs, final state, gradients w.r.t. input, initial state and every parameter (the learned alphas included)."""
    cell = make(name, rho=r, seq_len=T + 2, **opts).to(dtype)
    if r == "alpha":
        with torch.no_grad():
            cell.rho_alpha.add_(0.1 * torch.randn_like(cell.rho_alpha))
    x, h0 = torch.randn(B, T, D, dtype=dtype), 0.5 * torch.randn(B, H, dtype=dtype)
    if r == "exp-alpha":  # the gate grows exponentially for negative pre-activations: keep them small
        x, h0 = 0.2 * x, 0.2 * h0
    fast_vs_reference(cell, x, h0, monkeypatch, dtype, tol)
