"""Fast paths of the gated cells, and the dropout masks they share with their slow references.

Dropout (RRU paper's code, arXiv 2108.00527; "Recurrent Dropout without Memory Loss", Semeniuta et al. 2016,
arXiv 1603.05118): every gated cell drops its candidate (LSTM family: tanh(g) / u; GRU: n; Mogrifier: j) with a
fresh mask at every step, in training mode only, as TF's ``tf.nn.dropout`` inside the cell's ``call``. The masks of
a whole sequence are drawn in one call here, (T, B, n), so a fast path and its reference consume the random
stream identically and agree under the same seed.
"""
from __future__ import annotations

import torch


def candidate_masks(p: float, T: int, B: int, n: int, like: torch.Tensor) -> torch.Tensor | None:
    """Inverted-dropout masks (T, B, n) with values 0 or 1 / (1 - p), one fresh mask per step; None when p = 0."""
    if p <= 0:
        return None
    from .base import in_pack

    if in_pack():
        # under the pack's vmap (randomness="different") an in-place draw into an unbatched tensor is refused; the
        # out-of-place draw gives every member its own masks (the single trials' stream is left as it was)
        return torch.bernoulli(torch.full((T, B, n), 1 - p, dtype=like.dtype, device=like.device)).div_(1 - p)
    return torch.empty(T, B, n, dtype=like.dtype, device=like.device).bernoulli_(1 - p).div_(1 - p)


# ----------------------------------------------------------------------------------------------- fast paths
#
# Pattern (issue 13): the input projections of every step are one GEMM before the loop (done by the caller, under
# autograd, which also gives the gradients of W_ih, the input biases and x); the loops below carry only the
# recurrence. Each forward step is one GEMM with W_hh plus a few elementwise ops, written into preallocated
# (T, B, .) buffers; the backward runs the reverse loop by hand: one GEMM with W_hh and three elementwise ops per
# step, all coefficients that do not depend on the carried gradient being computed for every step at once before
# the loop. W_hh's gradient is one GEMM after the loop. The loops are TorchScript (no Python per op; first call
# compiles in well under a second). Everything here is time major: (T, B, .).

import warnings
from typing import List, Optional

from torch import Tensor

from .vmap_rules import apply as _apply, plain_twin, refuse_transformed_backward

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*is deprecated", category=FutureWarning)


def _plain_interpreter():
    """Run the scripted loops without the profiling executor's shape specialisation: every new sequence length
    would otherwise send them through a slow de-optimised fallback for several calls (measured 2-4x), and
    without a CPU fuser (no LLVM in this build) the optimised graph gains nothing here."""
    return torch.jit.optimized_execution(False)


@torch.jit.script
def _lstm_forward(xp: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, masks: Optional[Tensor]):
    """Standard LSTM, gate order (i, f, g, o); xp (T, B, 4d) holds W_ih x + biases. Returns the states
    H (T + 1, B, d) with h_0 first, the cells C (T + 1, B, d) with c_0, the sigmoids of all four pre-activations
    S (T, B, 4d) and tanh(g) (T, B, d)."""
    T, B = xp.size(0), xp.size(1)
    d = h.size(1)
    w_t = w_hh.t()
    H = xp.new_empty((T + 1, B, d))
    C = xp.new_empty((T + 1, B, d))
    S = torch.empty_like(xp)
    J = xp.new_empty((T, B, d))
    H[0] = h
    C[0] = c
    # split every buffer once: a list index costs nothing, a tensor index is one more op per step
    xs, Hs, Cs, Ss, Js = xp.unbind(0), H.unbind(0), C.unbind(0), S.unbind(0), J.unbind(0)
    ms = masks.unbind(0) if masks is not None else xs
    for t in range(T):
        pre = torch.addmm(xs[t], h, w_t)
        i, f, g, o = torch.sigmoid(pre, out=Ss[t]).chunk(4, 1)
        j = torch.tanh(pre[:, 2 * d:3 * d], out=Js[t])
        if masks is not None:
            j = j * ms[t]
        c = torch.addcmul(f * c, i, j, out=Cs[t + 1])
        h = torch.mul(o, torch.tanh(c), out=Hs[t + 1])
    return H, C, S, J


@torch.jit.script
def _refine_forward(xp: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, masks: Optional[Tensor]):
    """UR/R-LSTM, gate order (f, r, u, o); xp (T, B, 4d) holds W x + b with +b_f / -b_f already added to the f / r
    slices. Returns H, C (T + 1, B, d), the sigmoids S (T, B, 4d), u = tanh(u~) (T, B, d) and the effective gate
    g (T, B, d)."""
    T, B = xp.size(0), xp.size(1)
    d = h.size(1)
    w_t = w_hh.t()
    H = xp.new_empty((T + 1, B, d))
    C = xp.new_empty((T + 1, B, d))
    S = torch.empty_like(xp)
    U = xp.new_empty((T, B, d))
    G = xp.new_empty((T, B, d))
    H[0] = h
    C[0] = c
    xs, Hs, Cs, Ss, Us, Gs = xp.unbind(0), H.unbind(0), C.unbind(0), S.unbind(0), U.unbind(0), G.unbind(0)
    ms = masks.unbind(0) if masks is not None else xs
    for t in range(T):
        pre = torch.addmm(xs[t], h, w_t)
        f, r, _, o = torch.sigmoid(pre, out=Ss[t]).chunk(4, 1)
        u = torch.tanh(pre[:, 2 * d:3 * d], out=Us[t])
        if masks is not None:
            u = u * ms[t]
        ff = f * f
        g = torch.addcmul(ff, r, f - ff, value=2.0, out=Gs[t])  # 2 r f + (1 - 2 r) f^2
        c = torch.addcmul(u, g, c - u, out=Cs[t + 1])  # g c + (1 - g) u
        h = torch.mul(o, torch.tanh(c), out=Hs[t + 1])
    return H, C, S, U, G


