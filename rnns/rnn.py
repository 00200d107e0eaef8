"""Elman RNN (the baseline of the nnRNN and Stair papers).

    h_t = phi(U x_t + b + V h_{t-1})
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Cell
from .errors import ConfigError
from .registry import register_cell

_NONLIN = {"tanh": torch.tanh, "relu": torch.relu, "none": lambda z: z}


@register_cell("rnn", paper="Elman RNN baseline (nnRNN / Stair papers)")
class RNNCell(Cell):
    """Elman RNN, h_t = phi(U x_t + b + V h_{t-1})."""

    def __init__(self, input_size: int, hidden_size: int, nonlin: str = "tanh"):
        super().__init__(input_size, hidden_size)
        if nonlin not in _NONLIN:
            raise ConfigError(f"nonlin must be one of {', '.join(_NONLIN)}, got {nonlin!r}")
        self.nonlin = nonlin
        self.U = nn.Linear(input_size, hidden_size)
        self.V = nn.Linear(hidden_size, hidden_size, bias=False)
        nn.init.xavier_normal_(self.U.weight)
        nn.init.xavier_normal_(self.V.weight)

    def forward(self, x, h0=None):
        B, T, _ = x.shape
        h = x.new_zeros(B, self.hidden_size) if h0 is None else h0
        phi = _NONLIN[self.nonlin]
        ux = self.U(x)  # (B, T, H): input projections for the whole sequence at once
        ys = []
        for t in range(T):
            h = phi(ux[:, t] + self.V(h))
            ys.append(h)
        return torch.stack(ys, dim=1), h
