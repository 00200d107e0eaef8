"""A cell's fast path against its slow reference path on the same weights, shared by the cell tests."""
from __future__ import annotations

import torch


def fast_vs_reference(cell, x, h0, monkeypatch, dtype, tol):
    """Outputs, final state and gradients w.r.t. x, h0 and every parameter of the fast path (explicit BPTT)
    against the reference step loop under autograd (RNNSWEEP_REFERENCE_CELLS=1), through random weightings of the
    outputs and the final state (so that every output and the final state carry a gradient)."""
    cell = cell.to(dtype)
    x, h0 = x.to(dtype), h0.to(dtype)
    gen = torch.Generator().manual_seed(123)
    wy = torch.randn(x.shape[0], x.shape[1], cell.output_size, dtype=dtype, generator=gen)
    wh = torch.randn(h0.shape, dtype=dtype, generator=gen)
    out = {}
    for ref in ("0", "1"):
        monkeypatch.setenv("RNNSWEEP_REFERENCE_CELLS", ref)
        xi, hi = x.clone().requires_grad_(), h0.clone().requires_grad_()
        y, hT = cell(xi, hi)
        g = torch.autograd.grad((y * wy).sum() + (hT * wh).sum(), [xi, hi, *cell.parameters()], allow_unused=True)
        out[ref] = (y, hT, *g)
    names = ["y", "h_T", "x", "h0"] + [n for n, _ in cell.named_parameters()]
    for n, a, b in zip(names, out["0"], out["1"]):
        assert (a is None) == (b is None), n
        if a is not None:
            torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=n)