@torch.jit.script
def _lstm_backward_loop(dY: Tensor, dcT: Tensor, K: Tensor, A: Tensor, Fc: Tensor, w_hh: Tensor):
    """The reverse loop shared by both LSTMs. dY (T, B, d): gradient of every output (the final h's included).
    Per step: dh = dY_t + da_{t+1} W_hh, dc += dh A_t, da = K_t * [dc, dc, dc, dh], dc *= Fc_t.
    Returns d(pre-activations) (T, B, 4d), dh_0, dc_0."""
    T = dY.size(0)
    DA = torch.empty_like(K)
    dYs, DAs, As, Ks, Fs = dY.unbind(0), DA.unbind(0), A.unbind(0), K.unbind(0), Fc.unbind(0)
    dc = dcT
    dh = dYs[T - 1]
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            dh = torch.addmm(dYs[t], DAs[t + 1], w_hh)
        dc = torch.addcmul(dc, dh, As[t])
        torch.mul(Ks[t], torch.cat([dc, dc, dc, dh], 1), out=DAs[t])
        dc = dc * Fs[t]
    return DA, torch.mm(DAs[0], w_hh), dc


@torch.jit.script
def _lstm_forward_packed(xp: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, masks: Optional[Tensor]):
    """:func:`_lstm_forward` for K trial-pack members at once: xp (T, K, B, 4d), h and c (K, B, d), w_hh (K, 4d, d),
    masks (T, K, B, d) or None; every buffer (T, K, B, .). One baddbmm per step."""
    T, K, B = xp.size(0), xp.size(1), xp.size(2)
    d = h.size(2)
    w_t = w_hh.transpose(1, 2)
    H = xp.new_empty((T + 1, K, B, d))
    C = xp.new_empty((T + 1, K, B, d))
    S = torch.empty_like(xp)
    J = xp.new_empty((T, K, B, d))
    H[0] = h
    C[0] = c
    xs, Hs, Cs, Ss, Js = xp.unbind(0), H.unbind(0), C.unbind(0), S.unbind(0), J.unbind(0)
    ms = masks.unbind(0) if masks is not None else xs
    for t in range(T):
        pre = torch.baddbmm(xs[t], h, w_t)
        i, f, g, o = torch.sigmoid(pre, out=Ss[t]).chunk(4, 2)
        j = torch.tanh(pre[:, :, 2 * d:3 * d], out=Js[t])
        if masks is not None:
            j = j * ms[t]
        c = torch.addcmul(f * c, i, j, out=Cs[t + 1])
        h = torch.mul(o, torch.tanh(c), out=Hs[t + 1])
    return H, C, S, J


@torch.jit.script
def _refine_forward_packed(xp: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, masks: Optional[Tensor]):
    """:func:`_refine_forward` for K members at once (shapes of :func:`_lstm_forward_packed`)."""
    T, K, B = xp.size(0), xp.size(1), xp.size(2)
    d = h.size(2)
    w_t = w_hh.transpose(1, 2)
    H = xp.new_empty((T + 1, K, B, d))
    C = xp.new_empty((T + 1, K, B, d))
    S = torch.empty_like(xp)
    U = xp.new_empty((T, K, B, d))
    G = xp.new_empty((T, K, B, d))
    H[0] = h
    C[0] = c
    xs, Hs, Cs, Ss, Us, Gs = xp.unbind(0), H.unbind(0), C.unbind(0), S.unbind(0), U.unbind(0), G.unbind(0)
    ms = masks.unbind(0) if masks is not None else xs
    for t in range(T):
        pre = torch.baddbmm(xs[t], h, w_t)
        f, r, _, o = torch.sigmoid(pre, out=Ss[t]).chunk(4, 2)
        u = torch.tanh(pre[:, :, 2 * d:3 * d], out=Us[t])
        if masks is not None:
            u = u * ms[t]
        ff = f * f
        g = torch.addcmul(ff, r, f - ff, value=2.0, out=Gs[t])
        c = torch.addcmul(u, g, c - u, out=Cs[t + 1])
        h = torch.mul(o, torch.tanh(c), out=Hs[t + 1])
    return H, C, S, U, G


@torch.jit.script
def _lstm_backward_loop_packed(dY: Tensor, dcT: Tensor, K: Tensor, A: Tensor, Fc: Tensor, w_hh: Tensor):
    """:func:`_lstm_backward_loop` for K members: dY, A, Fc (T, K, B, d), K (T, K, B, 4d), w_hh (K, 4d, d)."""
    T = dY.size(0)
    DA = torch.empty_like(K)
    dYs, DAs, As, Ks, Fs = dY.unbind(0), DA.unbind(0), A.unbind(0), K.unbind(0), Fc.unbind(0)
    dc = dcT
    dh = dYs[T - 1]
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            dh = torch.baddbmm(dYs[t], DAs[t + 1], w_hh)
        dc = torch.addcmul(dc, dh, As[t])
        torch.mul(Ks[t], torch.cat([dc, dc, dc, dh], 2), out=DAs[t])
        dc = dc * Fs[t]
    return DA, torch.bmm(DAs[0], w_hh), dc


