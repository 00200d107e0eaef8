"""nnRNN: a recurrent matrix in real Schur form, orthogonal basis times (non-normal + rotation) part.

Paper: "Non-normal Recurrent Neural Network (nnRNN): learning long time dependencies while improving
expressivity with transient dynamics" (Kerg, Goyette, Puelma Touzel, Gidel, Vorontsov, Bengio, Lajoie,
NeurIPS 2019, arXiv 1905.12080); PAPERS.md section 5.3. Row-vector convention, as the code:

    P     = expm(L - L^T), L strictly upper holding log_P        orthogonal, log_P tag "orth" (lr_orth)
    Ahat  = blockdiag_i( alpha_i R(theta_i) ),  i = 1..H/2        R(t) = [[cos t, -sin t], [sin t, cos t]]
    W     = P (M o T + Ahat) P^T                                  M = strictly-upper ones, T tag "tdecay"
    h_t   = modReLU(U x_t + h_{t-1} W)                            U (H, D) without bias
    loss += delta * sum_i (alpha_i - 1)^2

``log_P`` and ``T`` hold only their H(H-1)/2 strict-upper entries (as expRNN's S, :mod:`rnns.exprnn`), so that
parameter counts are the effective ones.

The eigenvalues of W are alpha_i e^{+-i theta_i} while T is zero on the in-block entries (2i, 2i+1), as at
init. The strict-upper mask M is the code's; it also reaches those in-block entries, so training T can move
the eigenvalues away from the rotation blocks (kept as in the code).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .errors import ConfigError
from .exprnn import matrix_exp, skew_from_vector, upper_from_vector
from .init import INPUT_INIT_MODES, INPUT_INITS, SKEW_INITS, skew_init
from .init import input_init as input_init_fn
from .registry import register_cell
from .rnn import ElmanForm, ModReLU, check_choice


def rotation_blocks(alpha: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """blockdiag_i(alpha_i R(theta_i)): alpha, theta (m,) -> (2m, 2m), vectorised (no per-block Python loop)."""
    m = alpha.shape[0]
    c, s = alpha * torch.cos(theta), alpha * torch.sin(theta)
    blocks = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (m, 2, 2)
    eye = torch.eye(m, dtype=blocks.dtype, device=blocks.device)
    # out[2i + a, 2j + b] = [i == j] * blocks[i, a, b]
    return (eye[:, None, :, None] * blocks[:, :, None, :]).reshape(2 * m, 2 * m)


@register_cell("nnrnn", paper="nnRNN (Kerg et al. 2019, arXiv 1905.12080)")
class NNRNNCell(ElmanForm):
    """nnRNN, h_t = modReLU(U x_t + h_{t-1} P (M o T + blockdiag(alpha_i R(theta_i))) P^T).

    rinit: henaff | cayley | random | xavier for log_P (the code leaves log_P uninitialised; see the deviations
    document). iinit: xavier | kaiming for U. delta: weight of the penalty delta * sum_i (alpha_i - 1)^2 added
    by ``extra_loss`` (0 turns it off). hidden_size must be even (H/2 rotation blocks).
    input_init: "iinit" (default) draws U from ``iinit``; "torch_default" leaves U at PyTorch's default
    ``nn.Linear`` init U(-1/sqrt(D), 1/sqrt(D)) and ignores iinit, which is what the nnRNN/Stair code ran (its
    nnRNN cell stores the input initialiser but never applies it; docs/deviations/rnns-orthogonal.md).
    """

    def __init__(self, input_size: int, hidden_size: int, rinit: str = "henaff", iinit: str = "xavier",
                 delta: float = 1e-4, input_init: str = "iinit"):
        if hidden_size % 2:
            raise ConfigError(f"nnrnn needs an even hidden_size (hidden_size/2 rotation blocks), got {hidden_size}")
        if not (delta >= 0 and math.isfinite(delta)):
            raise ConfigError(f"delta must be a finite number >= 0, got {delta}")
        super().__init__(input_size, hidden_size)
        check_choice("rinit", rinit, SKEW_INITS)
        check_choice("iinit", iinit, INPUT_INITS)
        check_choice("input_init", input_init, INPUT_INIT_MODES)
        self.rinit, self.iinit, self.delta, self.input_init = rinit, iinit, float(delta), input_init
        m = hidden_size // 2
        self.U = nn.Linear(input_size, hidden_size, bias=False)
        self.register_buffer("triu_index", torch.triu_indices(hidden_size, hidden_size, 1), persistent=False)
        iu = self.triu_index
        self.log_P = nn.Parameter(skew_init(rinit, hidden_size)[iu[0], iu[1]].clone())  # (H(H-1)/2,)
        self.T = nn.Parameter(torch.zeros(iu.shape[1]))  # M o T: the strict upper triangle, (H(H-1)/2,)
        self.alpha = nn.Parameter(torch.ones(m))
        # U(0, 2 * 3.14) as the code writes it (not 2 pi): the last 0.0032 rad of the circle are never drawn
        self.theta = nn.Parameter(torch.rand(m) * (2 * 3.14))
        self.phi = ModReLU(hidden_size)
        if input_init == "iinit":  # "torch_default": keep nn.Linear's own init, drawn above, as the code does
            with torch.no_grad():
                self.U.weight.copy_(input_init_fn(iinit, self.U.weight.shape))

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        return self.U(x)

    def orthogonal_basis(self) -> torch.Tensor:
        """P (H, H) = expm of the skew part of log_P; autograd gives the exact Frechet-derivative gradient."""
        return matrix_exp(skew_from_vector(self.log_P, self.triu_index, self.hidden_size))  # float64 inside

    def recurrent_matrix(self) -> torch.Tensor:
        P = self.orthogonal_basis()
        MT = upper_from_vector(self.T, self.triu_index, self.hidden_size)  # M o T
        core = MT + rotation_blocks(self.alpha, self.theta)
        return P @ core @ P.t()

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"orth": [self.log_P], "tdecay": [self.T]}

    def extra_loss(self) -> torch.Tensor | None:
        # sum over blocks, as the paper writes it; the code's per-alpha MSE on 1-element tensors is the same sum
        if self.delta == 0:
            return None
        return self.delta * (self.alpha - 1).pow(2).sum()
