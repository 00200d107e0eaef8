"""LSTM baseline with a constant forget-gate bias (fused cuDNN/ATen path)."""
from __future__ import annotations

import torch
from torch import nn

from .base import Cell
from .registry import register_cell


@register_cell("lstm", paper="LSTM baseline (Hochreiter & Schmidhuber 1997)")
class LSTM(Cell):
    """Standard LSTM via ``nn.LSTM``; the forget-gate bias starts at ``forget_bias``."""

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0):
        super().__init__(input_size, hidden_size)
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        with torch.no_grad():
            H = hidden_size
            # nn.LSTM gate order is (i, f, g, o); two biases are summed, so put the constant in one of them
            self.lstm.bias_ih_l0[H:2 * H].fill_(forget_bias)
            self.lstm.bias_hh_l0[H:2 * H].zero_()

    def forward(self, x, h0=None):
        if h0 is not None:
            h0 = (h0[0].unsqueeze(0), h0[1].unsqueeze(0))
        y, (h, c) = self.lstm(x, h0)
        return y, (h[0], c[0])
