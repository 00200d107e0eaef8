"""Initialisers (rnns.init) and the RNN / RNN-orth / expRNN / nnRNN cells, checked against their equations.

Papers: expRNN (arXiv 1901.08428), nnRNN (arXiv 1905.12080). Equation checks run in float64.
"""
from __future__ import annotations

import math

import pytest
import torch

from rnns import init as I
from rnns.errors import ConfigError
from rnns.model import SequenceModel, count_parameters
from rnns.nnrnn import rotation_blocks
from rnns.optim import build_optimizer
from rnns.registry import build_cell, cells
from rnns.rnn import ModReLU
from fastref import fast_vs_reference

D, H, B = 3, 8, 4


def modrelu(z, b):
    return torch.sign(z) * torch.clamp(z.abs() + b, min=0)


def upper(v, n=H):
    """Strictly upper-triangular (n, n) matrix filled row by row from v (n(n-1)/2,), written as a plain loop."""
    M = torch.zeros(n, n, dtype=v.dtype)
    k = 0
    for i in range(n):
        for j in range(i + 1, n):
            M[i, j] = v[k]
            k += 1
    return M


def skew(v):
    M = upper(v)
    return M - M.T


def is_orthogonal(Q, tol):
    eye = torch.eye(Q.shape[0], dtype=Q.dtype)
    return (Q.T @ Q - eye).abs().max().item() < tol and (Q @ Q.T - eye).abs().max().item() < tol


def make(name, seed=0, perturb=True, **opts):
    """A float64 cell; ``perturb`` moves every parameter off its init so that the checks see a generic state."""
    torch.manual_seed(seed)
    cell = build_cell(name, D, H, **opts).double()
    if perturb:
        with torch.no_grad():
            for p in cell.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return cell


def hand_step(cell, x, h):
    """One step from the equations of PAPERS.md 5.3 (row convention), from the cell's parameters.

    x (B, D), h (B, H) -> (B, H)
    """
    if isinstance(cell, cells()["rnn"].cls):
        a = x @ cell.U.weight.T + cell.U.bias + h @ cell.V.weight.T
        return {"tanh": torch.tanh, "relu": torch.relu, "none": lambda z: z, "relu_as_in_code": lambda z: z,
                "modrelu": lambda z: modrelu(z, cell.phi.b)}[cell.nonlin](a)
    if isinstance(cell, cells()["nnrnn"].cls):
        P = torch.linalg.matrix_exp(skew(cell.log_P))
        blocks = [a * torch.stack([torch.stack([t.cos(), -t.sin()]), torch.stack([t.sin(), t.cos()])])
                  for a, t in zip(cell.alpha, cell.theta)]
        W = P @ (upper(cell.T) + torch.block_diag(*blocks)) @ P.T
        return modrelu(x @ cell.U.weight.T + h @ W, cell.phi.b)
    if isinstance(cell, cells()["exprnn"].cls):
        W = torch.linalg.matrix_exp(skew(cell.S))
        return modrelu(x @ cell.U.weight.T + h @ W, cell.phi.b)
    raise AssertionError(type(cell))


CELL_CASES = (
    [("rnn", {"nonlin": n}) for n in ("tanh", "relu", "modrelu", "none", "relu_as_in_code")]
    + [("rnn", {"rinit": r, "iinit": "kaiming"}) for r in ("kaiming", "henaff", "cayley", "random")]
    + [("rnn_orth", {}), ("rnn_orth", {"rinit": "cayley", "nonlin": "tanh"})]
    + [("exprnn", {"rinit": r}) for r in I.SKEW_INITS]
    + [("nnrnn", {"rinit": r}) for r in ("henaff", "cayley", "random")]
)
IDS = [f"{n}-{'-'.join(map(str, o.values())) or 'default'}" for n, o in CELL_CASES]


# ---------------------------------------------------------------------------------------------- initialisers

def test_glorot_and_kaiming_std():
    g = torch.Generator().manual_seed(0)
    assert I.glorot_normal((300, 200), g).std().item() == pytest.approx(math.sqrt(2 / 500), rel=0.03)
    assert I.kaiming_normal((300, 200), g).std().item() == pytest.approx(math.sqrt(2 / 200), rel=0.03)
    assert I.input_init("kaiming", (4, 3)).shape == (4, 3)


