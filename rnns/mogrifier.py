"""Mogrifier LSTM: an LSTM whose input and previous state gate each other for a few rounds before the step.

Melis, Kocisky, Blunsom, "Mogrifier LSTM", ICLR 2020, arXiv 1909.01792. Reference code: google-deepmind/lamb
``lamb/tiled_lstm.py`` (the copy the RRU repo benchmarks, ``cells/MogrifierLSTMCell.py``). A baseline of the RRU
paper (arXiv 2108.00527), whose search tuned rank in U(40, 90) and rounds in {5, 6} (PAPERS.md section 4.4).

For rounds i = 1..r, with x^{-1} = x_t and h^0 = h_{t-1}:

    odd i:   x^i = 2 sigma(Q^i h^{i-1} + b^i) * x^{i-2}          Q^i (D, d), b^i (D,)
    even i:  h^i = 2 sigma(R^i x^{i-1} + b^i) * h^{i-2}          R^i (d, D), b^i (d,)

then an LSTM step on the last x and h (gate order i, f, g, o in this project's layout):

    i, f, g, o = sigma, sigma, tanh, sigma of  W_ih x + W_hh h + b
    j = Dropout(g)                                  (recurrent dropout without memory loss, fresh mask per step)
    c_t = f c_{t-1} + min(1 - f, i) j               (cap_input_gate, every official config; else i j)
    h_t = o tanh(c_t)

The factor 2 keeps the gates' mean at 1 around zero pre-activations, so r = 0 recovers the plain LSTM. With rank
k > 0 each matrix is a product Q = Q_left Q_right, Q_left (D, k), Q_right (k, d) (the paper's low-rank variant).

Initialisation ``init="lamb"`` (the reference's): LSTM weight tiles truncated normal (at 2 sd) with variance
1/fan_in per tile (fan_in D for W_ih, d for W_hh), zero LSTM biases; full-rank Q, R Glorot-uniform; low-rank
factors truncated normal with std (1 / (fan_in k))^(1/4); mogrifier biases zero. ``init="pytorch"`` is this
project's earlier init (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) everywhere, as ``nn.LSTM``).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import Cell, use_reference
from .errors import ConfigError
from .gated_fast import candidate_masks, mogrifier_fast
from .registry import register_cell

INITS = ("lamb", "pytorch")


def _trunc_normal_(t: torch.Tensor, std: float) -> torch.Tensor:
    """TF ``truncated_normal(stddev=std)``: normal re-drawn outside +-2 std (no rescaling)."""
    return nn.init.trunc_normal_(t, mean=0.0, std=std, a=-2 * std, b=2 * std)


class _Mix(nn.Module):
    """v (B, n_in) -> M v + b (B, n_out), with M full (n_out, n_in) or left (n_out, k) @ right (k, n_in)."""

    def __init__(self, n_in: int, n_out: int, rank: int, init: str, bias: bool):
        super().__init__()
        if rank:
            self.right = nn.Parameter(torch.empty(rank, n_in))
            self.left = nn.Parameter(torch.empty(n_out, rank))
            if init == "lamb":  # each entry of left @ right sums k products: variance 1 / n_in overall
                std = (1.0 / (n_in * rank)) ** 0.25
                _trunc_normal_(self.right, std)
                _trunc_normal_(self.left, std)
            else:
                nn.init.uniform_(self.right, -1 / math.sqrt(n_in), 1 / math.sqrt(n_in))
                nn.init.uniform_(self.left, -1 / math.sqrt(rank), 1 / math.sqrt(rank))
        else:
            self.weight = nn.Parameter(torch.empty(n_out, n_in))
            if init == "lamb":
                nn.init.xavier_uniform_(self.weight)  # tf.get_variable's default (glorot_uniform)
            else:
                nn.init.uniform_(self.weight, -1 / math.sqrt(n_in), 1 / math.sqrt(n_in))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None
        self.rank = rank

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        # low rank: two thin matmuls, never the (n_out, n_in) product
        if self.rank:
            return F.linear(F.linear(v, self.right), self.left, self.bias)
        return F.linear(v, self.weight, self.bias)


def mogrify(x: torch.Tensor, h: torch.Tensor, mixes: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the rounds: ``mixes[i-1]`` is Q^i (h -> x width) for odd i, R^i (x -> h width) for even i."""
    for i, mix in enumerate(mixes, start=1):
        if i % 2:
            x = 2 * torch.sigmoid(mix(h)) * x
        else:
            h = 2 * torch.sigmoid(mix(x)) * h
    return x, h


