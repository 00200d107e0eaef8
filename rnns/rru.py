"""Residual Recurrent Unit (RRU): an ungated cell with a ReLU MLP, RMS normalisation and a ReZero residual.

Zakovskis, Draguns, Gaile, Ozolins, Freivalds, "Gates are not what you need in RNNs", 2021, arXiv 2108.00527
(PAPERS.md section 4.1). Input x_t (D,), state h (N,), output o_t (O,), inner width M = round(m (D + N)):

    a_1 = ReLU(RMSNorm(J_1 [x_t; h_{t-1}] + b_1))         RMSNorm(v) = v / sqrt(mean(v^2) + 1e-6), no gain
    a_k = ReLU(J_k a_{k-1} + b_k),  k = 2..L               (L = relu_layers)
    [c; o_t] = W Dropout(a_L) + b_W                        c (N,), o_t (O,)
    h_t = sigma(10 s) * h_{t-1} + zeta * c                 s, zeta (N,): learned per unit, input-independent

Parameters: (D+N)M + M + (L-1)(M^2+M) + M(N+O) + (N+O) + 2N.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import Cell, use_reference
from .errors import ConfigError
from .gated_fast import candidate_masks, rru_fast
from .registry import register_cell

# s is stored divided by this, so that Adam's roughly parameter-independent step size moves 10 s ten times faster
S_SCALE = 10.0


def rms_norm(v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """v / sqrt(mean over features of v^2 + eps); no mean subtraction, no gain (the RRU code's "instance_norm")."""
    return v * torch.rsqrt(v.pow(2).mean(dim=-1, keepdim=True) + eps)


def rru_inner_width(input_size: int, hidden_size: int, middle: float) -> int:
    """M = round(middle * (D + N)), at least 1 (Python's round, as the original)."""
    return max(1, round(middle * (input_size + hidden_size)))


def rru_param_count(D: int, N: int, O: int, M: int, L: int) -> int:
    """The closed-form parameter count of PAPERS 4.1."""
    return (D + N) * M + M + (L - 1) * (M * M + M) + M * (N + O) + (N + O) + 2 * N


def rru_initial_state(batch: int, N: int, *, dtype=None, device=None) -> torch.Tensor:
    """(0.25 sqrt(N), 0, ..., 0) per sequence: a non-zero start so the first RMSNorm does not see only x."""
    h = torch.zeros(batch, N, dtype=dtype, device=device)
    h[:, 0] = 0.25 * math.sqrt(N)
    return h


@register_cell("rru", paper="Zakovskis et al. 2021, Gates are not what you need in RNNs, arXiv 2108.00527")
class RRU(Cell):
    """Residual Recurrent Unit; output width ``out_size`` (0 = hidden_size), inner width ``middle`` (D + N)."""

    def __init__(self, input_size: int, hidden_size: int, out_size: int = 0, relu_layers: int = 1,
                 middle: float = 2.0, dropout: float = 0.0):
        super().__init__(input_size, hidden_size)
        if int(out_size) != out_size or out_size < 0:
            raise ConfigError(f"out_size must be an integer >= 0 (0 = hidden_size), got {out_size}")
        if int(relu_layers) != relu_layers or relu_layers < 1:
            raise ConfigError(f"relu_layers must be an integer >= 1, got {relu_layers}")
        if not (math.isfinite(middle) and middle > 0):
            raise ConfigError(f"middle must be a positive multiplier of (input_size + hidden_size), got {middle}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        D, N = input_size, hidden_size
        O = int(out_size) or N
        M = rru_inner_width(D, N, middle)
        self.output_size, self.inner_size = O, M
        self.relu_layers, self.middle = int(relu_layers), float(middle)
        self.J = nn.ModuleList([nn.Linear(D + N, M)] + [nn.Linear(M, M) for _ in range(self.relu_layers - 1)])
        self.W = nn.Linear(M, N + O)
        self.drop = nn.Dropout(dropout)
        # TF1 add_variable default: Glorot-uniform kernels, zero biases
        for lin in (*self.J, self.W):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        # sigma(10 s) starts uniform in (0.01, 0.99): a spread of memory lengths from one step to ~100 steps
        u = torch.empty(N, dtype=torch.float64).uniform_(0.01, 0.99)
        self.s = nn.Parameter((torch.logit(u) / S_SCALE).to(torch.get_default_dtype()))  # the model's dtype, not float32
        self.zeta = nn.Parameter(torch.zeros(N))  # ReZero: the state is a pure decay of h_0 at init

    def forward(self, x, h0=None):
        B, T, _ = x.shape
        D, N = self.input_size, self.hidden_size
        h = rru_initial_state(B, N, dtype=x.dtype, device=x.device) if h0 is None else h0
        J1 = self.J[0]
        keep = torch.sigmoid(S_SCALE * self.s)  # (N,)
        # dropout after the last ReLU layer, a fresh mask per step (drawn for the whole sequence at once, so the fast
        # path and this reference consume the random stream alike)
        masks = candidate_masks(self.drop.p, T, B, self.inner_size, x) if self.training else None
        if not use_reference():
            return rru_fast(x, h, J1.weight[:, :D], J1.weight[:, D:].t(), J1.bias,
                            [lin.weight for lin in self.J[1:]], [lin.bias for lin in self.J[1:]],
                            self.W.weight, self.W.bias, keep, self.zeta, masks)
        xp = F.linear(x, J1.weight[:, :D], J1.bias)  # (B, T, M): the x half of J_1 [x; h] for every step at once
        w_h = J1.weight[:, D:].t()  # (N, M)
        ms = [None] * T if masks is None else masks.unbind(0)
        ys = []
        for xt, m in zip(xp.unbind(1), ms):  # split once: xp[:, t] per step would make the backward O(T^2)
            a = F.relu(rms_norm(torch.addmm(xt, h, w_h)))
            for lin in self.J[1:]:
                a = F.relu(lin(a))
            c, o = self.W(a if m is None else a * m).split((N, self.output_size), dim=-1)
            h = keep * h + self.zeta * c
            ys.append(o)
        return torch.stack(ys, dim=1), h
