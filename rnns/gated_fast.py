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
    return torch.empty(T, B, n, dtype=like.dtype, device=like.device).bernoulli_(1 - p).div_(1 - p)