def mogrifier_lstm_step(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_ih: torch.Tensor,
                        w_hh: torch.Tensor, bias: torch.Tensor, *, cap_input_gate: bool = True,
                        mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSTM step after the rounds: gate order (i, f, g, o); ``mask`` drops the candidate j = tanh(g)."""
    i, f, g, o = (F.linear(x, w_ih, bias) + F.linear(h, w_hh)).chunk(4, dim=-1)
    i, f, j, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    if mask is not None:
        j = j * mask
    if cap_input_gate:
        i = torch.minimum(1 - f, i)
    c = f * c + i * j
    return o * torch.tanh(c), c


@register_cell("mogrifier_lstm", paper="Melis et al. 2020, Mogrifier LSTM, arXiv 1909.01792")
class MogrifierLSTM(Cell):
    """Mogrifier LSTM: ``rounds`` mutual gating rounds, Q/R full rank (``rank`` 0) or of rank ``rank``.

    ``cap_input_gate`` (default, as every official config): c = f c + min(1 - f, i) j. ``gate_bias``: a trainable,
    zero-initialised bias on every mogrifier gate (the reference has one). ``dropout``: on the candidate j, a fresh
    mask per step, training mode only. ``init``: "lamb" (the reference's) or "pytorch" (this project's earlier init).
    ``cap_input_gate=False, gate_bias=False, init="pytorch"`` is the cell as it was before issue 12.
    """

    def __init__(self, input_size: int, hidden_size: int, rank: int = 0, rounds: int = 5, dropout: float = 0.0,
                 cap_input_gate: bool = True, gate_bias: bool = True, init: str = "lamb"):
        super().__init__(input_size, hidden_size)
        if int(rank) != rank or rank < 0:
            raise ConfigError(f"rank must be an integer >= 0 (0 = full-rank Q and R), got {rank}")
        if int(rounds) != rounds or rounds < 0:
            raise ConfigError(f"rounds must be an integer >= 0, got {rounds}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        if init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        self.rank, self.rounds, self.dropout = int(rank), int(rounds), float(dropout)
        self.cap_input_gate, self.init = bool(cap_input_gate), init
        D, d = input_size, hidden_size
        self.mix = nn.ModuleList(_Mix(d, D, self.rank, init, gate_bias) if i % 2 else
                                 _Mix(D, d, self.rank, init, gate_bias) for i in range(1, self.rounds + 1))
        # LSTM part in nn.LSTM's layout (gate order i, f, g, o); one bias, the second would be redundant
        self.weight_ih = nn.Parameter(torch.empty(4 * d, D))
        self.weight_hh = nn.Parameter(torch.empty(4 * d, d))
        self.bias = nn.Parameter(torch.empty(4 * d))
        if init == "lamb":
            # lamb's variance_scaling_initializer(scale=1): truncated normal, stddev sqrt(1.3 / fan_in) per tile
            _trunc_normal_(self.weight_ih, math.sqrt(1.3 / D))
            _trunc_normal_(self.weight_hh, math.sqrt(1.3 / d))
            nn.init.zeros_(self.bias)
        else:
            bound = 1 / math.sqrt(d)
            for p in (self.weight_ih, self.weight_hh, self.bias):
                nn.init.uniform_(p, -bound, bound)

    def forward(self, x, h0=None):
        B, T, _ = x.shape
        h, c = (x.new_zeros(B, self.hidden_size),) * 2 if h0 is None else h0
        mixes = list(self.mix)
        masks = candidate_masks(self.dropout, T, B, self.hidden_size, x) if self.training else None
        if not use_reference():
            return mogrifier_fast(self, x, h, c, masks)
        ms = [None] * T if masks is None else masks.unbind(0)
        ys = []
        # no whole-sequence input projection here: the input is re-gated by h_{t-1} at every step
        for xt, m in zip(x.unbind(1), ms):  # split once: x[:, t] per step would make the backward O(T^2)
            xt, hm = mogrify(xt, h, mixes)
            h, c = mogrifier_lstm_step(xt, hm, c, self.weight_ih, self.weight_hh, self.bias,
                                       cap_input_gate=self.cap_input_gate, mask=m)
            ys.append(h)
        return torch.stack(ys, dim=1), (h, c)
