"""rnns.scan: every parallel scan agrees with the sequential loop (values and gradients), for any T, with h0."""
import pytest
import torch

from rnns.errors import ConfigError
from rnns.scan import SCANS, linear_scan, linear_scan_chunked, linear_scan_logdepth, linear_scan_ref

FAST = [linear_scan_chunked, linear_scan_logdepth]
LENGTHS = [1, 2, 3, 5, 8, 16, 31, 33, 100]


def _inputs(T, kind, B=3, N=4, dtype=torch.complex128, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(B, T, N, dtype=dtype, generator=g)
    shape = {"const": (N,), "batch": (B, N), "varying": (B, T, N)}[kind]
    # |a| < 1 as in a stable recurrence, but not tiny, so long-range terms still count in the comparison
    mod = 0.5 + 0.49 * torch.rand(shape, dtype=torch.float64, generator=g)
    if dtype.is_complex:
        a = torch.polar(mod, 6.28 * torch.rand(shape, dtype=torch.float64, generator=g)).to(dtype)
    else:
        a = (mod * torch.sign(torch.randn(shape, dtype=torch.float64, generator=g))).to(dtype)
    h0 = torch.randn(B, N, dtype=dtype, generator=g)
    return a, b, h0


@pytest.mark.parametrize("scan", FAST, ids=lambda f: f.__name__)
@pytest.mark.parametrize("kind", ["const", "batch", "varying"])
@pytest.mark.parametrize("T", LENGTHS)
def test_parallel_equals_loop_float64(scan, kind, T):
    a, b, h0 = _inputs(T, kind)
    torch.testing.assert_close(scan(a, b, h0), linear_scan_ref(a, b, h0), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(scan(a, b), linear_scan_ref(a, b), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_chunked_any_chunk_size(chunk):
    a, b, h0 = _inputs(29, "varying")
    torch.testing.assert_close(linear_scan_chunked(a, b, h0, chunk=chunk), linear_scan_ref(a, b, h0))


@pytest.mark.parametrize("scan", FAST, ids=lambda f: f.__name__)
def test_real_dtype(scan):
    a, b, h0 = _inputs(13, "const", dtype=torch.float64)
    torch.testing.assert_close(scan(a, b, h0), linear_scan_ref(a, b, h0))


def test_loop_recurrence_by_hand():
    a, b, h0 = _inputs(4, "const", B=1, N=1)
    h = h0[0, 0]
    for t in range(4):
        h = a[0] * h + b[0, t, 0]
        assert torch.isclose(linear_scan_ref(a, b, h0)[0, t, 0], h)


@pytest.mark.parametrize("scan", FAST, ids=lambda f: f.__name__)
@pytest.mark.parametrize("kind", ["const", "varying"])
def test_gradients_match_loop(scan, kind):
    a, b, h0 = _inputs(37, kind)
    w = torch.randn(b.shape, dtype=b.dtype)  # a generic real loss of the complex states

    def grads(fn):
        leaves = [t.clone().requires_grad_() for t in (a, b, h0)]
        (fn(*leaves) * w).real.sum().backward()
        return [t.grad for t in leaves]

    for got, want in zip(grads(scan), grads(linear_scan_ref)):
        assert torch.isfinite(torch.view_as_real(got)).all()
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("method", list(SCANS))
def test_long_sequence_finite_float32(method):
    # powers of |a| = 0.3 underflow long before T = 3000: products must go to 0, not inf/nan (no division)
    N, T = 8, 3000 if method != "loop" else 300
    a = torch.polar(torch.full((N,), 0.3), torch.linspace(0, 3, N)).requires_grad_()
    b = torch.randn(2, T, N, dtype=torch.complex64, requires_grad=True)
    h = linear_scan(a, b, torch.ones(2, N, dtype=torch.complex64), method)
    h.abs().sum().backward()
    assert torch.isfinite(torch.view_as_real(h)).all()
    assert torch.isfinite(torch.view_as_real(a.grad)).all() and torch.isfinite(torch.view_as_real(b.grad)).all()


def test_unknown_method_is_config_error():
    a, b, _ = _inputs(3, "const")
    with pytest.raises(ConfigError, match="parallel"):
        linear_scan(a, b, method="blelloch")


@pytest.mark.parametrize("kind", ["const", "batch", "varying"])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("T", [1, 2, 9, 40])
def test_loop_fast_path_equals_reference(kind, with_h0, T, monkeypatch):
    """scan "loop": the explicit-BPTT loop (linear_scan_bptt) against the reference step loop under autograd
    (RNNSWEEP_REFERENCE_CELLS=1): states and gradients w.r.t. a, b and h0 in float64 (1e-10) and complex64 (1e-5)."""
    for cdt, tol in ((torch.complex128, 1e-10), (torch.complex64, 1e-5)):
        torch.manual_seed(T)
        shape = {"const": (5,), "batch": (3, 5), "varying": (3, T, 5)}[kind]
        a = torch.polar(torch.rand(shape, dtype=torch.float64) * 0.5 + 0.49,
                        torch.rand(shape, dtype=torch.float64) * 6.28).to(cdt)
        b = torch.randn(3, T, 5, dtype=cdt)
        h0 = torch.randn(3, 5, dtype=cdt) if with_h0 else None
        w = torch.randn(3, T, 5, dtype=cdt)
        out = {}
        for ref in ("0", "1"):
            monkeypatch.setenv("RNNSWEEP_REFERENCE_CELLS", ref)
            ins = [t.clone().requires_grad_() for t in (a, b, h0) if t is not None]
            h = SCANS["loop"](*ins[:2], ins[2] if with_h0 else None)
            out[ref] = (h, *torch.autograd.grad((h * w).real.sum(), ins))
        for x, y in zip(out["0"], out["1"]):
            torch.testing.assert_close(x, y, rtol=tol, atol=tol)


def test_loop_fast_path_is_one_node(monkeypatch):
    a, b = torch.rand(4, dtype=torch.float64).requires_grad_(), torch.randn(2, 6, 4, dtype=torch.float64)
    monkeypatch.setenv("RNNSWEEP_REFERENCE_CELLS", "0")
    assert "DiagBPTT" in type(SCANS["loop"](a, b).grad_fn).__name__
    monkeypatch.setenv("RNNSWEEP_REFERENCE_CELLS", "1")
    assert type(SCANS["loop"](a, b).grad_fn).__name__ == "StackBackward0"