def _member_gemm(G: Tensor, X: Tensor) -> Tensor:
    """Per-member sum over time and batch of G_t^T X_t: G (T, K, B, n), X (T, K, B, m) -> (K, n, m)."""
    K, n, m = G.shape[1], G.shape[3], X.shape[3]
    return torch.bmm(G.permute(1, 3, 0, 2).reshape(K, n, -1), X.transpose(0, 1).reshape(K, -1, m))


def _flat_members(t: Tensor | None) -> Tensor | None:
    """(T, K, B, .) -> (T, K B, .): the elementwise coefficient functions treat the members as more batch rows."""
    return None if t is None else t.flatten(1, 2)


def _finish(ctx, DA, dh0, dc0, H):
    """Gradients of (xp, h0, c0, w_hh) from the loop's d(pre-activations); H (T + 1, B, d) holds h_0..h_T."""
    T, B, n = DA.shape
    dw = None
    if ctx.needs_input_grad[3]:
        dw = torch.mm(DA.reshape(T * B, n).t(), H[:-1].reshape(T * B, -1))
    return DA, dh0, dc0, dw


def _sd(s: Tensor) -> Tensor:
    """sigma'(x) = s (1 - s) from s = sigma(x)."""
    return s - s * s


def _lstm_coefficients(H, C, S, J, masks):
    """Everything the reverse loop needs that does not depend on the carried gradient, for all steps at once:
    K (T, B, 4d) = d pre / d c in slots i, f, g and d pre / d h in slot o; A = o tanh'(c) (T, B, d); Fc = f."""
    T, B, d = J.shape
    i, f, o = S[..., :d], S[..., d:2 * d], S[..., 3 * d:]
    tc = torch.tanh(C[1:])
    K = S.new_empty((T, B, 4, d))
    jm = J if masks is None else J * masks
    torch.mul(jm, _sd(i), out=K[:, :, 0])
    torch.mul(C[:-1], _sd(f), out=K[:, :, 1])
    di = i if masks is None else i * masks  # d c / d tanh(g~)
    torch.mul(di, 1 - J * J, out=K[:, :, 2])
    torch.mul(tc, _sd(o), out=K[:, :, 3])
    A = o * (1 - tc * tc)
    return K.view(T, B, 4 * d), A, f


def _refine_coefficients(H, C, S, U, G, masks):
    """As :func:`_lstm_coefficients` for the refine gate; the carry factor is g."""
    T, B, d = U.shape
    f, r, o = S[..., :d], S[..., d:2 * d], S[..., 3 * d:]
    tc = torch.tanh(C[1:])
    um = U if masks is None else U * masks
    cfd2 = (C[:-1] - um).mul_(_sd(f)).mul_(2.0)  # (d c / d g) f (1 - f) 2
    K = S.new_empty((T, B, 4, d))
    # d g / d f = 2 (f + r (1 - 2 f)), d g / d r = 2 f (1 - f)
    torch.mul(cfd2, torch.addcmul(f, r, 1 - 2 * f), out=K[:, :, 0])
    torch.mul(cfd2, _sd(r), out=K[:, :, 1])
    du = 1 - G if masks is None else (1 - G) * masks  # d c / d tanh(u~)
    torch.mul(du, 1 - U * U, out=K[:, :, 2])
    torch.mul(tc, _sd(o), out=K[:, :, 3])
    A = o * (1 - tc * tc)
    return K.view(T, B, 4 * d), A, G


class _LSTMLike(torch.autograd.Function):
    """(xp (T, B, 4d), h0, c0, W_hh (4d, d), masks or None) -> (Y (T, B, d), c_T, *saved); the saved tensors are
    returned only to be kept for the backward (not differentiable). Under ``torch.func.vmap`` over trial-pack
    members (:mod:`rnns.vmap_rules`) the ``vmap`` rule runs the member-batched loops (``_packed``)."""

    _forward = None
    _coefficients = None
    _packed = None

    @classmethod
    def forward(cls, xp, h0, c0, w_hh, masks):
        with _plain_interpreter():
            out = cls._forward(xp, h0, c0, w_hh, masks)
        H, C = out[0], out[1]
        return (H[1:], C[-1], *out)

    @staticmethod
    def setup_context(ctx, inputs, output):
        xp, h0, c0, w_hh, masks = inputs
        saved = output[2:]
        ctx.mark_non_differentiable(*saved)
        ctx.set_materialize_grads(False)  # no zero gradients are built for the saved buffers
        ctx.save_for_backward(w_hh, masks, *saved)

    @classmethod
    @torch.autograd.function.once_differentiable
    def backward(cls, ctx, dY, dcT, *_saved_grads):
        refuse_transformed_backward((dY, dcT), cls.__name__)
        w_hh, masks, *saved = ctx.saved_tensors
        K, A, Fc = cls._coefficients(*saved, masks)
        dY = torch.zeros_like(A) if dY is None else dY
        dcT = torch.zeros_like(A[0]) if dcT is None else dcT
        with _plain_interpreter():
            DA, dh0, dc0 = _lstm_backward_loop(dY.contiguous(), dcT, K, A, Fc, w_hh)
        return (*_finish(ctx, DA, dh0, dc0, saved[0]), None)

    @classmethod
    def vmap(cls, info, in_dims, xp, h0, c0, w_hh, masks):
        from .vmap_rules import members_first

        (xp, h0, c0, w_hh, masks), K = members_first(info, in_dims, (xp, h0, c0, w_hh, masks), cls.__name__)
        tm = (lambda t: None if t is None else t.transpose(0, 1).contiguous())  # (T, K, B, .): time first
        out = cls._packed.apply(tm(xp), h0.contiguous(), c0.contiguous(), w_hh.contiguous(), tm(masks))
        # Y (T, K, B, d) and the saved buffers carry the members in dim 1, c_T in dim 0
        return out, (1, 0) + (1,) * (len(out) - 2)


