"""Stair RNNs: a time-dependent scalar rho_k scales the whole new state of a base cell.

Paper: "Stair Recurrent Neural Networks" (NeurIPS 2021 submission; no public text and no arXiv id). This follows
its code (srnn/sRNN, EljayiYassir/Stair-recurrent-neural-networks) as restated in PAPERS.md section 5.2; the base
cells are those of nnRNN (arXiv 1905.12080) and expRNN (arXiv 1901.08428).

    h_k = rho_k * Phi(x_k, h_{k-1}),   k = 0, 1, ... the step index within one forward call

k restarts at 0 at every forward call, so with truncated BPTT (PTB) it counts steps within the chunk while the
state is carried over, as the code does. Two learned variants:

    "alpha":     rho_k = alpha_k, one learnable scalar per step (seq_len of them, init 1 or ``alpha_init``)
    "exp-alpha": inside the cell, on the pre-activation a_k = U x_k + h_{k-1} W:
                 h_k = (1 - exp(-alpha_k a_k)) * phi(a_k),  alpha_k ~ U[0, 1); no outer rho

For the LSTM, rho_k scales the output h_k only; the cell state c_k is carried unscaled, as in the code, whose
LSTM keeps c inside the module and returns h for the script to scale.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .base import Cell
from .errors import ConfigError, unknown
from .exprnn import ExpRNNCell
from .init import glorot_normal
from .nnrnn import NNRNNCell
from .registry import register_cell
from .rnn import ElmanForm, RNNCell

# rho_k as functions of the step index k (a float tensor); README names, the code's --nvar names in comments
_FIXED_RHOS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda k: torch.ones_like(k),
    "n": lambda k: 1 - 1 / (k + 2),  # 1n
    "n2": lambda k: 1 - 1 / (k + 2) ** 2,  # 1n2
    "logn": lambda k: 1 - 1 / torch.log(k + 2),  # negative at k = 0 (1 - 1/ln 2), as in the code
    "log2n": lambda k: 1 - 1 / torch.log(2 * (k + 4)),
    "sqrtlogn": lambda k: 1 - 1 / torch.sqrt(torch.log(k + 3)),
    "expn": lambda k: 1 - torch.exp(-(k + 2)),
}
LEARNED_RHOS = ("alpha", "exp-alpha")
RHOS = tuple(_FIXED_RHOS) + LEARNED_RHOS


def rho(name: str, k) -> torch.Tensor:
    """rho_k for a fixed schedule ``name``; k an int or a tensor of step indices (float64 result)."""
    if name not in _FIXED_RHOS:
        raise unknown("fixed rho", name, _FIXED_RHOS)
    return _FIXED_RHOS[name](torch.as_tensor(k, dtype=torch.float64))


def rho_schedule(name: str, steps: int) -> torch.Tensor:
    """(rho_0, ..., rho_{steps-1}) of a fixed schedule, float64, shape (steps,)."""
    return rho(name, torch.arange(steps, dtype=torch.float64))


class _StairSchedule:
    """The per-step scalars of a stair cell: a fixed rho schedule or a learned vector of seq_len scalars."""

    rho: str

    def _init_stair(self, rho: str, seq_len: int | None, alpha_init: float | None) -> None:
        if rho not in RHOS:
            raise unknown("rho", rho, RHOS)
        self.rho = rho
        if rho in LEARNED_RHOS:
            if seq_len is None or int(seq_len) < 1:
                raise ConfigError(f"rho {rho!r} learns one scalar per step: set seq_len (the sequence or BPTT "
                                  f"length), got {seq_len}")
            if alpha_init is not None and not math.isfinite(alpha_init):
                raise ConfigError(f"alpha_init must be finite, got {alpha_init}")
            n = int(seq_len)
            if alpha_init is not None:
                init = torch.full((n,), float(alpha_init))
            else:
                init = torch.ones(n) if rho == "alpha" else torch.rand(n)  # exp-alpha: U[0, 1) as the code
            self.rho_alpha = nn.Parameter(init)

    def _scales(self, steps: int, like: torch.Tensor) -> torch.Tensor | None:
        """(steps,) scalars for k = 0..steps-1 in the dtype/device of ``like``; None for rho "none"."""
        if self.rho == "none":
            return None
        if self.rho in LEARNED_RHOS:
            if steps > self.rho_alpha.shape[0]:
                raise ConfigError(f"rho {self.rho!r} was built for seq_len={self.rho_alpha.shape[0]} steps but got "
                                  f"a sequence of {steps}: set seq_len to the longest sequence (or BPTT chunk)")
            return self.rho_alpha[:steps]  # a shorter final chunk uses the first steps' scalars
        return rho_schedule(self.rho, steps).to(dtype=like.dtype, device=like.device)


class StairElman(_StairSchedule, ElmanForm):
    """The stair loop over an Elman-form base cell (RNN, expRNN, nnRNN); parameter groups and extra loss are the
    base cell's (the learned rho scalars are untagged, trained at lr)."""

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rho == "none":
            return super().forward(x, h0)
        ux, W, h = self._prepare(x, h0)
        scales_t = self._scales(ux.shape[0], ux)
        fast = self._fast(ux, W, h, scales_t, gated=self.rho == "exp-alpha")  # None: the reference loop below
        if fast is not None:
            return fast
        scales = scales_t.unbind(0)
        ys = []
        if self.rho == "exp-alpha":
            for u, al in zip(ux.unbind(0), scales):
                a = torch.addmm(u, h, W)
                h = (1 - torch.exp(-al * a)) * self.phi(a)
                ys.append(h)
        else:
            for u, r in zip(ux.unbind(0), scales):
                h = r * self.phi(torch.addmm(u, h, W))
                ys.append(h)
        return torch.stack(ys, dim=1), h