def test_generator_makes_inits_reproducible():
    for fn in (I.henaff_skew, I.cayley_skew, I.haar_orthogonal):
        a = fn(6, torch.Generator().manual_seed(3))
        b = fn(6, torch.Generator().manual_seed(3))
        assert torch.equal(a, b)


@pytest.mark.parametrize("n", [8, 9])
@pytest.mark.parametrize("name", ["henaff", "cayley"])
def test_block_skew_structure_and_range(name, n):
    A = I.skew_init(name, n, torch.Generator().manual_seed(1), torch.float64)
    assert torch.equal(A, -A.T)
    allowed = torch.zeros(n, n, dtype=torch.bool)
    for i in range(0, n - 1, 2):
        allowed[i, i + 1] = allowed[i + 1, i] = True
    assert (A[~allowed] == 0).all()  # only 2x2 blocks on the diagonal; odd n leaves the last row and column 0
    s = torch.stack([A[i, i + 1] for i in range(0, n - 1, 2)])
    lo = -math.pi if name == "henaff" else -1.0
    assert (s >= lo).all() and (s <= 0).all()
    Q = torch.linalg.matrix_exp(A)
    assert is_orthogonal(Q, 1e-12)
    assert (Q[~allowed & ~torch.eye(n, dtype=torch.bool)].abs() < 1e-14).all()


