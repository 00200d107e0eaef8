"""Diagonal linear recurrences h_t = a_t * h_{t-1} + b_t: a sequential reference and two parallel forms.

Used by "Resurrecting Recurrent Neural Networks for Long Sequences" (Orvieto et al., ICML 2023, arXiv 2303.06349)
and by the diagonal RNN of "Revisiting Glorot Initialization for Long-Range Linear Recurrences" (Bar, Seleznova et al.,
arXiv 2505.19827). Both papers compute the recurrence with an associative scan over the operator

    (a_i, b_i) o (a_j, b_j) = (a_j a_i, a_j b_i + b_j)        (i earlier than j)

whose prefix "sums" are (prod a, h_t) with zero initial state. Everything here is a pure function over tensors
(complex or real); autograd differentiates through all of them.

Shapes (batch first, as everywhere in ``rnns``):

    b    (B, T, N)  complex or real   inputs already projected, b_t = B x_t
    a    (N,) or (B, N)               one transition for all steps (the LRU and diag-RNN case), or
         (B, T, N) / (1, T, N)        a transition per step
    h0   (B, N) or None               carried state (None = zeros)
    ->   (B, T, N)                    every state h_t; h_T is ``out[:, -1]``

Numerics: only products of ``a`` are formed (powers by repeated squaring, running products), never a division by a
cumulative product, which underflows to 0 for |a| < 1 over long sequences and would give inf / nan.
"""
from __future__ import annotations

import math

import torch

from .errors import unknown

Tensor = torch.Tensor


def _check(a: Tensor, b: Tensor, h0: Tensor | None) -> bool:
    """Validate shapes; True when ``a`` varies over time."""
    if b.dim() != 3 or b.shape[1] == 0:
        raise ValueError(f"b must be (B, T, N) with T >= 1, got shape {tuple(b.shape)}")
    varying = a.dim() == 3
    if varying and a.shape[1] != b.shape[1]:
        raise ValueError(f"a has {a.shape[1]} steps but b has {b.shape[1]}")
    if not varying and a.dim() not in (1, 2):
        raise ValueError(f"a must be (N,), (B, N) or (B, T, N), got shape {tuple(a.shape)}")
    if h0 is not None and h0.shape[-1] != b.shape[-1]:
        raise ValueError(f"h0 has width {h0.shape[-1]} but b has {b.shape[-1]}")
    return varying


def linear_scan_ref(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """Sequential reference: h_t = a_t * h_{t-1} + b_t, one step at a time (T small ops). Shapes: module docstring."""
    varying = _check(a, b, h0)
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    # unbind, not b[:, t]: indexing inside the loop makes each step's backward write a full (B, T, N) zero
    # gradient, O(T^2) work; unbind's backward stacks the step gradients once
    bs = b.unbind(1)
    as_ = a.unbind(1) if varying else (a,) * len(bs)
    out = []
    for a_t, b_t in zip(as_, bs):
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out, dim=1)


