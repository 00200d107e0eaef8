"""rnns.linear: rescaled Glorot (PAPERS.md 1.2), and the linear / diagonal RNNs of the Rescaled Glorot repo (1.3)."""
import math

import pytest
import torch

from rnns.errors import ConfigError
from rnns.linear import glorot_matrix, rescaled_glorot_c, uniform_disk_polar
from rnns.registry import build_cell, get_cell
from fastref import fast_vs_reference

H, N = 4, 6

# PAPERS.md 1.2 table: n, gamma_n, c_n, 1/c_n
TABLE = [(192, 0.100, 1.223, 0.817), (256, 0.281, 1.126, 0.888), (384, 0.546, 1.083, 0.923),
         (512, 0.739, 1.067, 0.937), (1024, 1.222, 1.044, 0.958)]


@pytest.mark.parametrize("n,gamma_n,c_n,inv", TABLE)
def test_rescaled_glorot_c_matches_table(n, gamma_n, c_n, inv):
    c = rescaled_glorot_c(n)
    assert abs(c - c_n) < 1e-3 and abs(1 / c - inv) < 1e-3
    assert abs(math.log(n / (2 * math.pi * math.log(n) ** 2)) - gamma_n) < 1.5e-3


@pytest.mark.parametrize("n", [1, 2, 64, 128, 163])
def test_rescaled_glorot_small_n_is_one_clear_error(n):
    with pytest.raises(ConfigError) as e:
        rescaled_glorot_c(n)
    msg = str(e.value)
    assert "\n" not in msg and "164" in msg and str(n) in msg


def test_rescaled_glorot_smallest_valid_n():
    assert math.isfinite(rescaled_glorot_c(164)) and rescaled_glorot_c(164) > 1


@pytest.mark.parametrize("n", [192, 256])
def test_rescaled_spectral_radius_below_one(n):
    torch.manual_seed(0)
    radii = [torch.linalg.eigvals(glorot_matrix(n, "fixed")).abs().max().item() for _ in range(5)]
    assert max(radii) < 1
    # plain Glorot sits above: its radius is about 1.04 (PAPERS 1.2 simulation)
    glorot = [torch.linalg.eigvals(glorot_matrix(n, "glorot")).abs().max().item() for _ in range(5)]
    assert sum(glorot) / 5 > sum(radii) / 5 + 0.05


def test_diag_uniform_modulus_and_phase_independent():
    torch.manual_seed(0)
    a = uniform_disk_polar(20000)
    mod, phase = a.abs(), torch.remainder(a.angle(), 2 * math.pi)
    assert mod.min() >= 0 and mod.max() <= 1 and phase.max() < 2 * math.pi
    corr = torch.corrcoef(torch.stack([mod, phase]))[0, 1]
    assert abs(corr) < 0.03  # the repository's bug (one PRNG key) would give exactly 1
    assert abs(mod.mean() - 0.5) < 0.01 and abs(phase.mean() - math.pi) < 0.03
    # and the cell uses it
    torch.manual_seed(1)
    want = uniform_disk_polar(300)
    torch.manual_seed(1)
    cell = build_cell("diag_rnn", H, 300, A_init="uniform")
    torch.testing.assert_close(torch.complex(cell.a_re, cell.a_im), want.to(torch.complex64))


def test_registered_options():
    assert get_cell("linear_rnn").options() == {"A_init": "glorot"}
    # issue 13: default scan chosen from measurements (was "parallel"; see docs/deviations/rnns-linear.md)
    assert get_cell("diag_rnn").options() == {"A_init": "glorot", "scan": "auto"}


def test_linear_rnn_by_hand_and_chained():
    torch.manual_seed(0)
    cell = build_cell("linear_rnn", H, N).double()
    x = torch.randn(2, 5, H, dtype=torch.float64)
    y, hT = cell(x)
    h = torch.zeros(2, N, dtype=torch.float64)
    for t in range(5):
        h = h @ cell.A.T + x[:, t] @ cell.B.T
        torch.testing.assert_close(y[:, t], (h @ cell.C.T + cell.D * x[:, t]).detach())
    torch.testing.assert_close(hT, h.detach())
    y1, h1 = cell(x[:, :2])
    y2, h2 = cell(x[:, 2:], h1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    torch.testing.assert_close(h2, hT)


def test_diag_rnn_by_hand_and_chained():
    torch.manual_seed(0)
    cell = build_cell("diag_rnn", H, N).double()
    x = torch.randn(2, 7, H, dtype=torch.float64)
    y, hT = cell(x)
    a = torch.complex(cell.a_re, cell.a_im)
    B = torch.complex(cell.B_re, cell.B_im)
    h = torch.zeros(2, N, dtype=torch.complex128)
    for t in range(7):
        h = a * h + x[:, t].to(B.dtype) @ B.T
        torch.testing.assert_close(y[:, t], ((h @ cell.C.T.to(h.dtype)).real + cell.D * x[:, t]).detach())
    torch.testing.assert_close(hT, h.detach())
    y1, h1 = cell(x[:, :3])
    y2, h2 = cell(x[:, 3:], h1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)


@pytest.mark.parametrize("name", ["linear_rnn", "diag_rnn"])
def test_identity_init(name):
    cell = build_cell(name, H, N, A_init="identity")
    if name == "linear_rnn":
        torch.testing.assert_close(cell.A.detach(), torch.eye(N))
    else:
        assert (cell.a_re == 1).all() and (cell.a_im == 0).all()


def test_diag_rnn_eigen_init_is_conjugate_closed():
    torch.manual_seed(0)
    cell = build_cell("diag_rnn", H, 192, A_init="fixed")
    a = torch.complex(cell.a_re, cell.a_im).detach().to(torch.complex128)
    dist = (a[:, None] - a.conj()[None, :]).abs().min(dim=1).values  # eigenvalues of a real matrix
    assert dist.max() < 1e-5 and a.abs().max() < 1 and a.imag.abs().max() > 0.1


def test_param_groups():
    lin = build_cell("linear_rnn", H, N)
    assert [id(p) for p in lin.param_groups()["recurrent"]] == [id(lin.A), id(lin.B)]
    diag = build_cell("diag_rnn", H, N)
    want = (diag.a_re, diag.a_im, diag.B_re, diag.B_im)
    assert {id(p) for p in diag.param_groups()["recurrent"]} == {id(p) for p in want}


@pytest.mark.parametrize("name,opts", [("linear_rnn", {"A_init": "fixed"}), ("diag_rnn", {"A_init": "fixed"}),
                                       ("linear_rnn", {"A_init": "uniform"}), ("diag_rnn", {"A_init": "ring"}),
                                       ("diag_rnn", {"scan": "nope"})])
def test_bad_options_are_config_errors(name, opts):
    with pytest.raises(ConfigError):
        build_cell(name, H, 128, **opts)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
def test_linear_rnn_fast_path_equals_reference(dtype, tol, monkeypatch):
    """linear_rnn's explicit-BPTT fast path against its step loop (RNNSWEEP_REFERENCE_CELLS=1): outputs, final state,
    gradients w.r.t. input, initial state and every parameter."""
    torch.manual_seed(0)
    cell = build_cell("linear_rnn", 4, 6, A_init="halved_glorot").to(dtype)
    x, h0 = torch.randn(3, 9, 4, dtype=dtype), torch.randn(3, 6, dtype=dtype)
    fast_vs_reference(cell, x, h0, monkeypatch, dtype, tol)