@register_cell("srnn", paper="Stair RNN over an Elman RNN (Stair code; base nnRNN arXiv 1905.12080)")
class StairRNN(StairElman, RNNCell):
    """sRNN: h_k = rho_k * phi(U x_k + b + V h_{k-1}).

    Defaults: rho "expn" (README best on copy; alpha on psMNIST and PTB-300, n2 on PTB-150), rinit "random" and
    nonlin "modrelu" (README commands and script defaults). seq_len and alpha_init matter only for rho "alpha"
    and "exp-alpha". Other options as the "rnn" cell.
    """

    def __init__(self, input_size: int, hidden_size: int, rho: str = "expn", seq_len: int | None = None,
                 alpha_init: float | None = None, nonlin: str = "modrelu", rinit: str = "random",
                 iinit: str = "xavier"):
        RNNCell.__init__(self, input_size, hidden_size, nonlin=nonlin, rinit=rinit, iinit=iinit)
        self._init_stair(rho, seq_len, alpha_init)


@register_cell("srnn_exp", paper="Stair RNN over expRNN (Stair code; expRNN arXiv 1901.08428)")
class StairExpRNN(StairElman, ExpRNNCell):
    """sRNN(exp): h_k = rho_k * modReLU(U x_k + h_{k-1} expm(A)), A the skew matrix of S.

    Default rho "expn" (README best on copy and PTB-150; alpha on psMNIST and PTB-300). Other options as "exprnn".
    """

    def __init__(self, input_size: int, hidden_size: int, rho: str = "expn", seq_len: int | None = None,
                 alpha_init: float | None = None, rinit: str = "henaff", iinit: str = "xavier"):
        ExpRNNCell.__init__(self, input_size, hidden_size, rinit=rinit, iinit=iinit)
        self._init_stair(rho, seq_len, alpha_init)


@register_cell("srnn_nn", paper="Stair RNN over nnRNN (Stair code; nnRNN arXiv 1905.12080)")
class StairNNRNN(StairElman, NNRNNCell):
    """sRNN(nn): h_k = rho_k * modReLU(U x_k + h_{k-1} P (M o T + Ahat) P^T), plus nnRNN's delta penalty.

    Default rho "n" (README best on psMNIST; expn on PTB-300, alpha on PTB-150 and copy). Other options as "nnrnn"
    (``input_init="torch_default"`` is what the Stair code ran).
    """

    def __init__(self, input_size: int, hidden_size: int, rho: str = "n", seq_len: int | None = None,
                 alpha_init: float | None = None, rinit: str = "henaff", iinit: str = "xavier",
                 delta: float = 1e-4, input_init: str = "iinit"):
        NNRNNCell.__init__(self, input_size, hidden_size, rinit=rinit, iinit=iinit, delta=delta,
                           input_init=input_init)
        self._init_stair(rho, seq_len, alpha_init)


@register_cell("srnn_lstm", paper="Stair RNN over an LSTM (Stair code, LSTM baseline of nnRNN arXiv 1905.12080)")
class StairLSTM(_StairSchedule, Cell):
    """Stair LSTM: c_k = f c_{k-1} + i g, h_k = rho_k * o tanh(c_k); state (h, c), c unscaled.

    Gates from [h, x] with one Glorot-normal (H, H + D) matrix per gate and PyTorch's default Linear bias, as the
    nnRNN LSTM baseline. rho "exp-alpha" is not defined for a gated cell (the code has it for RNN, expRNN and
    nnRNN only). Default rho "n" (the README reports no stair LSTM).
    """

    def __init__(self, input_size: int, hidden_size: int, rho: str = "n", seq_len: int | None = None,
                 alpha_init: float | None = None):
        super().__init__(input_size, hidden_size)
        if rho == "exp-alpha":
            raise ConfigError("rho 'exp-alpha' acts on a single pre-activation and is not defined for srnn_lstm; "
                              f"use one of {', '.join(r for r in RHOS if r != 'exp-alpha')}")
        self._init_stair(rho, seq_len, alpha_init)
        H, D = hidden_size, input_size
        # gate order (i, f, g, o); the input part is applied to the whole sequence at once
        self.W_x = nn.Linear(D, 4 * H)
        self.W_h = nn.Linear(H, 4 * H, bias=False)
        with torch.no_grad():
            for g in range(4):
                G = glorot_normal((H, H + D))  # the code's Linear(H + D -> H) on [h, x], one per gate
                self.W_h.weight[g * H:(g + 1) * H].copy_(G[:, :H])
                self.W_x.weight[g * H:(g + 1) * H].copy_(G[:, H:])
            bound = 1 / math.sqrt(H + D)  # nn.Linear's default bias range for fan_in H + D
            self.W_x.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor, h0: tuple[torch.Tensor, torch.Tensor] | None = None):
        gx = self.W_x(x).transpose(0, 1).contiguous()  # (T, B, 4H)
        if h0 is None:
            h = c = gx.new_zeros(gx.shape[1], self.hidden_size)
        else:
            h, c = h0
        R = self.W_h.weight.t()  # (H, 4H)
        scales = self._scales(gx.shape[0], gx)
        scales = [None] * gx.shape[0] if scales is None else scales.unbind(0)
        ys = []
        for u, r in zip(gx.unbind(0), scales):
            i, f, g, o = torch.addmm(u, h, R).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if r is not None:
                h = r * h
            ys.append(h)
        return torch.stack(ys, dim=1), (h, c)