def linear_scan_logdepth(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """Hillis-Steele parallel scan: ceil(log2 T) vectorised steps, O(T log T) work. Shapes: module docstring.

    Step with offset d combines every position t >= d with position t - d. For a constant transition the
    accumulated factor of every such position is exactly a^d (it has absorbed min(t + 1, d) = d steps), so the
    factor is one (N,) vector per step, obtained by squaring; for a per-step transition the factors are scanned too.
    """
    varying = _check(a, b, h0)
    if h0 is not None:
        # fold the carried state into the first input: h_0 = a_0 h0 + b_0
        first = b[:, :1] + ((a[:, :1] if varying else a.unsqueeze(-2)) * h0.unsqueeze(1))
        b = torch.cat([first, b[:, 1:]], dim=1)
    T = b.shape[1]
    d = 1
    ad = a  # constant case: a^d
    while d < T:
        if varying:
            # both halves read the values from before this step (out of place, as autograd needs)
            b = torch.cat([b[:, :d], ad[:, d:] * b[:, :-d] + b[:, d:]], dim=1)
            ad = torch.cat([ad[:, :d], ad[:, d:] * ad[:, :-d]], dim=1)
        else:
            b = torch.cat([b[:, :d], ad.unsqueeze(-2) * b[:, :-d] + b[:, d:]], dim=1)
            ad = ad * ad
        d *= 2
    return b


def linear_scan_chunked(a: Tensor, b: Tensor, h0: Tensor | None = None, chunk: int | None = None) -> Tensor:
    """Two-level scan: O(T) work in about 2 sqrt(T) sequential steps. Shapes: module docstring.

    The sequence is cut into K chunks of C steps (C = ``chunk``, default ceil(sqrt(T))):
      1. inside every chunk at once, a zero-state scan (C steps over (B, K, N) tensors) and the running
         products P_{k,i} = a_{k,0} ... a_{k,i};
      2. across chunks, the state at each chunk end, H_k = P_{k,C-1} H_{k-1} + local_{k,C-1} (K steps, H_{-1} = h0);
      3. h_{k,i} = local_{k,i} + P_{k,i} H_{k-1}.
    The tail is padded with the identity element (a = 1, b = 0), which leaves the states unchanged.
    """
    varying = _check(a, b, h0)
    Bsz, T, N = b.shape
    C = max(1, int(chunk) if chunk else math.isqrt(max(T - 1, 0)) + 1)
    K = -(-T // C)
    pad = K * C - T
    if pad:
        b = torch.cat([b, b.new_zeros(Bsz, pad, N)], dim=1)
        if varying:
            a = torch.cat([a, a.new_ones(a.shape[0], pad, a.shape[2])], dim=1)
    bk = b.reshape(Bsz, K, C, N)
    # per-step transitions (B|1, K, C, N), or the constant one as (B|1, 1, N)
    ak = a.reshape(a.shape[0], K, C, N) if varying else a.reshape(-1, 1, N)
    # 1. zero-state scan and running products inside all chunks at once
    local, prods = [], []
    h = torch.zeros_like(bk[:, :, 0])
    p = None
    bs = bk.unbind(2)  # unbind rather than indexing in the loop: see linear_scan_ref
    as_ = ak.unbind(2) if varying else (ak,) * C  # (B|1, K, N) each, or the constant (B|1, 1, N)
    for ai, bi in zip(as_, bs):
        h = ai * h + bi
        p = ai if p is None else p * ai
        local.append(h)
        prods.append(p)
    local_t = torch.stack(local, dim=2)  # (B, K, C, N)
    prods_t = torch.stack(prods, dim=2)  # (B|1, K|1, C, N)
    # 2. carry the state across chunk ends
    Hk = torch.zeros_like(bk[:, 0, 0]) if h0 is None else h0 + torch.zeros_like(bk[:, 0, 0])
    ends = local_t[:, :, C - 1].unbind(1)  # (B, N) local state at each chunk end
    trans = prods_t[:, :, C - 1].unbind(1) if varying else (prods_t[:, 0, C - 1],) * K  # (B|1, N) chunk transitions
    carries = []
    for k in range(K):
        carries.append(Hk)  # state entering chunk k
        if k < K - 1:
            Hk = trans[k] * Hk + ends[k]
    carry = torch.stack(carries, dim=1)  # (B, K, N)
    # 3. add each chunk's entering state, propagated by the running products
    out = local_t + prods_t * carry.unsqueeze(2)
    return out.reshape(Bsz, K * C, N)[:, :T]


# "parallel" is the two-level scan: O(T) work and ~2 sqrt(T) sequential steps. On CPU it made the LRU's forward +
# backward 2-4x faster than the log-depth scan, whose O(T log T) work and log2(T) full-size copies dominate there
# (bench/bench_scan.py); "log_depth" is kept for accelerators, where fewer sequential steps can matter more.
SCANS = {"parallel": linear_scan_chunked, "log_depth": linear_scan_logdepth, "loop": linear_scan_ref}


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None, method: str = "parallel") -> Tensor:
    """h_t = a_t * h_{t-1} + b_t by the named method (a key of ``SCANS``). Shapes: module docstring."""
    if method not in SCANS:
        raise unknown("scan", method, SCANS)
    return SCANS[method](a, b, h0)
