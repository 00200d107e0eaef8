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
from typing import List

import torch
from torch.autograd.function import once_differentiable

from .base import use_reference
from .errors import unknown
from .vmap_rules import apply as _apply, plain_twin, refuse_transformed_backward

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


# chunk length of the two-level scan on CPU, from measurements (docs/deviations/rnns-linear.md): at one thread 16 was
# as fast as or faster than ceil(sqrt(T)) at every size tried, and the only form not slower than the step loop at
# B32 T1024 N128, where all forms are memory-bound
CPU_CHUNK = 16


def linear_scan_chunked(a: Tensor, b: Tensor, h0: Tensor | None = None, chunk: int | None = None) -> Tensor:
    """Two-level scan: O(T) work in about T/C + C sequential steps. Shapes: module docstring.

    The sequence is cut into K chunks of C steps (C = ``chunk``; default ``CPU_CHUNK`` on CPU, ceil(sqrt(T)) on an
    accelerator, which minimises the number of sequential steps to about 2 sqrt(T)):
      1. inside every chunk at once, a zero-state scan (C steps over (B, K, N) tensors) and the running
         products P_{k,i} = a_{k,0} ... a_{k,i};
      2. across chunks, the state at each chunk end, H_k = P_{k,C-1} H_{k-1} + local_{k,C-1} (K steps, H_{-1} = h0);
      3. h_{k,i} = local_{k,i} + P_{k,i} H_{k-1}.
    The tail is padded with the identity element (a = 1, b = 0), which leaves the states unchanged.
    """
    varying = _check(a, b, h0)
    Bsz, T, N = b.shape
    if chunk:
        C = max(1, int(chunk))
    elif b.device.type == "cpu":
        C = CPU_CHUNK
    else:
        C = math.isqrt(max(T - 1, 0)) + 1  # fewest sequential steps (C + K), what counts with a launch per step
    C = min(C, T)
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