class _LSTMLikePacked(torch.autograd.Function):
    """K members at once: (xp (T, K, B, 4d), h0, c0 (K, B, d), W_hh (K, 4d, d), masks (T, K, B, d) or None)
    -> (Y (T, K, B, d), c_T (K, B, d), *saved). Gradients per member (summed over batch and time only)."""

    _forward = None
    _coefficients = None

    @classmethod
    def forward(cls, ctx, xp, h0, c0, w_hh, masks):
        with _plain_interpreter():
            out = cls._forward(xp, h0, c0, w_hh, masks)
        ctx.mark_non_differentiable(*out)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(w_hh, masks, *out)
        H, C = out[0], out[1]
        return (H[1:], C[-1], *out)

    @classmethod
    @torch.autograd.function.once_differentiable
    def backward(cls, ctx, dY, dcT, *_saved_grads):
        w_hh, masks, *saved = ctx.saved_tensors
        T, Km, B = saved[0].shape[0] - 1, saved[0].shape[1], saved[0].shape[2]
        coef = cls._coefficients(*[_flat_members(t) for t in saved], _flat_members(masks))
        Kc, A, Fc = (t.unflatten(1, (Km, B)) for t in coef)
        dY = torch.zeros_like(A) if dY is None else dY.contiguous()
        dcT = torch.zeros_like(A[0]) if dcT is None else dcT.contiguous()
        with _plain_interpreter():
            DA, dh0, dc0 = _lstm_backward_loop_packed(dY, dcT, Kc, A, Fc, w_hh)
        dw = _member_gemm(DA, saved[0][:-1]) if ctx.needs_input_grad[3] else None
        return DA, dh0, dc0, dw, None

    @staticmethod
    def vmap(info, in_dims, *args):
        raise RuntimeError("the member-batched LSTM loop runs below the trial pack's vmap (rnns.vmap_rules); it "
                           "cannot itself be vmapped (nested vmap is not supported)")


class LSTMFunctionPacked(_LSTMLikePacked):
    _forward = _lstm_forward_packed
    _coefficients = staticmethod(_lstm_coefficients)


class RefineFunctionPacked(_LSTMLikePacked):
    _forward = _refine_forward_packed
    _coefficients = staticmethod(_refine_coefficients)


class LSTMFunction(_LSTMLike):
    """Standard LSTM, gate order (i, f, g, o)."""

    _forward = _lstm_forward
    _coefficients = staticmethod(_lstm_coefficients)
    _packed = LSTMFunctionPacked


class RefineFunction(_LSTMLike):
    """UR/R-LSTM, gate order (f, r, u, o), xp with +-b_f added."""

    _forward = _refine_forward
    _coefficients = staticmethod(_refine_coefficients)
    _packed = RefineFunctionPacked


@torch.jit.script
def _gru_forward(xp: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor, masks: Optional[Tensor]):
    """nn.GRU's step, gate order (r, z, n); xp (T, B, 3d) holds W_ih x + b_ih. Returns H (T + 1, B, d) with h_0,
    the r and z sigmoids RZ (T, B, 2d), n (T, B, d) and the recurrent n pre-activation W_hn h + b_hn (T, B, d)."""
    T, B = xp.size(0), xp.size(1)
    d = h.size(1)
    w_t = w_hh.t()
    H = xp.new_empty((T + 1, B, d))
    RZ = xp.new_empty((T, B, 2 * d))
    N = xp.new_empty((T, B, d))
    HN = xp.new_empty((T, B, d))
    H[0] = h
    xs, Hs, RZs, Ns, HNs = xp.unbind(0), H.unbind(0), RZ.unbind(0), N.unbind(0), HN.unbind(0)
    ms = masks.unbind(0) if masks is not None else xs
    for t in range(T):
        hp = torch.addmm(b_hh, h, w_t)
        hr, hn = hp.split([2 * d, d], 1)
        xr, xn = xs[t].split([2 * d, d], 1)
        r, z = torch.sigmoid(xr + hr, out=RZs[t]).chunk(2, 1)
        HNs[t].copy_(hn)
        n = torch.tanh(torch.addcmul(xn, r, hn), out=Ns[t])
        if masks is not None:
            n = n * ms[t]
        h = torch.addcmul(n, z, h - n, out=Hs[t + 1])  # (1 - z) n + z h
    return H, RZ, N, HN


