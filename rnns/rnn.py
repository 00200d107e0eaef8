"""Elman RNN and RNN-orth, the baselines of the nnRNN and Stair papers, and the loop they share with expRNN/nnRNN.

Paper: "Non-normal Recurrent Neural Network (nnRNN): learning long time dependencies while improving
expressivity with transient dynamics" (Kerg et al., NeurIPS 2019, arXiv 1905.12080), whose RNN and RNN-orth
baselines these are (PAPERS.md section 5.3). Row-vector convention, as in that code:

    a_t = U x_t + b + h_{t-1} W        (W = V^T for the RNN, V the nn.Linear weight)
    h_t = phi(a_t),   phi in {tanh, relu, modrelu, none, relu_as_in_code}
    modReLU(z) = sign(z) * relu(|z| + b_phi),   b_phi ~ U(-0.01, 0.01)

"relu" is a real ReLU. "relu_as_in_code" is what ``--nonlin relu`` ran in the nnRNN and Stair code: no nonlinearity
at all (the identity, the same function as "none"), because the code's ``if relu`` / ``if modrelu ... else None``
chain overwrites the ReLU it has just set (docs/deviations/rnns-orthogonal.md).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Cell, use_reference
from .errors import ConfigError, unknown
from .init import INPUT_INITS, ORTHOGONAL_INITS, glorot_normal, input_init, kaiming_normal, orthogonal_init
from .registry import register_cell

NONLINS = ("tanh", "relu", "modrelu", "none", "relu_as_in_code")
RNN_INITS = ("xavier", "kaiming") + ORTHOGONAL_INITS


class ModReLU(nn.Module):
    """modReLU (Arjovsky et al. 2016) for real inputs: sign(z) * relu(|z| + b), one bias per unit. z (..., H)."""

    def __init__(self, features: int):
        super().__init__()
        self.b = nn.Parameter(torch.empty(features).uniform_(-0.01, 0.01))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sign(z) * torch.relu(z.abs() + self.b)


def make_nonlin(name: str, hidden_size: int) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()
    if name == "relu":
        return nn.ReLU()
    if name == "modrelu":
        return ModReLU(hidden_size)
    if name in ("none", "relu_as_in_code"):  # the code's "relu" ends as no nonlinearity (module docstring)
        return nn.Identity()
    raise unknown("nonlin", name, NONLINS)


def check_choice(kind: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise unknown(kind, value, valid)


class ElmanForm(Cell):
    """Cells whose step is h_t = phi(in_t + h_{t-1} W) with one W per forward (RNN, expRNN, nnRNN).

    Subclasses provide ``input_projection(x) -> (B, T, H)``, ``recurrent_matrix() -> W (H, H)`` (row convention,
    multiplied as h @ W) and a module ``self.phi``. The stair cells (:mod:`rnns.stair`) reuse ``_prepare`` and
    ``phi`` to put their per-step scale into this same loop.
    """

    phi: nn.Module

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def recurrent_matrix(self) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _prepare(self, x: torch.Tensor, h0: torch.Tensor | None):
        """(inputs projected for every step (T, B, H), W (H, H), initial state (B, H))."""
        # one batched matmul for all steps; time-major so that each step's slice is contiguous
        ux = self.input_projection(x).transpose(0, 1).contiguous()
        W = self.recurrent_matrix()  # built once per forward (expm for expRNN / nnRNN)
        h = ux.new_zeros(ux.shape[1], self.hidden_size) if h0 is None else h0
        return ux, W, h

    def _phi_kind(self) -> int | None:
        """The fast path's code for ``self.phi`` (rnns.elman_bptt), or None for a nonlinearity it does not know."""
        from . import elman_bptt as E

        phi = self.phi
        if isinstance(phi, ModReLU):
            return E.MODRELU
        if isinstance(phi, nn.Tanh):
            return E.TANH
        if isinstance(phi, nn.ReLU):
            return E.RELU
        if isinstance(phi, nn.Identity):
            return E.IDENTITY
        return None

    def _fast(self, ux: torch.Tensor, W: torch.Tensor, h: torch.Tensor, scales: torch.Tensor | None = None,
              gated: bool = False) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The explicit-BPTT fast path (rnns.elman_bptt), or None where the slow reference loop must run
        (``rnns.base.use_reference()``, or an unknown nonlinearity)."""
        kind = self._phi_kind()
        if kind is None or use_reference(vmap_ok=True):  # vmap-capable: stays fast inside a trial pack
            return None
        from .elman_bptt import MODRELU, elman_recurrence

        b = self.phi.b if kind == MODRELU else None
        hs = elman_recurrence(ux, W, h, kind, b, scales, gated)  # (T, B, H)
        return hs.transpose(0, 1).contiguous(), hs[-1]

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ux, W, h = self._prepare(x, h0)
        fast = self._fast(ux, W, h)
        if fast is not None:
            return fast
        # the slow reference: a plain step loop under autograd
        ys = []
        for u in ux.unbind(0):
            h = self.phi(torch.addmm(u, h, W))  # addmm: the add and the matmul in one kernel, one allocation
            ys.append(h)
        return torch.stack(ys, dim=1), h


@register_cell("rnn", paper="Elman RNN baseline (nnRNN arXiv 1905.12080 / Stair papers)")
class RNNCell(ElmanForm):
    """Elman RNN, h_t = phi(U x_t + b + V h_{t-1}), V from ``rinit``.

    rinit: "xavier" (Glorot normal V), "kaiming" (He normal V), or an orthogonal init "henaff" | "cayley" |
    "random", which sets V = expm(A) with A that init's skew matrix. The nnRNN/Stair code ignores the chosen
    orthogonal init and uses expm of the skew part of PyTorch's default Linear weight instead; here the named
    init is honoured (docs/deviations/rnns-orthogonal.md).
    iinit: "xavier" | "kaiming" for U; U has a bias (PyTorch's default Linear bias init).
    """

    def __init__(self, input_size: int, hidden_size: int, nonlin: str = "tanh", rinit: str = "xavier",
                 iinit: str = "xavier"):
        super().__init__(input_size, hidden_size)
        check_choice("nonlin", nonlin, NONLINS)
        check_choice("rinit", rinit, RNN_INITS)
        check_choice("iinit", iinit, INPUT_INITS)
        self.nonlin, self.rinit, self.iinit = nonlin, rinit, iinit
        self.U = nn.Linear(input_size, hidden_size)
        self.V = nn.Linear(hidden_size, hidden_size, bias=False)
        self.phi = make_nonlin(nonlin, hidden_size)
        with torch.no_grad():
            self.U.weight.copy_(input_init(iinit, self.U.weight.shape))
            if rinit == "xavier":
                self.V.weight.copy_(glorot_normal(self.V.weight.shape))
            elif rinit == "kaiming":
                self.V.weight.copy_(kaiming_normal(self.V.weight.shape))
            else:
                self.V.weight.copy_(orthogonal_init(rinit, hidden_size))

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        return self.U(x)

    def recurrent_matrix(self) -> torch.Tensor:
        return self.V.weight.t()  # V h (column form) == h V^T (row form)


@register_cell("rnn_orth", paper="RNN-orth baseline of nnRNN (Kerg et al. 2019, arXiv 1905.12080)")
class RNNOrthCell(RNNCell):
    """RNN-orth: an Elman RNN whose V starts orthogonal (random Haar by default) and is then trained freely.

    This is the nnRNN paper's RNN-orth. The Stair code's "RNN-Orth" network is a different cell
    (h = phi(U x) + SN(V) h with a spectrally normalised V) and is not reproduced here. The default nonlinearity
    is modReLU, the nnRNN/Stair scripts' default.
    """

    def __init__(self, input_size: int, hidden_size: int, nonlin: str = "modrelu", rinit: str = "random",
                 iinit: str = "xavier"):
        if rinit not in ORTHOGONAL_INITS:
            raise ConfigError(f"rnn_orth needs an orthogonal rinit ({', '.join(ORTHOGONAL_INITS)}), got {rinit!r}")
        super().__init__(input_size, hidden_size, nonlin=nonlin, rinit=rinit, iinit=iinit)