def _bptt_forward(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """b (B, T, N), a (N,) or (B, N), h0 (B, N) -> every state (B, T, N); no autograd inside."""
    out = torch.empty_like(b)
    h = h0
    for t in range(b.shape[1]):
        h = torch.addcmul(b[:, t], a, h, out=out[:, t])  # written in place: no per-step copy
    return out


def _bptt_backward(g_out: Tensor, a: Tensor, out: Tensor, h0: Tensor) -> List[Tensor]:
    """Reverse loop of h_t = a h_{t-1} + b_t: [dL/db (T, B, N), dL/da (a's shape), dL/dh0 (B, N)].

    Complex tensors follow PyTorch's convention (the gradient is the conjugate Wirtinger derivative): through y = a h,
    dL/dh = dL/dy conj(a) and dL/da = dL/dy conj(h)."""
    ac = a.conj()
    gb = torch.empty_like(g_out)
    g = torch.zeros_like(h0)
    T = g_out.shape[1]
    for s in range(T):
        t = T - 1 - s
        g = torch.addcmul(g_out[:, t], ac, g, out=gb[:, t])
    # dL/da = sum_t g_t conj(h_{t-1}), h_{-1} = h0; vecdot(x, y) = sum conj(x) y, without forming the product
    N = h0.shape[-1]
    if a.dim() == 1:  # one transition shared by the batch: sum over batch and time
        ga = torch.linalg.vecdot(h0, gb[:, 0], dim=0)
        if T > 1:
            ga = ga + torch.linalg.vecdot(out[:, :-1], gb[:, 1:], dim=1).sum(0)
    else:  # one transition per sequence: sum over time
        ga = h0.conj() * gb[:, 0]
        if T > 1:
            ga = ga + torch.linalg.vecdot(out[:, :-1], gb[:, 1:], dim=1)
    return [gb, ga, g * ac]


_BPTT = {"forward": _bptt_forward, "backward": _bptt_backward}


def _script_bptt() -> None:
    import warnings

    with warnings.catch_warnings():  # torch.jit.script is deprecated in favour of torch.compile
        warnings.simplefilter("ignore")
        _BPTT["forward"] = torch.jit.script(_bptt_forward)
        _BPTT["backward"] = torch.jit.script(_bptt_backward)


class _DiagBPTT(torch.autograd.Function):
    """out = _DiagBPTT.apply(a, b, h0), a (N,) or (B, N), b (B, T, N), h0 (B, N): the loop with its explicit
    backward. Under ``torch.func.vmap`` over trial-pack members (:mod:`rnns.vmap_rules`) the ``vmap`` rule folds the
    members into the batch (the recurrence is elementwise: a member's sequences are just more rows, with the
    member's transition repeated over its rows) and runs this same Function once on all of them."""

    @staticmethod
    def forward(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        return _BPTT["forward"](a, b, h0)

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, b, h0 = inputs
        ctx.save_for_backward(a, output, h0)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out: Tensor):
        refuse_transformed_backward((g_out,), "linear_scan_bptt")
        a, out, h0 = ctx.saved_tensors
        gb, ga, gh0 = _BPTT["backward"](g_out.contiguous(), a, out, h0)
        n = ctx.needs_input_grad
        return ga if n[0] else None, gb if n[1] else None, gh0 if n[2] else None

    @staticmethod
    def vmap(info, in_dims, a, b, h0):
        from .vmap_rules import members_first

        (a, b, h0), K = members_first(info, in_dims, (a, b, h0), "linear_scan_bptt")
        _, B, T, N = b.shape
        # (K, N) or (K, B, N) transitions -> one per row of the folded batch (K B, N); autograd sums them back
        ab = (a.unsqueeze(1).expand(K, B, N) if a.dim() == 2 else a).reshape(K * B, N).contiguous()
        out = _DiagBPTT.apply(ab, b.reshape(K * B, T, N).contiguous(), h0.reshape(K * B, N).contiguous())
        return out.view(K, B, T, N), 0


_DiagBPTTPlain = plain_twin(_DiagBPTT)  # outside functorch transforms (rnns.vmap_rules.plain_twin)


def linear_scan_bptt(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """The sequential loop with an explicit backward through time (one autograd node for the whole recurrence).

    Forward: one ``addcmul`` per step, written into the output in place; backward: the reverse loop
    g_t = dL/dh_t + conj(a) g_{t+1}, then dL/da = sum_t g_t conj(h_{t-1}) in one reduction. Same arithmetic as
    :func:`linear_scan_ref` (results equal to round-off), without autograd's per-step bookkeeping. A per-step
    transition (a of shape (B, T, N)) falls back to the reference loop. Shapes: module docstring.
    """
    varying = _check(a, b, h0)
    if varying:
        return linear_scan_ref(a, b, h0)
    dtype = torch.promote_types(a.dtype, b.dtype)
    if h0 is not None:
        dtype = torch.promote_types(dtype, h0.dtype)
    bb = b.to(dtype).contiguous()
    zero = bb.new_zeros(bb.shape[0], bb.shape[2])
    h = zero if h0 is None else h0.to(dtype) + zero
    return _apply(_DiagBPTT, _DiagBPTTPlain, a.to(dtype).contiguous(), bb, h)


def linear_scan_loop(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """The sequential loop: its explicit-BPTT fast path, or the reference under ``rnns.base.use_reference()``."""
    # vmap-capable (rnns.vmap_rules): stays fast inside a trial pack
    return linear_scan_ref(a, b, h0) if use_reference(vmap_ok=True) else linear_scan_bptt(a, b, h0)


# "parallel" is the two-level scan: O(T) work and ~T/C + C sequential steps. On CPU it made the LRU's forward +
# backward 2-4x faster than the log-depth scan, whose O(T log T) work and log2(T) full-size copies dominate there
# (bench/bench_scan.py); "log_depth" is kept for accelerators, where fewer sequential steps can matter more.
# "loop" is the step loop (with an explicit backward unless use_reference()).


def linear_scan_auto(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """The form measured fastest for the device: on CPU the loop with its explicit backward (never slower than the
    reference loop in bench runs, 1.2-2.6x faster; the two-level scan won only at small B*N and lost up to 2x at
    B32 N128, where every form is memory-bound; docs/deviations/rnns-linear.md), elsewhere the two-level scan with
    chunk ceil(sqrt(T)) (about 2 sqrt(T) sequential steps instead of T kernel launches)."""
    if b.device.type == "cpu":
        return linear_scan_loop(a, b, h0)
    return linear_scan_chunked(a, b, h0)


SCANS = {"auto": linear_scan_auto, "parallel": linear_scan_chunked, "log_depth": linear_scan_logdepth,
         "loop": linear_scan_loop}
_script_bptt()


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None, method: str = "parallel") -> Tensor:
    """h_t = a_t * h_{t-1} + b_t by the named method (a key of ``SCANS``). Shapes: module docstring."""
    if method not in SCANS:
        raise unknown("scan", method, SCANS)
    return SCANS[method](a, b, h0)