@torch.jit.script
def _gru_backward_loop(dY: Tensor, Z: Tensor, KH: Tensor, w_hh: Tensor):
    """dh_t = dY_t + z_{t+1} dh_{t+1} + dhp_{t+1} W_hh; dhp_t = dh_t KH_t (three slots). Returns dh (T, B, d) per
    step, dhp (T, B, 3d) and dh_0."""
    T = dY.size(0)
    DH = torch.empty_like(Z)
    DHP = torch.empty_like(KH)
    dYs, Zs, KHs, DHs, DHPs = dY.unbind(0), Z.unbind(0), KH.unbind(0), DH.unbind(0), DHP.unbind(0)
    dh = dYs[T - 1]
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            dh = torch.addmm(torch.addcmul(dYs[t], dh, Zs[t + 1]), DHPs[t + 1], w_hh)
        DHs[t].copy_(dh)
        torch.mul(KHs[t], torch.cat([dh, dh, dh], 1), out=DHPs[t])
    dh0 = torch.addmm(Zs[0] * dh, DHPs[0], w_hh)
    return DH, DHP, dh0


@torch.jit.script
def _gru_forward_packed(xp: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor, masks: Optional[Tensor]):
    """:func:`_gru_forward` for K trial-pack members at once: xp (T, K, B, 3d), h (K, B, d), w_hh (K, 3d, d),
    b_hh (K, 1, 3d), masks (T, K, B, d) or None; every buffer (T, K, B, .). One baddbmm per step."""
    T, K, B = xp.size(0), xp.size(1), xp.size(2)
    d = h.size(2)
    w_t = w_hh.transpose(1, 2)
    H = xp.new_empty((T + 1, K, B, d))
    RZ = xp.new_empty((T, K, B, 2 * d))
    N = xp.new_empty((T, K, B, d))
    HN = xp.new_empty((T, K, B, d))
    H[0] = h
    xs, Hs, RZs, Ns, HNs = xp.unbind(0), H.unbind(0), RZ.unbind(0), N.unbind(0), HN.unbind(0)
    ms = masks.unbind(0) if masks is not None else xs
    for t in range(T):
        hp = torch.baddbmm(b_hh, h, w_t)
        hr, hn = hp.split([2 * d, d], 2)
        xr, xn = xs[t].split([2 * d, d], 2)
        r, z = torch.sigmoid(xr + hr, out=RZs[t]).chunk(2, 2)
        HNs[t].copy_(hn)
        n = torch.tanh(torch.addcmul(xn, r, hn), out=Ns[t])
        if masks is not None:
            n = n * ms[t]
        h = torch.addcmul(n, z, h - n, out=Hs[t + 1])
    return H, RZ, N, HN


@torch.jit.script
def _gru_backward_loop_packed(dY: Tensor, Z: Tensor, KH: Tensor, w_hh: Tensor):
    """:func:`_gru_backward_loop` for K members: dY, Z (T, K, B, d), KH (T, K, B, 3d), w_hh (K, 3d, d)."""
    T = dY.size(0)
    DH = torch.empty_like(Z)
    DHP = torch.empty_like(KH)
    dYs, Zs, KHs, DHs, DHPs = dY.unbind(0), Z.unbind(0), KH.unbind(0), DH.unbind(0), DHP.unbind(0)
    dh = dYs[T - 1]
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            dh = torch.baddbmm(torch.addcmul(dYs[t], dh, Zs[t + 1]), DHPs[t + 1], w_hh)
        DHs[t].copy_(dh)
        torch.mul(KHs[t], torch.cat([dh, dh, dh], 2), out=DHPs[t])
    dh0 = torch.baddbmm(Zs[0] * dh, DHPs[0], w_hh)
    return DH, DHP, dh0


def _gru_coefficients(H, RZ, N, HN, masks):
    """z (T, B, d), d h / d n~ (T, B, d) and KH (T, B, 3d) = d h / d (W_hh h + b_hh) in slots r, z, n, for every
    step at once (the members of a pack may be folded into B)."""
    T, B, d = N.shape
    r, z = RZ[..., :d], RZ[..., d:]
    nm = N if masks is None else N * masks
    kn = (1 - z).mul_(1 - N * N)  # d h / d n~
    if masks is not None:
        kn.mul_(masks)
    KH = RZ.new_empty((T, B, 3, d))
    torch.mul(kn * HN, _sd(r), out=KH[:, :, 0])
    torch.mul(H[:-1] - nm, _sd(z), out=KH[:, :, 1])
    torch.mul(kn, r, out=KH[:, :, 2])
    return z, kn, KH.view(T, B, 3 * d)


