"""Trial packs keep the fast paths (issue 14): each explicit-BPTT autograd Function has a vmap rule that runs a
member-batched kernel, and ``vmap`` over K stacked weight sets inside ``rnns.base.packed()`` equals K single fast
calls and the slow reference (outputs, final state, gradients w.r.t. input, initial state and every weight;
float64 to 1e-10, float32 to 1e-5), for the cells alone and inside a SequenceModel."""
from __future__ import annotations

import pytest
import torch
from torch.func import vmap

from packref import check_pack, run_pack
from rnns.base import packed
from rnns.model import SequenceModel
from rnns.registry import build_cell

D, H, B, T, K = 3, 6, 4, 7, 3

# (cell, options): every cell whose fast path is vmap-capable
PACKABLE = [
    ("rnn", {"nonlin": "tanh"}), ("rnn", {"nonlin": "relu"}), ("rnn", {"nonlin": "modrelu"}),
    ("rnn", {"nonlin": "none"}), ("rnn_orth", {}), ("exprnn", {}), ("nnrnn", {}),
    ("srnn", {"rho": "expn"}), ("srnn", {"rho": "alpha", "seq_len": T}), ("srnn_exp", {"rho": "exp-alpha", "seq_len": T}),
    ("srnn_nn", {"rho": "n"}), ("linear_rnn", {}),
    ("ur_lstm", {}), ("r_lstm", {"forget_bias": 0.5}), ("u_lstm", {}), ("lstm", {}), ("lstm", {"chrono": 5}),
    ("gru", {}), ("ur_lstm", {"dropout": 0.3}), ("lstm", {"dropout": 0.3}), ("gru", {"dropout": 0.3}),
    ("lru", {}), ("diag_rnn", {}),
]


def kernel_of(name):
    """The member-batched Function a pack of ``name`` runs."""
    if name in ("ur_lstm", "r_lstm"):
        return "RefineFunctionPacked"
    if name in ("lstm", "u_lstm"):
        return "LSTMFunctionPacked"
    if name == "gru":
        return "GRUFunctionPacked"
    if name in ("lru", "diag_rnn"):
        return "_DiagBPTT"  # the same Function, called once on the members folded into the batch
    return "ElmanBPTTPacked"


def members(name, opts, dtype, k=K):
    out = []
    for s in range(k):
        torch.manual_seed(100 + s)
        cell = build_cell(name, D, H, **opts).to(dtype)
        with torch.no_grad():
            for n, p in cell.named_parameters():
                p.add_(0.1 * torch.randn_like(p))
                if n == "rho_alpha":  # a negative exp-alpha scale makes the state grow without bound
                    p.abs_()
        out.append(cell)
    return out


def state_like(cell, dtype, k, scale=0.3):
    """K initial states of the cell's kind (tensor or (h, c)), from one forward on a short input."""
    with torch.no_grad():
        _, s = cell(torch.zeros(B, 1, D, dtype=dtype))
    gen = torch.Generator().manual_seed(7)

    def rand(t):
        if isinstance(t, torch.Tensor):
            return scale * torch.randn(t.shape, dtype=t.dtype, generator=gen)
        return type(t)(rand(u) for u in t)

    return [rand(s) for _ in range(k)]


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("name,opts", PACKABLE, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in PACKABLE])
def test_cell_pack_equals_singles(name, opts, dtype, tol, monkeypatch):
    cells = members(name, opts, dtype)
    # exp-alpha's gate 1 - exp(-alpha a) grows exponentially for negative pre-activations: keep them small
    scale = 0.05 if opts.get("rho") == "exp-alpha" else 0.3
    xs = scale * torch.randn(K, B, T, D, dtype=dtype)
    # candidate dropout: one set of masks for all members (randomness "same"), which every single call redraws
    # from the same seed
    dropout = opts.get("dropout", 0) > 0
    check_pack(cells, xs, state_like(cells[0], dtype, K, scale), monkeypatch, tol,
               randomness="same" if dropout else "error", seed=5 if dropout else None,
               reference=dtype == torch.float64, kernel=kernel_of(name))


MODEL_CELLS = sorted({n for n, _ in PACKABLE})


@pytest.mark.parametrize("name", MODEL_CELLS)
def test_model_pack_equals_singles(name, monkeypatch):
    """vmap(functional_call(SequenceModel)) inside packed() == K single models (two stacked layers, every step's
    output read out), float64."""
    opts = {"rho": "alpha", "seq_len": T} if name.startswith("srnn") else {}
    models = []
    for s in range(K):
        torch.manual_seed(200 + s)
        models.append(SequenceModel(name, D, 2, "all", hidden_size=H, num_layers=2, **opts).double())
    xs = 0.3 * torch.randn(K, B, T, D, dtype=torch.float64)
    check_pack(models, xs, None, monkeypatch, 1e-10, kernel=kernel_of(name))


def test_nested_vmap_fails_clearly():
    """A second vmap around the pack's is refused with a clear error, never a wrong answer."""
    cells = members("rnn", {}, torch.float64, 2)
    from torch.func import functional_call, stack_module_state

    params, buffers = stack_module_state(cells)

    def one(p, x):
        return functional_call(cells[0], (p, buffers), (x,))[0]

    x = torch.randn(2, 2, B, T, D, dtype=torch.float64)
    with packed(), pytest.raises(RuntimeError, match="second functorch transform"):
        vmap(vmap(one, in_dims=(None, 0)), in_dims=(0, 0))(params, x)


@pytest.mark.parametrize("name", ["ur_lstm", "lstm", "gru"])
def test_dropout_masks_differ_per_member(name):
    """With randomness "different" (search.pack) every member draws its own candidate-dropout masks: identical
    members on identical inputs give different outputs, through the member-batched kernel."""
    cells = members(name, {"dropout": 0.3}, torch.float64, 1) * 3
    xs = torch.randn(1, B, T, D, dtype=torch.float64).expand(3, B, T, D)
    y, _, _, _ = run_pack(cells, xs, None, randomness="different")
    assert f"{kernel_of(name)}Backward" in run_pack.last_graph
    assert not torch.allclose(y[0], y[1]) and not torch.allclose(y[1], y[2])


@pytest.mark.parametrize("name", ["rnn", "ur_lstm", "gru", "lru"])
def test_vmap_over_grad_fails_clearly(name):
    """vmap over torch.func.grad would hand the single-sequence backward batched tensors: refused with a clear
    error (the pack uses ordinary autograd outside its vmap)."""
    from torch.func import functional_call, grad, stack_module_state

    cells = members(name, {}, torch.float64)
    params, buffers = stack_module_state(cells)

    def loss(p, x):
        y = functional_call(cells[0], (p, buffers), (x,))[0]
        return y.real.square().sum() if y.is_complex() else y.square().sum()

    x = torch.randn(K, B, T, D, dtype=torch.float64)
    with packed(), pytest.raises(RuntimeError, match="backward ran under a functorch transform"):
        vmap(grad(loss))(params, x)
