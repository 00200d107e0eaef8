"""GRU baseline (fused ``nn.GRU``) with its slow reference step.

Cho, van Merrienboer, Gulcehre, Bahdanau, Bougares, Schwenk, Bengio, "Learning Phrase Representations using
RNN Encoder-Decoder for Statistical Machine Translation", EMNLP 2014, arXiv 1406.1078. Used as a baseline by
the RRU paper (arXiv 2108.00527, PAPERS.md section 4.5). PyTorch's variant (gate order r, z, n), which puts the
reset gate after the recurrent matmul (r * (W_hn h + b_hn)) as cuDNN does:

    r = sigma(W_ir x + b_ir + W_hr h + b_hr)      z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * Dropout(n) + z * h

``dropout`` (training mode only) drops the candidate n with a fresh mask per step: recurrent dropout without memory
loss (Semeniuta et al. 2016), as the RRU paper's GRU does; the fused kernel is used whenever no dropout acts.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import Cell, in_pack, use_reference
from .errors import ConfigError
from .gated_fast import candidate_masks, gru_fast
from .registry import register_cell


def gru_step(x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
             b_hh: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One GRU step in ``nn.GRU``'s layout: x (B, D), h (B, d), w_ih (3d, D), w_hh (3d, d), biases (3d,).

    ``mask`` (B, d) multiplies the candidate n (recurrent dropout without memory loss)."""
    xr, xz, xn = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)
    hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)  # reset applied to the recurrent projection including its bias
    if mask is not None:
        n = n * mask
    return (1 - z) * n + z * h


@register_cell("gru", paper="GRU baseline (Cho et al. 2014, arXiv 1406.1078)")
class GRU(Cell):
    """Standard GRU via ``nn.GRU`` (PyTorch default init U(-1/sqrt(d), 1/sqrt(d)))."""

    def __init__(self, input_size: int, hidden_size: int, dropout: float = 0.0):
        super().__init__(input_size, hidden_size)
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True)

    def forward(self, x, h0=None):
        dropping = self.training and self.dropout > 0
        # the fused kernel has no candidate dropout, and vmap has no batching rule for aten::gru: inside a trial
        # pack (rnns.base.packed) the explicit-BPTT loop runs instead, member-batched by its vmap rule
        if dropping or in_pack():
            if use_reference(vmap_ok=True):
                return self.step_reference(x, h0)
            B, T, _ = x.shape
            h = x.new_zeros(B, self.hidden_size) if h0 is None else h0
            masks = candidate_masks(self.dropout, T, B, self.hidden_size, x) if dropping else None
            g = self.gru
            return gru_fast(x, h, g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0, masks)
        y, h = self.gru(x, None if h0 is None else h0.unsqueeze(0))  # nn.GRU wants (num_layers, B, d)
        return y, h[0]

    def step_reference(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The same forward through :func:`gru_step` in a Python loop (candidate dropout in training mode)."""
        B, T, _ = x.shape
        h = x.new_zeros(B, self.hidden_size) if h0 is None else h0
        g = self.gru
        masks = candidate_masks(self.dropout, T, B, self.hidden_size, x) if self.training else None
        ms = [None] * T if masks is None else masks.unbind(0)
        ys = []
        for xt, mk in zip(x.unbind(1), ms):
            h = gru_step(xt, h, g.weight_ih_l0, g.weight_hh_l0, g.bias_ih_l0, g.bias_hh_l0, mk)
            ys.append(h)
        return torch.stack(ys, dim=1), h