class GRUFunction(torch.autograd.Function):
    """(xp (T, B, 3d), h0, W_hh (3d, d), b_hh (3d,), masks or None) -> (Y (T, B, d), *saved); nn.GRU's layout
    (r, z, n). The saved tensors are returned only to be kept for the backward (not differentiable). Under
    ``torch.func.vmap`` over trial-pack members (:mod:`rnns.vmap_rules`) the ``vmap`` rule runs
    :class:`GRUFunctionPacked`."""

    @staticmethod
    def forward(xp, h0, w_hh, b_hh, masks):
        with _plain_interpreter():
            out = _gru_forward(xp, h0, w_hh, b_hh, masks)
        return (out[0][1:], *out)

    @staticmethod
    def setup_context(ctx, inputs, output):
        xp, h0, w_hh, b_hh, masks = inputs
        ctx.mark_non_differentiable(*output[1:])
        ctx.set_materialize_grads(False)  # no zero gradients are built for the saved buffers
        ctx.save_for_backward(w_hh, masks, *output[1:])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dY, *_saved_grads):
        refuse_transformed_backward((dY,), "GRUFunction")
        w_hh, masks, H, RZ, N, HN = ctx.saved_tensors
        T, B, d = N.shape
        z, kn, KH = _gru_coefficients(H, RZ, N, HN, masks)
        dY = torch.zeros_like(N) if dY is None else dY
        with _plain_interpreter():
            DH, DHP, dh0 = _gru_backward_loop(dY.contiguous(), z.contiguous(), KH, w_hh)
        # d xp = d hp on the r and z slots; on the n slot d n~ = dh kn (d hp_n carries the extra factor r)
        dxp = torch.cat([DHP[..., :2 * d], DH * kn], -1)
        dw = db = None
        if ctx.needs_input_grad[2]:
            dw = torch.mm(DHP.reshape(T * B, 3 * d).t(), H[:-1].reshape(T * B, d))
        if ctx.needs_input_grad[3]:
            db = DHP.sum((0, 1))
        return dxp, dh0, dw, db, None

    @staticmethod
    def vmap(info, in_dims, xp, h0, w_hh, b_hh, masks):
        from .vmap_rules import members_first

        (xp, h0, w_hh, b_hh, masks), K = members_first(info, in_dims, (xp, h0, w_hh, b_hh, masks), "GRUFunction")
        tm = (lambda t: None if t is None else t.transpose(0, 1).contiguous())
        out = GRUFunctionPacked.apply(tm(xp), h0.contiguous(), w_hh.contiguous(), b_hh, tm(masks))
        return out, (1,) * len(out)


class GRUFunctionPacked(torch.autograd.Function):
    """K members at once: (xp (T, K, B, 3d), h0 (K, B, d), W_hh (K, 3d, d), b_hh (K, 3d), masks (T, K, B, d) or
    None) -> (Y (T, K, B, d), *saved). Gradients per member (summed over batch and time only)."""

    @staticmethod
    def forward(ctx, xp, h0, w_hh, b_hh, masks):
        with _plain_interpreter():
            out = _gru_forward_packed(xp, h0, w_hh, b_hh.unsqueeze(1).contiguous(), masks)
        ctx.mark_non_differentiable(*out)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(w_hh, masks, *out)
        return (out[0][1:], *out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dY, *_saved_grads):
        w_hh, masks, H, RZ, N, HN = ctx.saved_tensors
        T, Km, B, d = N.shape
        z, kn, KH = (t.unflatten(1, (Km, B)) for t in
                     _gru_coefficients(*[_flat_members(t) for t in (H, RZ, N, HN, masks)]))
        dY = torch.zeros_like(N) if dY is None else dY
        with _plain_interpreter():
            DH, DHP, dh0 = _gru_backward_loop_packed(dY.contiguous(), z.contiguous(), KH, w_hh)
        dxp = torch.cat([DHP[..., :2 * d], DH * kn], -1)
        dw = _member_gemm(DHP, H[:-1]) if ctx.needs_input_grad[2] else None
        db = DHP.sum((0, 2)) if ctx.needs_input_grad[3] else None
        return dxp, dh0, dw, db, None

    @staticmethod
    def vmap(info, in_dims, *args):
        raise RuntimeError("the member-batched GRU loop runs below the trial pack's vmap (rnns.vmap_rules); it "
                           "cannot itself be vmapped (nested vmap is not supported)")


@torch.jit.script
def _rru_loop(xp: Tensor, h: Tensor, w_h: Tensor, Js: List[Tensor], bs: List[Tensor], w_c: Tensor, b_c: Tensor,
              keep: Tensor, zeta: Tensor, masks: Optional[Tensor], eps: float):
    """RRU recurrence under autograd (TorchScript removes the Python cost per op; autograd's C++ engine runs the
    backward). xp (T, B, M) = J_1's x half + bias. Only the state part c of W a enters the loop; the outputs o are
    one GEMM over all steps afterwards. Returns the dropped last ReLU layer of every step (T, B, M) and h_T."""
    T, M = xp.size(0), xp.size(2)
    xs = xp.unbind(0)
    ms = masks.unbind(0) if masks is not None else xs
    w_ct = w_c.t()
    As: List[Tensor] = []
    for t in range(T):
        a = torch.relu(torch.rms_norm(torch.addmm(xs[t], h, w_h), [M], None, eps))
        for k in range(len(Js)):
            a = torch.relu(torch.addmm(bs[k], a, Js[k].t()))
        if masks is not None:
            a = a * ms[t]
        h = torch.addcmul(keep * h, zeta, torch.addmm(b_c, a, w_ct))
        As.append(a)
    return torch.stack(As, 0), h


