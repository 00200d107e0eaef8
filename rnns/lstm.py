"""LSTM family: baseline LSTM (constant or chrono forget bias), U-LSTM, R-LSTM and UR-LSTM.

Gu, Gulcehre, Paine, Hoffman, Pascanu, "Improving the Gating Mechanism of Recurrent Neural Networks",
ICML 2020, arXiv 1910.09890 (PAPERS.md section 3). Chrono init: Tallec & Ollivier, "Can recurrent neural
networks warp time?", ICLR 2018, arXiv 1804.11188.

Standard LSTM (PyTorch gate order i, f, g, o):

    [i~, f~, g~, o~] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    c_t = sigma(f~) c_{t-1} + sigma(i~) tanh(g~)          h_t = sigma(o~) tanh(c_t)

Refine-gated LSTM (UR / R; gate order f, r, u, o as in the paper's pseudo-code):

    [f~, r~, u~, o~] = W_x x_t + b + W_h h_{t-1}
    f = sigma(f~ + b_f)    r = sigma(r~ - b_f)    u = tanh(u~)    o = sigma(o~)
    g = 2 r f + (1 - 2 r) f^2                 (= r (1 - (1 - f)^2) + (1 - r) f^2)
    c_t = g c_{t-1} + (1 - g) u               h_t = o tanh(c_t)

The shared vector b_f enters the forget gate with + and the refine gate with -, so "refine bias = -b_f" holds
by construction at all times, not only at init.

Dropout (``dropout`` > 0, training mode only): recurrent dropout without memory loss (Semeniuta et al. 2016,
arXiv 1603.05118), as the RRU paper's code applies it inside its LSTM: the candidate is dropped before it enters the
cell, c_t = sigma(f~) c_{t-1} + sigma(i~) Dropout(tanh(g~)) (refine-gated: c_t = g c_{t-1} + (1 - g) Dropout(u)),
with a fresh mask per step. A model stacking these cells puts no other dropout between them.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import Cell, in_pack, use_reference
from .errors import ConfigError
from .gated_fast import candidate_masks, lstm_fast, refine_fast
from .registry import register_cell

_UR_PAPER = "Gu et al. 2020, Improving the Gating Mechanism of RNNs, arXiv 1910.09890"


# ----------------------------------------------------------------------------------------------- pure maths


def ugi_forget_bias(d: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform gate initialisation: b_f = sigma^-1(U), U ~ Uniform[1/d, 1 - 1/d] i.i.d. per unit. (d,)"""
    if d < 2:
        # [1/d, 1 - 1/d] is empty for d = 1; fall back to U = 1/2 (b_f = 0), the interval's only sensible point
        return torch.zeros(d)
    u = torch.rand(d, generator=generator, dtype=torch.float64) * (1 - 2 / d) + 1 / d
    return torch.logit(u).float()  # logit(u) = -ln(1/u - 1)


