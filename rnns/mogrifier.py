"""Mogrifier LSTM: an LSTM whose input and previous state gate each other for a few rounds before the step.

Melis, Kocisky, Blunsom, "Mogrifier LSTM", ICLR 2020, arXiv 1909.01792. A baseline of the RRU paper
(arXiv 2108.00527), whose search tuned rank in U(40, 90) and rounds in {5, 6} (PAPERS.md section 4.4).

For rounds i = 1..r, with x^{-1} = x_t and h^0 = h_{t-1}:

    odd i:   x^i = 2 sigma(Q^i h^{i-1}) * x^{i-2}          Q^i (D, d)
    even i:  h^i = 2 sigma(R^i x^{i-1}) * h^{i-2}          R^i (d, D)

then a standard LSTM step on the last x and h. The factor 2 keeps the gates' mean at 1 around zero
pre-activations, so r = 0 recovers the plain LSTM and small Q, R start close to it. With rank k > 0 each
matrix is a product Q = Q_left Q_right, Q_left (D, k), Q_right (k, d) (the paper's low-rank variant).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import Cell
from .errors import ConfigError
from .lstm import lstm_step
from .registry import register_cell


class _Mix(nn.Module):
    """v (B, n_in) -> M v (B, n_out), with M full (n_out, n_in) or left (n_out, k) @ right (k, n_in)."""

    def __init__(self, n_in: int, n_out: int, rank: int):
        super().__init__()
        # PyTorch-Linear-like U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on every factor (see deviations doc)
        if rank:
            self.right = nn.Parameter(torch.empty(rank, n_in).uniform_(-1, 1) / math.sqrt(n_in))
            self.left = nn.Parameter(torch.empty(n_out, rank).uniform_(-1, 1) / math.sqrt(rank))
        else:
            self.weight = nn.Parameter(torch.empty(n_out, n_in).uniform_(-1, 1) / math.sqrt(n_in))
        self.rank = rank

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        # low rank: two thin matmuls, never the (n_out, n_in) product
        return F.linear(F.linear(v, self.right), self.left) if self.rank else F.linear(v, self.weight)


def mogrify(x: torch.Tensor, h: torch.Tensor, mixes: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the rounds: ``mixes[i-1]`` is Q^i (h -> x width) for odd i, R^i (x -> h width) for even i."""
    for i, mix in enumerate(mixes, start=1):
        if i % 2:
            x = 2 * torch.sigmoid(mix(h)) * x
        else:
            h = 2 * torch.sigmoid(mix(x)) * h
    return x, h


@register_cell("mogrifier_lstm", paper="Melis et al. 2020, Mogrifier LSTM, arXiv 1909.01792")
class MogrifierLSTM(Cell):
    """Mogrifier LSTM: ``rounds`` mutual gating rounds, Q/R full rank (``rank`` 0) or of rank ``rank``."""

    def __init__(self, input_size: int, hidden_size: int, rank: int = 0, rounds: int = 5):
        super().__init__(input_size, hidden_size)
        if int(rank) != rank or rank < 0:
            raise ConfigError(f"rank must be an integer >= 0 (0 = full-rank Q and R), got {rank}")
        if int(rounds) != rounds or rounds < 0:
            raise ConfigError(f"rounds must be an integer >= 0, got {rounds}")
        self.rank, self.rounds = int(rank), int(rounds)
        D, d = input_size, hidden_size
        self.mix = nn.ModuleList(_Mix(d, D, self.rank) if i % 2 else _Mix(D, d, self.rank)
                                 for i in range(1, self.rounds + 1))
        # LSTM part in nn.LSTM's layout (gate order i, f, g, o) and init; one bias, the second would be redundant
        bound = 1 / math.sqrt(d)
        self.weight_ih = nn.Parameter(torch.empty(4 * d, D).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(4 * d, d).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(4 * d).uniform_(-bound, bound))

    def forward(self, x, h0=None):
        B, T, _ = x.shape
        h, c = (x.new_zeros(B, self.hidden_size),) * 2 if h0 is None else h0
        mixes = list(self.mix)
        ys = []
        # no whole-sequence input projection here: the input is re-gated by h_{t-1} at every step
        for xt in x.unbind(1):  # split once: x[:, t] per step would make the backward O(T^2)
            xt, hm = mogrify(xt, h, mixes)
            h, c = lstm_step(xt, hm, c, self.weight_ih, self.weight_hh, self.bias, None)
            ys.append(h)
        return torch.stack(ys, dim=1), (h, c)