@torch.jit.script
def _mogrifier_loop(x: Tensor, h: Tensor, c: Tensor, rights: List[Tensor], lefts: List[Tensor], mbias: List[Tensor],
                    w_ih: Tensor, w_hh: Tensor, bias: Tensor, masks: Optional[Tensor], cap: bool):
    """Mogrifier LSTM under autograd (TorchScript removes the Python cost per op; autograd's C++ engine runs the
    backward). x (T, B, D). Round k uses v -> v right_k^T (then left_k^T when ``lefts`` is not empty) + mbias_k.
    Returns every h (T, B, d), h_T and c_T."""
    T = x.size(0)
    xs = x.unbind(0)
    ms = masks.unbind(0) if masks is not None else xs
    low_rank = len(lefts) > 0
    rt = [w.t() for w in rights]
    lt = [w.t() for w in lefts]
    wih_t, whh_t = w_ih.t(), w_hh.t()
    Hs: List[Tensor] = []
    for t in range(T):
        xt, hm = xs[t], h
        for k in range(len(rt)):
            src = hm if k % 2 == 0 else xt
            if low_rank:
                z = torch.addmm(mbias[k], torch.mm(src, rt[k]), lt[k])
            else:
                z = torch.addmm(mbias[k], src, rt[k])
            if k % 2 == 0:
                xt = 2 * torch.sigmoid(z) * xt
            else:
                hm = 2 * torch.sigmoid(z) * hm
        i, f, g, o = torch.addmm(torch.addmm(bias, xt, wih_t), hm, whh_t).chunk(4, 1)
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        j = torch.tanh(g)
        if masks is not None:
            j = j * ms[t]
        if cap:
            i = torch.minimum(1 - f, i)
        c = torch.addcmul(f * c, i, j)
        h = o * torch.tanh(c)
        Hs.append(h)
    return torch.stack(Hs, 0), h, c


@torch.jit.script
def _rru1_forward(xp: Tensor, h: Tensor, w1h: Tensor, w_c: Tensor, b_c: Tensor, keep: Tensor, zeta: Tensor,
                  masks: Optional[Tensor], eps: float):
    """RRU with one ReLU layer. xp (T, B, M) = J_1's x half + bias, w1h (M, N) = J_1's h half, w_c (N, M), b_c (N,).
    Per step: v = xp_t + h w1h^T, r = (mean(v^2) + eps)^-1/2, n = v r, a = ReLU(n) m_t, c = a w_c^T + b_c,
    h = keep h + zeta c. Returns H (T + 1, B, N) with h_0, A (T, B, M), n (T, B, M), r (T, B, 1), c (T, B, N)."""
    T, B, M = xp.size(0), xp.size(1), xp.size(2)
    N = h.size(1)
    H = xp.new_empty((T + 1, B, N))
    A = torch.empty_like(xp)
    Nn = torch.empty_like(xp)
    R = xp.new_empty((T, B, 1))
    C = xp.new_empty((T, B, N))
    H[0] = h
    xs, Hs, As, Ns, Rs, Cs = xp.unbind(0), H.unbind(0), A.unbind(0), Nn.unbind(0), R.unbind(0), C.unbind(0)
    ms = masks.unbind(0) if masks is not None else xs
    w1h_t, w_ct = w1h.t(), w_c.t()
    for t in range(T):
        v = torch.addmm(xs[t], h, w1h_t)
        r = torch.rsqrt(torch.mean(v * v, -1, keepdim=True) + eps, out=Rs[t])
        n = torch.mul(v, r, out=Ns[t])
        if masks is not None:
            a = torch.mul(torch.relu(n), ms[t], out=As[t])
        else:
            a = torch.clamp_min(n, 0.0, out=As[t])
        c = torch.addmm(b_c, a, w_ct, out=Cs[t])
        h = torch.addcmul(keep * h, zeta, c, out=Hs[t + 1])
    return H, A, Nn, R, C


@torch.jit.script
def _rru1_backward_loop(dA: Tensor, dhT: Tensor, G: Tensor, Nn: Tensor, R: Tensor, w1h: Tensor, w_c: Tensor,
                        keep: Tensor, zeta: Tensor):
    """Reverse loop of :func:`_rru1_forward`. dA (T, B, M): gradient reaching a_t from the outputs; G = d a / d n
    (mask times ReLU'). Per step: dc = zeta dh, da = dA_t + dc w_c, dn = da G_t, dv = r (dn - n mean(dn n)),
    dh_{t-1} = keep dh + dv w1h. Returns dv (T, B, M), dh (T, B, N) per step and dh_0."""
    T, B, N = dA.size(0), dA.size(1), dhT.size(1)
    DV = torch.empty_like(dA)
    DH = dA.new_empty((T, B, N))
    dAs, Gs, Ns, Rs, DVs, DHs = dA.unbind(0), G.unbind(0), Nn.unbind(0), R.unbind(0), DV.unbind(0), DH.unbind(0)
    dh = dhT
    for t in range(T - 1, -1, -1):
        DHs[t].copy_(dh)
        dn = torch.addmm(dAs[t], zeta * dh, w_c).mul_(Gs[t])
        n = Ns[t]
        dv = torch.mul(torch.addcmul(dn, n, torch.mean(dn * n, -1, keepdim=True), value=-1.0), Rs[t], out=DVs[t])
        dh = torch.addmm(keep * dh, dv, w1h)
    return DV, DH, dh


