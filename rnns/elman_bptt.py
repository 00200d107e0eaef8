"""Fast path of the Elman-form cells: the recurrence as one autograd Function with a hand-written backward through time.

Used by :class:`rnns.rnn.ElmanForm` (``rnn``, ``rnn_orth``, ``exprnn``, ``nnrnn``) and the stair cells over them
(``srnn``, ``srnn_exp``, ``srnn_nn`` with a fixed or learned per-step scale), and ``linear_rnn`` (phi the identity).
Time-major, row convention:

    a_t = u_t + h_{t-1} W                   u_t the input projection (computed for all steps before the loop)
    h_t = r_t * phi(a_t)                    r_t = 1 unless the stair scale is given; phi: identity, tanh, relu, modReLU
    (stair exp-alpha: h_t = (1 - exp(-r_t a_t)) * phi(a_t), the gate's derivative in place of r_t phi'(a_t) below)

Forward saves the pre-activations a_t and the states h_t; backward runs the reverse loop

    g_t    = dL/dh_t (from the output at t, plus what flows back from t + 1)
    ga_t   = r_t * g_t * phi'(a_t)          (dL/da_t, which is also dL/du_t)
    g_{t-1} += ga_t W^T

and then forms the parameter gradients in single GEMMs / reductions over all steps:
dL/dW = [h_{-1}, ..., h_{T-2}]^T [ga_0, ..., ga_{T-1}], dL/db (modReLU) = sum ga * sign(a),
dL/dr_t = sum g_t * phi(a_t).
Each step of forward and backward is one GEMM with W plus a few elementwise ops, without autograd bookkeeping; the loops
are TorchScript functions (compiled once per process, well under a second). The slow reference, the plain step loop
under autograd, stays in ElmanForm and is selected by ``rnns.base.use_reference()``; tests check the two agree
(outputs, final state, gradients w.r.t. input, initial state and every parameter).

phi'(a) is the derivative autograd takes for the reference's formula: tanh 1 - tanh(a)^2, relu [a > 0],
modReLU sign(a) * relu(|a| + b) -> [|a| + b > 0] * sign(a)^2 (0 at a = 0), identity 1.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .vmap_rules import apply as _apply, plain_twin, refuse_transformed_backward

IDENTITY, TANH, RELU, MODRELU = 0, 1, 2, 3
PLAIN, SCALED, GATED = 0, 1, 2  # h = phi(a); h = r_t phi(a); h = (1 - exp(-r_t a)) phi(a) (stair exp-alpha)


def _phi(a: Tensor, b: Tensor, kind: int) -> Tensor:
    if kind == 1:
        return torch.tanh(a)
    if kind == 2:
        return torch.relu(a)
    if kind == 3:
        return torch.sign(a) * torch.relu(a.abs() + b)
    return a


def _elman_forward(ux: Tensor, W: Tensor, h0: Tensor, b: Tensor, scales: Tensor, kind: int,
                   mode: int) -> Tuple[Tensor, Tensor]:
    """ux (T, B, H), W (H, H), h0 (B, H), b (H,) or empty, scales (T,) or empty -> (hs, pre-activations), (T, B, H).

    mode: PLAIN h = phi(a); SCALED h = r_t phi(a); GATED h = (1 - exp(-r_t a)) phi(a) (the stair "exp-alpha")."""
    T = ux.shape[0]
    pre = torch.empty_like(ux)
    hs = torch.empty_like(ux)
    h = h0
    for t in range(T):
        a = torch.addmm(ux[t], h, W, out=pre[t])  # written in place: no per-step copy
        if mode == 1:
            h = torch.mul(_phi(a, b, kind), scales[t], out=hs[t])
        elif mode == 2:
            h = torch.mul(1 - torch.exp(-scales[t] * a), _phi(a, b, kind), out=hs[t])
        elif kind == 3:
            h = torch.mul(torch.sign(a), torch.relu(a.abs() + b), out=hs[t])
        elif kind == 1:
            h = torch.tanh(a, out=hs[t])
        elif kind == 2:
            h = torch.relu(a)
            hs[t] = h
        else:
            hs[t] = a
            h = a
    return hs, pre


def _phi_derivative(pre: Tensor, b: Tensor, kind: int) -> Tensor:
    """phi'(a) for every step at once, as autograd differentiates the reference's formula."""
    if kind == 1:
        th = torch.tanh(pre)
        return 1 - th * th
    if kind == 2:
        return (pre > 0).to(pre.dtype)
    if kind == 3:
        sa = torch.sign(pre)
        return ((pre.abs() + b) > 0).to(pre.dtype) * (sa * sa)
    return torch.ones_like(pre)


def _elman_backward(ghs: Tensor, pre: Tensor, hs: Tensor, h0: Tensor, W: Tensor, b: Tensor, scales: Tensor,
                    kind: int, mode: int, need_scales: bool) -> List[Tensor]:
    """Reverse loop; returns [d ux, d W, d h0, d b (or empty), d scales (or empty)].

    The per-step factor dh_t/da_t is formed for all steps before the loop (r_t phi'(a), or for the gate
    r e^{-r a} phi(a) + (1 - e^{-r a}) phi'(a)), so each step is one add, one multiply (written in place) and one
    GEMM with W^T."""
    T = pre.shape[0]
    Wt = W.t()
    dphi = _phi_derivative(pre, b, kind)
    empty = torch.empty(0, dtype=pre.dtype, device=pre.device)
    if mode == 1:
        D = dphi * scales.view(-1, 1, 1)
        gate = empty
        e = empty
    elif mode == 2:
        e = torch.exp(-scales.view(-1, 1, 1) * pre)
        gate = 1 - e
        D = scales.view(-1, 1, 1) * e * _phi(pre, b, kind) + gate * dphi
    else:
        D = dphi
        gate = empty
        e = empty
    keep = need_scales or (mode == 2 and kind == 3)  # dL/dh_t is needed after the loop
    gpre = torch.empty_like(pre)
    gout = torch.empty_like(pre) if keep else empty
    g = torch.zeros_like(h0)
    for s in range(T):
        t = T - 1 - s
        if keep:
            g = torch.add(g, ghs[t], out=gout[t])
        else:
            g = g + ghs[t]
        ga = torch.mul(g, D[t], out=gpre[t])
        g = torch.mm(ga, Wt)
    H = W.shape[0]
    hprev = torch.cat([h0.unsqueeze(0), hs[:-1]], 0)  # h_{t-1} for every t
    gW = torch.mm(hprev.reshape(-1, H).t(), gpre.reshape(-1, H))
    if kind != 3:
        gb = empty
    elif mode == 2:  # dh/db = (1 - e^{-r a}) sign(a) [|a| + b > 0]
        gb = (gout * gate * torch.sign(pre) * ((pre.abs() + b) > 0).to(pre.dtype)).sum((0, 1))
    else:  # dh/db = r sign(a) [|a| + b > 0] = (dh/da) sign(a)
        gb = (gpre * torch.sign(pre)).sum((0, 1))
    if not need_scales:
        gs = empty
    elif mode == 2:  # dh/dr = a e^{-r a} phi(a)
        gs = (gout * pre * e * _phi(pre, b, kind)).sum((1, 2))
    else:  # dh/dr = phi(a)
        gs = (gout * _phi(pre, b, kind)).sum((1, 2))
    return [gpre, gW, g, gb, gs]


def _elman_forward_packed(ux: Tensor, W: Tensor, h0: Tensor, b: Tensor, scales: Tensor, kind: int,
                          mode: int) -> Tuple[Tensor, Tensor]:
    """:func:`_elman_forward` for K trial-pack members at once: ux (T, K, B, H), W (K, H, H), h0 (K, B, H),
    b (K, 1, H) or empty, scales (T, K, 1, 1) or empty -> (hs, pre), (T, K, B, H). One baddbmm per step."""
    T = ux.shape[0]
    pre = torch.empty_like(ux)
    hs = torch.empty_like(ux)
    h = h0
    for t in range(T):
        a = torch.baddbmm(ux[t], h, W, out=pre[t])
        if mode == 1:
            h = torch.mul(_phi(a, b, kind), scales[t], out=hs[t])
        elif mode == 2:
            h = torch.mul(1 - torch.exp(-scales[t] * a), _phi(a, b, kind), out=hs[t])
        elif kind == 3:
            h = torch.mul(torch.sign(a), torch.relu(a.abs() + b), out=hs[t])
        elif kind == 1:
            h = torch.tanh(a, out=hs[t])
        elif kind == 2:
            h = torch.relu(a)
            hs[t] = h
        else:
            hs[t] = a
            h = a
    return hs, pre


def _elman_backward_packed(ghs: Tensor, pre: Tensor, hs: Tensor, h0: Tensor, W: Tensor, b: Tensor, scales: Tensor,
                           kind: int, mode: int, need_scales: bool) -> List[Tensor]:
    """:func:`_elman_backward` for K members (shapes of :func:`_elman_forward_packed`): per-member gradients,
    summed over the batch and time only. Returns [d ux (T, K, B, H), d W (K, H, H), d h0 (K, B, H),
    d b (K, 1, H) or empty, d scales (T, K, 1, 1) or empty]."""
    T = pre.shape[0]
    Wt = W.transpose(1, 2)
    dphi = _phi_derivative(pre, b, kind)
    empty = torch.empty(0, dtype=pre.dtype, device=pre.device)
    if mode == 1:
        D = dphi * scales
        gate = empty
        e = empty
    elif mode == 2:
        e = torch.exp(-scales * pre)
        gate = 1 - e
        D = scales * e * _phi(pre, b, kind) + gate * dphi
    else:
        D = dphi
        gate = empty
        e = empty
    keep = need_scales or (mode == 2 and kind == 3)
    gpre = torch.empty_like(pre)
    gout = torch.empty_like(pre) if keep else empty
    g = torch.zeros_like(h0)
    for s in range(T):
        t = T - 1 - s
        if keep:
            g = torch.add(g, ghs[t], out=gout[t])
        else:
            g = g + ghs[t]
        ga = torch.mul(g, D[t], out=gpre[t])
        g = torch.bmm(ga, Wt)
    K, H = W.shape[0], W.shape[1]
    hprev = torch.cat([h0.unsqueeze(0), hs[:-1]], 0)  # (T, K, B, H)
    # dW_k = sum over t, b of h_{t-1}^T ga_t: (K, H, T B) @ (K, T B, H)
    gW = torch.bmm(hprev.permute(1, 3, 0, 2).reshape(K, H, -1), gpre.transpose(0, 1).reshape(K, -1, H))
    if kind != 3:
        gb = empty
    elif mode == 2:
        gb = (gout * gate * torch.sign(pre) * ((pre.abs() + b) > 0).to(pre.dtype)).sum((0, 2)).unsqueeze(1)
    else:
        gb = (gpre * torch.sign(pre)).sum((0, 2)).unsqueeze(1)
    if not need_scales:
        gs = empty
    elif mode == 2:
        gs = (gout * pre * e * _phi(pre, b, kind)).sum((2, 3), keepdim=True)
    else:
        gs = (gout * _phi(pre, b, kind)).sum((2, 3), keepdim=True)
    return [gpre, gW, g, gb, gs]


_KERNELS = {"forward": _elman_forward, "backward": _elman_backward,
            "forward_packed": _elman_forward_packed, "backward_packed": _elman_backward_packed}


def use_torchscript(on: bool) -> None:
    """Run the loops as TorchScript functions (True) or as plain Python (False)."""
    if on:
        import warnings

        with warnings.catch_warnings():  # torch.jit.script is deprecated in favour of torch.compile
            warnings.simplefilter("ignore")
            _KERNELS["forward"] = torch.jit.script(_elman_forward)  # also scripts _phi, _phi_derivative
            _KERNELS["backward"] = torch.jit.script(_elman_backward)
            _KERNELS["forward_packed"] = torch.jit.script(_elman_forward_packed)
            _KERNELS["backward_packed"] = torch.jit.script(_elman_backward_packed)
    else:
        _KERNELS.update(forward=_elman_forward, backward=_elman_backward, forward_packed=_elman_forward_packed,
                        backward_packed=_elman_backward_packed)


def _mode(scales: Optional[Tensor], gated: bool) -> int:
    return PLAIN if scales is None else (GATED if gated else SCALED)


class ElmanBPTT(torch.autograd.Function):
    """hs, pre = ElmanBPTT.apply(ux, W, h0, b, scales, kind, gated): the recurrence of the module docstring with its
    explicit backward (``pre``, the pre-activations, is returned only to be saved: not differentiable). ``b`` is
    modReLU's bias (ignored, may be empty, for other kinds); ``scales`` the (T,) stair scalars or None; ``gated``:
    they enter as the exp-alpha gate (1 - exp(-r_t a_t)) instead of a factor.

    Under ``torch.func.vmap`` over trial-pack members (:mod:`rnns.vmap_rules`) its ``vmap`` rule runs
    :class:`ElmanBPTTPacked`, the same loops on all members at once."""

    @staticmethod
    def forward(ux: Tensor, W: Tensor, h0: Tensor, b: Optional[Tensor], scales: Optional[Tensor],
                kind: int, gated: bool = False) -> Tuple[Tensor, Tensor]:
        empty = ux.new_empty(0)
        bb = b if (kind == MODRELU and b is not None) else empty
        ss = scales if scales is not None else empty
        return _KERNELS["forward"](ux.contiguous(), W.contiguous(), h0, bb, ss, kind, _mode(scales, gated))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ux, W, h0, b, scales, kind, gated = inputs
        hs, pre = output
        ctx.mark_non_differentiable(pre)
        ctx.set_materialize_grads(False)  # no zero gradient is built for ``pre``
        ctx.kind, ctx.mode = kind, _mode(scales, gated)
        empty = ux.new_empty(0)
        bb = b if (kind == MODRELU and b is not None) else empty
        ctx.save_for_backward(pre, hs, h0, W, bb, scales if scales is not None else empty)

    @staticmethod
    @once_differentiable
    def backward(ctx, ghs: Tensor, _gpre):
        refuse_transformed_backward((ghs,), "ElmanBPTT")
        pre, hs, h0, W, bb, ss = ctx.saved_tensors
        need_scales = ctx.mode != PLAIN and ctx.needs_input_grad[4]
        ghs = torch.zeros_like(hs) if ghs is None else ghs
        gux, gW, gh0, gb, gs = _KERNELS["backward"](ghs.contiguous(), pre, hs, h0, W.contiguous(), bb, ss, ctx.kind,
                                                    ctx.mode, need_scales)
        n = ctx.needs_input_grad
        return (gux if n[0] else None, gW if n[1] else None, gh0 if n[2] else None,
                gb if (n[3] and ctx.kind == MODRELU) else None, gs if need_scales else None, None, None)

    @staticmethod
    def vmap(info, in_dims, ux, W, h0, b, scales, kind, gated=False):
        from .vmap_rules import members_first

        (ux, W, h0, b, scales), K = members_first(info, in_dims[:5], (ux, W, h0, b, scales), "ElmanBPTT")
        # members after time: every step's (K, B, H) slice is contiguous
        hs, pre = ElmanBPTTPacked.apply(ux.transpose(0, 1).contiguous(), W, h0, b, scales, kind, gated)
        return (hs, pre), (1, 1)


class ElmanBPTTPacked(torch.autograd.Function):
    """(hs, pre) (T, K, B, H) of K members at once: ux (T, K, B, H), W (K, H, H), h0 (K, B, H), b (K, H) or None,
    scales (K, T) or None. Gradients are per member (summed over batch and time only)."""

    @staticmethod
    def forward(ctx, ux, W, h0, b, scales, kind, gated):
        T, K = ux.shape[0], ux.shape[1]
        empty = ux.new_empty(0)
        bb = b.reshape(K, 1, -1).contiguous() if (kind == MODRELU and b is not None) else empty
        ss = scales.t().reshape(T, K, 1, 1).contiguous() if scales is not None else empty
        mode = _mode(scales, gated)
        hs, pre = _KERNELS["forward_packed"](ux, W.contiguous(), h0.contiguous(), bb, ss, kind, mode)
        ctx.kind, ctx.mode = kind, mode
        ctx.mark_non_differentiable(pre)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(pre, hs, h0, W, bb, ss)
        return hs, pre

    @staticmethod
    @once_differentiable
    def backward(ctx, ghs, _gpre):
        pre, hs, h0, W, bb, ss = ctx.saved_tensors
        need_scales = ctx.mode != PLAIN and ctx.needs_input_grad[4]
        ghs = torch.zeros_like(hs) if ghs is None else ghs
        gux, gW, gh0, gb, gs = _KERNELS["backward_packed"](ghs.contiguous(), pre, hs, h0.contiguous(),
                                                           W.contiguous(), bb, ss, ctx.kind, ctx.mode, need_scales)
        n = ctx.needs_input_grad
        K = W.shape[0]
        return (gux if n[0] else None, gW if n[1] else None, gh0 if n[2] else None,
                gb.reshape(K, -1) if (n[3] and ctx.kind == MODRELU) else None,
                gs.reshape(gs.shape[0], K).t() if need_scales else None, None, None)

    @staticmethod
    def vmap(info, in_dims, *args):
        raise RuntimeError("ElmanBPTTPacked runs below the trial pack's vmap (rnns.vmap_rules); it cannot itself be "
                           "vmapped (nested vmap is not supported)")


_ElmanBPTTPlain = plain_twin(ElmanBPTT)  # outside functorch transforms (rnns.vmap_rules.plain_twin)


def elman_recurrence(ux: Tensor, W: Tensor, h0: Tensor, kind: int, b: Optional[Tensor] = None,
                     scales: Optional[Tensor] = None, gated: bool = False) -> Tensor:
    """All states (T, B, H) of h_t = r_t phi(a_t) (or, ``gated``, (1 - exp(-r_t a_t)) phi(a_t)),
    a_t = u_t + h_{t-1} W; ux (T, B, H) time-major."""
    return _apply(ElmanBPTT, _ElmanBPTTPlain, ux, W, h0, b, scales, kind, gated)[0]


use_torchscript(True)  # measured 1.1-1.4x faster than the same loops in Python (docs/deviations/rnns-orthogonal.md)