def test_cayley_is_minus_tan_half_u():
    n = 10
    u = (math.pi / 2) * torch.rand(n // 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    A = I.cayley_skew(n, torch.Generator().manual_seed(5), torch.float64)
    s = torch.stack([A[i, i + 1] for i in range(0, n, 2)])
    assert torch.allclose(s, -torch.sqrt((1 - torch.cos(u)) / (1 + torch.cos(u))), atol=1e-14)


@pytest.mark.parametrize("n", [5, 8])
def test_haar_orthogonal_is_special_orthogonal(n):
    for seed in range(6):
        Q = I.haar_orthogonal(n, torch.Generator().manual_seed(seed), torch.float64)
        assert is_orthogonal(Q, 1e-12)
        assert torch.linalg.det(Q).item() == pytest.approx(1.0, abs=1e-10)


def test_skew_log_inverts_expm():
    Q = I.haar_orthogonal(8, torch.Generator().manual_seed(0), torch.float64)
    A = I.skew_log(Q)
    assert torch.equal(A, -A.T)
    assert torch.allclose(torch.linalg.matrix_exp(A), Q, atol=1e-10)


@pytest.mark.parametrize("name", I.SKEW_INITS)
def test_skew_init_is_skew_and_orthogonal_init_is_orthogonal(name):
    A = I.skew_init(name, 8, dtype=torch.float64)
    assert torch.allclose(A, -A.T, atol=1e-15)
    if name in I.ORTHOGONAL_INITS:
        Q = I.orthogonal_init(name, 8, dtype=torch.float64)
        assert is_orthogonal(Q, 1e-12) and torch.linalg.det(Q).item() == pytest.approx(1.0, abs=1e-10)


def test_unknown_init_names_raise():
    with pytest.raises(ConfigError, match="rinit"):
        I.skew_init("glorot", 4)
    with pytest.raises(ConfigError):
        I.orthogonal_init("xavier", 4)
    with pytest.raises(ConfigError, match="iinit"):
        I.input_init("he", (4, 4))


def test_modrelu_equation_and_bias_range():
    m = ModReLU(50).double()
    assert (m.b.abs() <= 0.01).all()
    z = torch.randn(7, 50, dtype=torch.float64) * 0.02
    assert torch.equal(m(z), torch.sign(z) * torch.relu(z.abs() + m.b))


# --------------------------------------------------------------------------------------------------- cells

@pytest.mark.parametrize("name,opts", CELL_CASES, ids=IDS)
def test_one_step_equals_equations(name, opts):
    cell = make(name, **opts)
    x, h0 = torch.randn(B, 1, D, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    y, hT = cell(x, h0)
    want = hand_step(cell, x[:, 0], h0)
    assert torch.allclose(y[:, 0], want, atol=1e-12) and torch.allclose(hT, want, atol=1e-12)
    # a zero initial state is the default
    y0, _ = cell(x)
    assert torch.allclose(y0[:, 0], hand_step(cell, x[:, 0], torch.zeros(B, H, dtype=torch.float64)), atol=1e-12)


@pytest.mark.parametrize("name,opts", CELL_CASES, ids=IDS)
def test_forward_equals_chained_single_steps(name, opts):
    cell = make(name, **opts)
    x, h = torch.randn(B, 7, D, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    y, hT = cell(x, h)
    ys = []
    for t in range(x.shape[1]):
        yt, h = cell(x[:, t:t + 1], h)
        ys.append(yt)
    assert torch.allclose(y, torch.cat(ys, 1), atol=1e-12) and torch.allclose(hT, h, atol=1e-12)


def test_rnn_orthogonal_rinit_is_honoured():
    """V = expm(named skew init), not the code's expm(default Linear init): henaff gives 2x2 rotation blocks."""
    V = make("rnn", perturb=False, rinit="henaff").V.weight
    assert is_orthogonal(V, 1e-6)
    block = torch.block_diag(*[torch.ones(2, 2)] * (H // 2)).bool()
    assert (V[~block] == 0).all()
    for name, opts in (("rnn", {"rinit": "random"}), ("rnn_orth", {}), ("rnn", {"rinit": "cayley"})):
        V = make(name, perturb=False, **opts).V.weight
        assert is_orthogonal(V, 1e-6) and torch.linalg.det(V).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["exprnn", "nnrnn"])
def test_orthogonal_after_training(name):
    torch.manual_seed(0)
    model = SequenceModel(name, input_size=D, output_size=2, readout="last", hidden_size=16)
    cell = model.cells()[0]
    orth = cell.S if name == "exprnn" else cell.log_P
    before = orth.detach().clone()
    opt = build_optimizer(model, optimizer="rmsprop", lr=1e-2, lr_orth=5e-3, Tdecay=1e-4)
    lrs = {g["tag"]: (g["lr"], g["weight_decay"]) for g in opt.param_groups}
    assert lrs["orth"] == (5e-3, 0.0)
    if name == "nnrnn":
        assert lrs["tdecay"] == (1e-2, 1e-4)
    x, target = torch.randn(8, 6, D), torch.randn(8, 2)
    for _ in range(50):
        opt.zero_grad()
        out, _ = model(x)
        loss = torch.nn.functional.mse_loss(out, target)
        extra = model.extra_loss()
        (loss if extra is None else loss + extra).backward()
        opt.step()
    assert (orth.detach() - before).abs().max().item() > 1e-2  # the orthogonal parameter did move
    with torch.no_grad():
        Q = cell.recurrent_matrix() if name == "exprnn" else cell.orthogonal_basis()
    assert is_orthogonal(Q, 1e-5)


def test_nnrnn_eigenvalues_have_modulus_alpha():
    cell = make("nnrnn")  # random log_P, theta, alpha
    with torch.no_grad():
        cell.alpha.copy_(torch.linspace(0.5, 1.4, H // 2, dtype=torch.float64))
        cell.T.zero_()
    want = cell.alpha.detach().repeat_interleave(2).sort().values
    got = torch.linalg.eigvals(cell.recurrent_matrix().detach()).abs().sort().values
    assert torch.allclose(got, want, atol=1e-10)
    # a non-normal part outside the 2x2 blocks leaves the spectrum unchanged (block upper-triangular core)
    Tm = torch.randn(H, H, dtype=torch.float64)
    for i in range(0, H, 2):
        Tm[i, i + 1] = 0
    iu = torch.triu_indices(H, H, 1)
    with torch.no_grad():
        cell.T.copy_(Tm[iu[0], iu[1]])
    got = torch.linalg.eigvals(cell.recurrent_matrix().detach()).abs().sort().values
    assert torch.allclose(got, want, atol=1e-8)


def test_rotation_blocks_match_block_diag():
    alpha, theta = torch.rand(4, dtype=torch.float64), torch.rand(4, dtype=torch.float64) * 6
    ref = torch.block_diag(*[a * torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]],
                                              dtype=torch.float64)
                             for a, t in zip(alpha.tolist(), theta.tolist())])
    assert torch.allclose(rotation_blocks(alpha, theta), ref, atol=1e-15)


def test_nnrnn_init_and_penalty():
    cell = make("nnrnn", perturb=False, delta=0.5)
    assert (cell.alpha == 1).all() and (cell.T == 0).all()
    assert ((cell.theta >= 0) & (cell.theta < 2 * 3.14)).all() and cell.theta.shape == (H // 2,)
    assert cell.extra_loss().item() == 0.0
    with torch.no_grad():
        cell.alpha.add_(torch.randn(H // 2, dtype=torch.float64))
    assert torch.allclose(cell.extra_loss(), 0.5 * ((cell.alpha - 1) ** 2).sum())
    assert make("nnrnn", perturb=False, delta=0.0).extra_loss() is None


def test_param_groups_tags():
    e, n, r = make("exprnn"), make("nnrnn"), make("rnn")
    assert e.param_groups() == {"orth": [e.S]}
    groups = n.param_groups()
    assert set(groups) == {"orth", "tdecay"} and groups["orth"][0] is n.log_P and groups["tdecay"][0] is n.T
    assert r.param_groups() == {}
    assert e.U.bias is None and n.U.bias is None  # expRNN / nnRNN input maps have no bias


def test_parameter_counts_are_effective():
    """Triangular parameters hold only their H(H-1)/2 free entries (the papers' equal-budget arithmetic)."""
    tri = H * (H - 1) // 2
    assert count_parameters(make("exprnn")) == H * D + tri + H  # U, S, modReLU bias
    assert count_parameters(make("nnrnn")) == H * D + 2 * tri + H // 2 * 2 + H  # U, log_P, T, alpha, theta, b
    assert count_parameters(make("rnn")) == H * D + H + H * H


@pytest.mark.parametrize("name,opts,match", [
    ("rnn", {"rinit": "orthogonal"}, "rinit"),
    ("rnn", {"nonlin": "sigmoid"}, "nonlin"),
    ("rnn", {"iinit": "uniform"}, "iinit"),
    ("rnn_orth", {"rinit": "xavier"}, "orthogonal"),
    ("exprnn", {"rinit": "kaiming"}, "rinit"),
    ("nnrnn", {"rinit": "haar"}, "rinit"),
    ("nnrnn", {"delta": -1.0}, "delta"),
    ("exprnn", {"nonlin": "tanh"}, "option"),
])
def test_bad_options_raise_config_error(name, opts, match):
    with pytest.raises(ConfigError, match=match):
        build_cell(name, D, H, **opts)


@pytest.mark.parametrize("name", ["nnrnn", "srnn_nn"])
def test_nnrnn_input_init_torch_default_is_the_codes(name):
    """input_init "torch_default" leaves U at nn.Linear's default init, as the nnRNN/Stair code runs (it never applies
    its input initialiser); the default "iinit" applies Glorot normal. Issue 12 item 3."""
    torch.manual_seed(5)
    want = torch.nn.Linear(D, H, bias=False).weight  # U is the cell's first draw
    torch.manual_seed(5)
    cell = build_cell(name, D, H, input_init="torch_default")
    assert torch.equal(cell.U.weight, want)
    # at input size 1 (the copy task's scalar input): std 1/sqrt(3) = 0.577 against Glorot sqrt(2/(H + 1)) = 0.125
    n = 128
    torch.manual_seed(0)
    code = torch.cat([build_cell(name, 1, n, input_init="torch_default").U.weight for _ in range(20)])
    ours = torch.cat([build_cell(name, 1, n).U.weight for _ in range(20)])
    assert code.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.05)
    assert code.abs().max().item() <= 1.0
    assert ours.std().item() == pytest.approx(math.sqrt(2 / (n + 1)), rel=0.05)
    with pytest.raises(ConfigError, match="input_init"):
        build_cell(name, D, H, input_init="default")


def test_relu_as_in_code_is_identity_and_relu_is_a_relu():
    """The nnRNN/Stair code's --nonlin relu is overwritten by its if/if-else chain and runs no nonlinearity;
    "relu" here is a real ReLU, "relu_as_in_code" the code's identity. Issue 12 item 4."""
    x = torch.randn(B, 5, D, dtype=torch.float64)
    out = {}
    for nl in ("relu", "relu_as_in_code", "none"):
        cell = make("rnn", nonlin=nl)
        out[nl] = cell(x)[0]
    assert (out["relu"] >= 0).all() and (out["relu_as_in_code"] < 0).any()
    assert torch.equal(out["relu_as_in_code"], out["none"])


def test_nnrnn_odd_hidden_raises():
    with pytest.raises(ConfigError, match="even"):
        build_cell("nnrnn", D, 7)


@pytest.mark.parametrize("name,param", [("exprnn", "S"), ("nnrnn", "log_P")])
def test_autograd_through_matrix_exp_is_exact(name, param):
    """Autograd through matrix_exp replaces the code's hand-written Frechet derivative: finite differences agree."""
    torch.manual_seed(0)
    cell = build_cell(name, 2, 4).double()
    x = torch.randn(2, 3, 2, dtype=torch.float64)
    p0 = getattr(cell, param).detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda p: torch.func.functional_call(cell, {param: p}, (x,))[0], (p0,))


@pytest.mark.parametrize("name", ["exprnn", "nnrnn", "srnn_exp", "srnn_nn"])
def test_float32_gradients_close_to_float64(name):
    """Issue 12 item 6: with the exponential evaluated in float64, float32 gradients (input, initial state and every
    parameter) are within 2e-5 relative (norm-wise) of the float64 gradients on the same weights. Autograd through a
    float32 matrix_exp gave ~2e-4 on the skew parameter here. modReLU biases are made negative so that the map is
    continuous (a positive bias makes modReLU jump at 0, where float32 round-off can flip a sign); the kinks at
    |z| = -b remain, so the perturbation is kept small enough that no unit sits within round-off of one."""
    torch.manual_seed(0)
    opts = {"rho": "n"} if name.startswith("srnn") else {}
    c32 = build_cell(name, 4, 64, **opts)
    with torch.no_grad():
        for n, p in c32.named_parameters():
            p.copy_(-p.abs() - 0.01) if n == "phi.b" else p.add_(0.01 * torch.randn_like(p))
    c64 = build_cell(name, 4, 64, **opts).double()
    c64.load_state_dict({k: v.double() for k, v in c32.state_dict().items()})
    x, h0, w = torch.randn(8, 20, 4), 0.1 * torch.randn(8, 64), torch.randn(8, 20, 64)
    grads = []
    for cell, dt in ((c32, torch.float32), (c64, torch.float64)):
        xi, hi = x.to(dt).requires_grad_(), h0.to(dt).requires_grad_()
        y, hT = cell(xi, hi)
        loss = (y * w.to(dt)).sum() + hT.sum()
        grads.append(torch.autograd.grad(loss, [xi, hi, *cell.parameters()]))
    names = ["x", "h0"] + [n for n, _ in c32.named_parameters()]
    for n, g32, g64 in zip(names, *grads):
        assert g32.dtype == torch.float32
        rel = ((g32.double() - g64).norm() / g64.norm()).item()
        assert rel < 2e-5, (n, rel)


# ------------------------------------------------------------------------------- fast path against reference

FAST_CASES = CELL_CASES + [("rnn", {"nonlin": "relu_as_in_code"}), ("nnrnn", {"input_init": "torch_default"})]


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("name,opts", FAST_CASES, ids=[f"{n}-{'-'.join(map(str, o.values())) or 'default'}"
                                                       for n, o in FAST_CASES])
def test_fast_path_equals_reference(name, opts, dtype, tol, monkeypatch):
    cell = make(name, **opts)
    x, h0 = torch.randn(B, 9, D, dtype=torch.float64), 0.5 * torch.randn(B, H, dtype=torch.float64)
    fast_vs_reference(cell, x, h0, monkeypatch, dtype, tol)


def test_fast_path_is_taken_and_reference_selectable(monkeypatch):
    """The fast path runs one autograd node for the whole recurrence; RNNSWEEP_REFERENCE_CELLS=1 the step loop."""
    cell = make("nnrnn")
    x = torch.randn(B, 6, D, dtype=torch.float64)
    monkeypatch.setenv("RNNSWEEP_REFERENCE_CELLS", "0")
    assert type(cell(x)[0].grad_fn).__name__ != "StackBackward0"
    monkeypatch.setenv("RNNSWEEP_REFERENCE_CELLS", "1")
    assert type(cell(x)[0].grad_fn).__name__ == "StackBackward0"


@pytest.mark.parametrize("name", ["exprnn", "nnrnn", "srnn_exp", "srnn_nn"])
@pytest.mark.parametrize("ref", ["0", "1"])
def test_recurrent_matrix_built_once_per_forward(name, ref, monkeypatch):
    """The exponential (and the whole recurrent matrix) is built once per forward, not once per step; the backward
    reuses the forward's eigendecomposition (fast path) or differentiates the one matrix_exp (reference)."""
    monkeypatch.setenv("RNNSWEEP_REFERENCE_CELLS", ref)
    cell = make(name, **({"rho": "n"} if name.startswith("srnn") else {}))
    calls = {"expm": 0, "W": 0}
    expm, eigh = torch.linalg.matrix_exp, torch.linalg.eigh

    def counting_expm(A):  # the reference path exponentiates with matrix_exp
        calls["expm"] += 1
        return expm(A)

    def counting_eigh(A):  # the fast path through one eigendecomposition (rnns.exprnn._SkewExpm)
        calls["expm"] += 1
        return eigh(A)

    monkeypatch.setattr(torch.linalg, "matrix_exp", counting_expm)
    monkeypatch.setattr(torch.linalg, "eigh", counting_eigh)
    build = cell.recurrent_matrix

    def counting_W():
        calls["W"] += 1
        return build()

    monkeypatch.setattr(cell, "recurrent_matrix", counting_W)
    y, _ = cell(torch.randn(B, 11, D, dtype=torch.float64))
    y.sum().backward()
    assert calls == {"expm": 1, "W": 1}


@pytest.mark.parametrize("name", ["exprnn", "nnrnn", "rnn_orth"])
def test_fast_path_at_exactly_zero_preactivation(name, monkeypatch):
    """Blank inputs from a zero state give a = 0 exactly (the copy task's blanks); modReLU's derivative there is the
    reference's (0), and the fast path's too."""
    cell = make(name)
    x = torch.randn(B, 8, D, dtype=torch.float64)
    x[:, :3] = 0
    if name == "rnn_orth":
        with torch.no_grad():
            cell.U.bias.zero_()
    fast_vs_reference(cell, x, torch.zeros(B, H, dtype=torch.float64), monkeypatch, torch.float64, 1e-10)


@pytest.mark.parametrize("rinit", ["henaff", "cayley", "random", "xavier"])
@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_skew_expm_fast_path_equals_matrix_exp(rinit, n):
    """rnns.exprnn.matrix_exp's eigendecomposition path against torch.linalg.matrix_exp (value and gradient, float64,
    1e-10 relative), including a degenerate spectrum (A = 0, and equal rotation blocks)."""
    from rnns.exprnn import _SkewExpm

    torch.manual_seed(n)
    cases = [3 * I.skew_init(rinit, n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)]
    if n % 2 == 0:
        cases.append(I.block_skew(torch.full((n // 2,), 1.3, dtype=torch.float64), n))
    for A in cases:
        G = torch.randn(n, n, dtype=torch.float64)
        a1, a2 = A.clone().requires_grad_(), A.clone().requires_grad_()
        W1, W2 = torch.linalg.matrix_exp(a1), _SkewExpm.apply(a2)
        g1, = torch.autograd.grad((W1 * G).sum(), a1)
        g2, = torch.autograd.grad((W2 * G).sum(), a2)
        torch.testing.assert_close(W2, W1, rtol=0, atol=1e-12)
        torch.testing.assert_close(g2, g1, rtol=0, atol=1e-10 * max(1.0, g1.abs().max().item()))


def test_published_nnrnn_seed_points_run_the_codes_input_init():
    """Issue 12 item 3: every published seed point of an nnRNN cell (nnrnn / srnn_nn) in the nnRNN and Stair spaces
    sets input_init 'torch_default' (what the code ran); no seed point of a cell with a nonlinearity option names
    'relu' (issue 12 item 4: the code's relu is the identity, so such a row would need 'relu_as_in_code')."""
    from spaces.registry import spaces

    seen = 0
    for name, space in spaces().items():
        if name.split("/")[0] not in ("nnrnn", "stair"):
            continue
        for seed in space.seeds:
            cfg = space.seed_config(seed)
            if cfg["model"] in ("nnrnn", "srnn_nn"):
                assert cfg.get("input_init") == "torch_default", (name, seed.name)
                seen += 1
            assert cfg.get("nonlin") != "relu", (name, seed.name)
    assert seen >= 15