class RRU1Function(torch.autograd.Function):
    """(xp (T, B, M), h0, w1h (M, N), w_c (N, M), b_c, keep, zeta, masks or None) -> (A (T, B, M), h_T)."""

    @staticmethod
    def forward(ctx, xp, h0, w1h, w_c, b_c, keep, zeta, masks, eps):
        with _plain_interpreter():
            H, A, Nn, R, C = _rru1_forward(xp, h0, w1h, w_c, b_c, keep, zeta, masks, eps)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(w1h, w_c, keep, zeta, masks, H, A, Nn, R, C)
        return A, H[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dA, dhT):
        w1h, w_c, keep, zeta, masks, H, A, Nn, R, C = ctx.saved_tensors
        T, B, M = A.shape
        N = H.shape[2]
        dA = torch.zeros_like(A) if dA is None else dA
        dhT = torch.zeros_like(H[0]) if dhT is None else dhT
        G = (Nn > 0).to(A.dtype)  # d a / d n
        if masks is not None:
            G.mul_(masks)
        with _plain_interpreter():
            DV, DH, dh0 = _rru1_backward_loop(dA, dhT, G, Nn, R, w1h, w_c, keep, zeta)
        hprev = H[:-1].reshape(T * B, N)
        DC = DH * zeta  # d loss / d c_t
        dw1h = torch.mm(DV.reshape(T * B, M).t(), hprev)
        dwc = torch.mm(DC.reshape(T * B, N).t(), A.reshape(T * B, M))
        dbc = DC.sum((0, 1))
        dkeep = (DH.reshape(T * B, N) * hprev).sum(0)
        dzeta = (DH * C).sum((0, 1))
        return DV, dh0, dw1h, dwc, dbc, dkeep, dzeta, None, None


# ----------------------------------------------------------------------------------------------- entry points

# outside functorch transforms the old-style twins run (no per-call argument binding; rnns.vmap_rules.plain_twin)
_LSTMFunctionPlain = plain_twin(LSTMFunction)
_RefineFunctionPlain = plain_twin(RefineFunction)
_GRUFunctionPlain = plain_twin(GRUFunction)


def lstm_fast(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,
              masks: Tensor | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Standard LSTM (gate order i, f, g, o), x (B, T, D) batch first; bias = b_ih + b_hh. -> (y (B, T, d), (h, c))."""
    xp = torch.nn.functional.linear(x.transpose(0, 1), w_ih, bias)  # (T, B, 4d), one GEMM for every step
    Y, cT = _apply(LSTMFunction, _LSTMFunctionPlain, xp, h0, c0, w_hh, masks)[:2]
    return Y.transpose(0, 1), (Y[-1], cT)


def refine_fast(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, b_f: Tensor,
                masks: Tensor | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """UR/R-LSTM (gate order f, r, u, o), x (B, T, D). -> (y (B, T, d), (h, c))."""
    shift = torch.cat([b_f, -b_f, b_f.new_zeros(2 * b_f.shape[0])])
    xp = torch.nn.functional.linear(x.transpose(0, 1), w_ih, bias + shift)
    Y, cT = _apply(RefineFunction, _RefineFunctionPlain, xp, h0, c0, w_hh, masks)[:2]
    return Y.transpose(0, 1), (Y[-1], cT)


def gru_fast(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
             masks: Tensor | None) -> tuple[Tensor, Tensor]:
    """nn.GRU's cell (r, z, n), x (B, T, D). -> (y (B, T, d), h)."""
    xp = torch.nn.functional.linear(x.transpose(0, 1), w_ih, b_ih)
    Y = _apply(GRUFunction, _GRUFunctionPlain, xp, h0, w_hh, b_hh, masks)[0]
    return Y.transpose(0, 1), Y[-1]


def rru_fast(x: Tensor, h0: Tensor, w_x: Tensor, w_h: Tensor, b1: Tensor, Js: list, bs: list, w: Tensor, b: Tensor,
             keep: Tensor, zeta: Tensor, masks: Tensor | None, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """RRU (rnns/rru.py), x (B, T, D); w_x (M, D), w_h (N, M) = J_1's halves (w_h transposed), W (N + O, M).
    -> (o (B, T, O), h_T)."""
    N = h0.shape[1]
    xp = torch.nn.functional.linear(x.transpose(0, 1), w_x, b1)  # (T, B, M), one GEMM for every step
    if not Js:  # one ReLU layer: the hand-written backward through time
        A, hT = RRU1Function.apply(xp, h0, w_h.t(), w[:N], b[:N], keep, zeta, masks, eps)
        o = torch.nn.functional.linear(A, w[N:], b[N:])
        return o.transpose(0, 1), hT
    with _plain_interpreter():
        A, hT = _rru_loop(xp, h0, w_h, Js, bs, w[:N], b[:N], keep, zeta, masks, eps)
    o = torch.nn.functional.linear(A, w[N:], b[N:])  # (T, B, O): the outputs never feed back
    return o.transpose(0, 1), hT


def mogrifier_fast(cell, x: Tensor, h0: Tensor, c0: Tensor, masks: Tensor | None) -> tuple[Tensor, tuple]:
    """rnns/mogrifier.py's cell, x (B, T, D) -> (y (B, T, d), (h, c))."""
    mix = list(cell.mix)
    if cell.rank:
        rights, lefts = [m.right for m in mix], [m.left for m in mix]
    else:
        rights, lefts = [m.weight for m in mix], []
    mbias = [m.bias if m.bias is not None else m_w.new_zeros(m_w.shape[0])
             for m, m_w in zip(mix, lefts if cell.rank else rights)]
    with _plain_interpreter():
        Y, h, c = _mogrifier_loop(x.transpose(0, 1), h0, c0, rights, lefts, mbias, cell.weight_ih, cell.weight_hh,
                                  cell.bias, masks, cell.cap_input_gate)
    return Y.transpose(0, 1), (h, c)