def chrono_forget_bias(d: int, t_max: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Chrono init: b_f = ln U, U ~ Uniform[1, T_max - 1] (the input-gate bias is then -b_f). (d,)"""
    u = 1 + torch.rand(d, generator=generator, dtype=torch.float64) * (t_max - 2)
    return torch.log(u).float()


def _check_dropout(dropout: float) -> float:
    if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    return float(dropout)


def lstm_step(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
              b_ih: torch.Tensor, b_hh: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One standard LSTM step in ``nn.LSTM``'s layout: the slow reference of the fused path.

    x (B, D), h and c (B, d), w_ih (4d, D), w_hh (4d, d), b_ih and b_hh (4d,); gate order (i, f, g, o).
    ``mask`` (B, d) multiplies the candidate tanh(g) (recurrent dropout without memory loss).
    """
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)
    g = torch.tanh(g) if mask is None else torch.tanh(g) * mask
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * g
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def refine_step(pre: torch.Tensor, c: torch.Tensor, b_f: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One UR/R-LSTM step from the summed pre-activations ``pre`` (B, 4d) in order (f, r, u, o); c (B, d).

    ``mask`` (B, d) multiplies the candidate u (recurrent dropout without memory loss)."""
    f_, r_, u_, o_ = pre.chunk(4, dim=-1)
    f = torch.sigmoid(f_ + b_f)
    r = torch.sigmoid(r_ - b_f)
    # tanh exactly once on the candidate (r0mainK applied it twice before commit 0fdd2e4)
    u = torch.tanh(u_) if mask is None else torch.tanh(u_) * mask
    o = torch.sigmoid(o_)
    g = 2 * r * f + (1 - 2 * r) * f * f
    c = g * c + (1 - g) * u
    return o * torch.tanh(c), c


# ----------------------------------------------------------------------------------------------- fused LSTMs


class _FusedLSTM(Cell):
    """Standard LSTM on the fused ``nn.LSTM`` kernel (cuDNN on GPU); subclasses set the gate biases."""

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0):
        super().__init__(input_size, hidden_size)
        self.dropout = _check_dropout(dropout)
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)

    def _set_gate_bias(self, gate: int, value: torch.Tensor | float) -> None:
        """Put ``value`` in gate ``gate`` (0 i, 1 f, 2 g, 3 o): nn.LSTM sums two biases, so zero the other."""
        H = self.hidden_size
        with torch.no_grad():
            self.lstm.bias_ih_l0[gate * H:(gate + 1) * H].copy_(torch.as_tensor(value).expand(H))
            self.lstm.bias_hh_l0[gate * H:(gate + 1) * H].zero_()

    def forward(self, x, h0=None):
        dropping = self.training and self.dropout > 0
        # the fused kernel has no candidate dropout, and vmap has no batching rule for aten::lstm: inside a trial
        # pack (rnns.base.packed) the explicit-BPTT loop runs instead, member-batched by its vmap rule
        if dropping or in_pack():
            if use_reference(vmap_ok=True):
                return self.step_reference(x, h0)
            B, T, _ = x.shape
            h, c = (x.new_zeros(B, self.hidden_size),) * 2 if h0 is None else h0
            masks = candidate_masks(self.dropout, T, B, self.hidden_size, x) if dropping else None
            m = self.lstm
            return lstm_fast(x, h, c, m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0 + m.bias_hh_l0, masks)
        if h0 is not None:
            h0 = (h0[0].unsqueeze(0), h0[1].unsqueeze(0))  # nn.LSTM wants (num_layers, B, d)
        y, (h, c) = self.lstm(x, h0)
        return y, (h[0], c[0])

    def step_reference(self, x: torch.Tensor, h0=None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The same forward through :func:`lstm_step` in a Python loop (candidate dropout in training mode)."""
        B, T, _ = x.shape
        h, c = (x.new_zeros(B, self.hidden_size),) * 2 if h0 is None else h0
        m = self.lstm
        masks = candidate_masks(self.dropout, T, B, self.hidden_size, x) if self.training else None
        ms = [None] * T if masks is None else masks.unbind(0)
        ys = []
        for xt, mk in zip(x.unbind(1), ms):
            h, c = lstm_step(xt, h, c, m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0, mk)
            ys.append(h)
        return torch.stack(ys, dim=1), (h, c)


@register_cell("lstm", paper="LSTM baseline (Hochreiter & Schmidhuber 1997); chrono init arXiv 1804.11188")
class LSTM(_FusedLSTM):
    """Standard LSTM via ``nn.LSTM``; forget-gate bias ``forget_bias``, or chrono init when ``chrono`` = T_max > 0.

    With ``chrono`` set, b_f ~ ln U[1, T_max - 1] and b_i = -b_f, and ``forget_bias`` is not used.
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0, chrono: float = 0,
                 dropout: float = 0.0):
        super().__init__(input_size, hidden_size, dropout)
        if not math.isfinite(forget_bias):
            raise ConfigError(f"forget_bias must be finite, got {forget_bias}")
        if chrono != 0 and not (math.isfinite(chrono) and chrono >= 2):
            raise ConfigError(f"chrono is T_max (>= 2, the longest dependency in steps) or 0 for off, got {chrono}")
        self.forget_bias = float(forget_bias)
        self.chrono = float(chrono)
        if chrono:
            b_f = chrono_forget_bias(hidden_size, chrono)
            self._set_gate_bias(1, b_f)
            self._set_gate_bias(0, -b_f)
        else:
            self._set_gate_bias(1, forget_bias)


@register_cell("u_lstm", paper=_UR_PAPER)
class ULSTM(_FusedLSTM):
    """U-LSTM: standard LSTM whose forget-gate bias gets uniform gate initialisation (UGI).

    Only the init differs from a standard LSTM, so the fused kernel computes it exactly.
    """

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, dropout)
        self._set_gate_bias(1, ugi_forget_bias(hidden_size))


# ----------------------------------------------------------------------------------------------- refine gate


class _RefineLSTM(Cell):
    """Refine-gated LSTM (UR / R share everything but the bias init). Parameters:

    weight_ih (4d, D), bias (4d,), weight_hh (4d, d), b_f (d,); gate order (f, r, u, o).
    One input bias only: a second (hidden) bias would add to the same sum and change nothing but the count.
    """

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0):
        super().__init__(input_size, hidden_size)
        self.dropout = _check_dropout(dropout)
        d = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * d, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * d, d))
        self.bias = nn.Parameter(torch.empty(4 * d))
        self.b_f = nn.Parameter(torch.zeros(d))
        # PyTorch-LSTM-like U(-1/sqrt(d), 1/sqrt(d)) for weights and biases, as in r0mainK; subclasses set biases
        bound = 1 / math.sqrt(d)
        for p in (self.weight_ih, self.weight_hh, self.bias):
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x, h0=None):
        B, T, _ = x.shape
        h, c = (x.new_zeros(B, self.hidden_size),) * 2 if h0 is None else h0
        masks = candidate_masks(self.dropout, T, B, self.hidden_size, x) if self.training else None
        if not use_reference(vmap_ok=True):  # vmap-capable (rnns.vmap_rules): stays fast inside a trial pack
            return refine_fast(x, h, c, self.weight_ih, self.weight_hh, self.bias, self.b_f, masks)
        xp = F.linear(x, self.weight_ih, self.bias)  # (B, T, 4d): every input projection in one matmul
        ms = [None] * T if masks is None else masks.unbind(0)
        ys = []
        # split time once: indexing xp[:, t] in the loop makes every step's backward fill a whole (B, T, 4d) gradient
        for xt, mk in zip(xp.unbind(1), ms):
            h, c = refine_step(torch.addmm(xt, h, self.weight_hh.t()), c, self.b_f, mk)
            ys.append(h)
        return torch.stack(ys, dim=1), (h, c)


@register_cell("ur_lstm", paper=_UR_PAPER)
class URLSTM(_RefineLSTM):
    """UR-LSTM: refine gate + UGI; b_f ~ sigma^-1(U[1/d, 1 - 1/d]), refine bias -b_f."""

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, dropout)
        d = hidden_size
        with torch.no_grad():
            self.b_f.copy_(ugi_forget_bias(d))
            # b_f is then the whole forget/refine bias, so the gates start exactly at UGI (see deviations doc)
            self.bias[:2 * d].zero_()


@register_cell("r_lstm", paper=_UR_PAPER)
class RLSTM(_RefineLSTM):
    """R-LSTM: refine gate with standard init; b_f = 0 and the forget slice of the bias = ``forget_bias``."""

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, dropout)
        if not math.isfinite(forget_bias):
            raise ConfigError(f"forget_bias must be finite, got {forget_bias}")
        self.forget_bias = float(forget_bias)
        with torch.no_grad():
            self.bias[:hidden_size].fill_(forget_bias)
