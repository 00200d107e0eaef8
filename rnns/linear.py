"""Linear RNNs and (rescaled) Glorot initialisation of their transition.

"Revisiting Glorot Initialization for Long-Range Linear Recurrences" (Bar, Seleznova, Alexander, Kutyniok, Giryes,
arXiv 2505.19827), as implemented in NogaBar/Rescaled_Glorot_for_RNN (PAPERS.md section 1). Two cells:

    linear_rnn   h_t = A h_{t-1} + B x_t              A dense (N, N), real          y_t = C h_t + D * x_t
    diag_rnn     h_t = a * h_{t-1} + B x_t            a complex (N,), B complex     y_t = Re(C h_t) + D * x_t

with H = input_size = output_size (the model width d_model) and N = hidden_size (the state width d_hidden).
Both start from h_{-1} = 0 unless a state is carried in. The transition's initialisation is the paper's subject:
Glorot, N(0, 1/N), puts the spectral radius slightly above 1 for large N, so states explode over sequences of length
O(sqrt N); "rescaled Glorot" (``A_init="fixed"``) divides the standard deviation by c_n, placing the radius just
below 1 with high probability.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import Cell, use_reference
from .errors import ConfigError
from .registry import register_cell
from .scan import SCANS, linear_scan

_PAPER = "Bar et al., Revisiting Glorot Initialization for Long-Range Linear Recurrences, arXiv 2505.19827"
_EULER_GAMMA = 0.5772156649015329
# the smallest n whose gamma_n = ln(n / (2 pi (ln n)^2)) is positive; below it c_n takes sqrt of a negative number
RESCALED_GLOROT_MIN_N = 164
GLOROT_KINDS = ("glorot", "halved_glorot", "fixed")


def rescaled_glorot_c(n: int) -> float:
    """c_n of rescaled Glorot (PAPERS 1.2): predicted mean plus one standard deviation of a Ginibre spectral radius.

        gamma_n = ln(n / (2 pi (ln n)^2))
        c_n     = 1 + sqrt(gamma_n / (4 n)) + (gamma_E + pi / sqrt 6) / sqrt(4 n gamma_n)

    (the spectral radius of an n x n N(0, 1/n) matrix is about 1 + sqrt(gamma_n/(4n)) + G / sqrt(4 n gamma_n) with G
    standard Gumbel: mean gamma_E, standard deviation pi/sqrt 6). Raises ConfigError for n <= 163, where gamma_n <= 0.
    """
    n = int(n)
    if n < RESCALED_GLOROT_MIN_N:
        raise ConfigError(f"rescaled Glorot (A_init 'fixed') is undefined for hidden_size {n} <= 163; "
                          f"use hidden_size >= {RESCALED_GLOROT_MIN_N} or another A_init")
    gamma_n = math.log(n / (2 * math.pi * math.log(n) ** 2))
    return 1 + math.sqrt(gamma_n / (4 * n)) + (_EULER_GAMMA + math.pi / math.sqrt(6)) / math.sqrt(4 * n * gamma_n)


def glorot_std(n: int, kind: str) -> float:
    """Entry standard deviation of an n x n transition.

    glorot 1/sqrt(n), halved_glorot 1/sqrt(2n) (half the variance), fixed 1/(c_n sqrt(n)).
    """
    if kind == "glorot":
        return 1 / math.sqrt(n)
    if kind == "halved_glorot":
        return 1 / math.sqrt(2 * n)
    if kind == "fixed":
        return 1 / (rescaled_glorot_c(n) * math.sqrt(n))
    raise ConfigError(f"Glorot kind must be one of {', '.join(GLOROT_KINDS)}, got {kind!r}")


def glorot_matrix(n: int, kind: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(n, n) Gaussian transition with i.i.d. N(0, glorot_std(n, kind)^2) entries, from torch's global RNG."""
    std = glorot_std(n, kind)  # first, so an invalid n fails before drawing
    return torch.randn(n, n, dtype=dtype) * std


def glorot_eigenvalues(n: int, kind: str) -> torch.Tensor:
    """(n,) complex128 eigenvalues of ``glorot_matrix(n, kind)``: conjugate pairs plus about sqrt(2n/pi) real ones.

    The repository takes the diagonal of scipy's complex Schur form of a matrix drawn from numpy's global RNG; here
    the matrix comes from torch's RNG (so the experiment seed controls it) and ``torch.linalg.eigvals`` gives the
    same spectrum (the Schur diagonal is the eigenvalues, in some order).
    """
    return torch.linalg.eigvals(glorot_matrix(n, kind))


def uniform_disk_polar(n: int) -> torch.Tensor:
    """(n,) complex128 with modulus ~ U[0, 1] and phase ~ U[0, 2 pi), independent draws.

    This is what the repository's ``uniform`` init intends; its code reuses one PRNG key for both draws, which makes
    phase = 2 pi |a| exactly. Note that a uniform modulus is not area-uniform on the disk (that would be sqrt(U)).
    """
    modulus = torch.rand(n, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(n, dtype=torch.float64)
    return torch.polar(modulus, phase)


@register_cell("linear_rnn", paper=_PAPER)
class LinearRNN(Cell):
    """Dense linear RNN, h_t = A h_{t-1} + B x_t, y_t = C h_t + D * x_t (sequential loop).

    Parameters (real):  A (N, N), B (N, H), C (H, N), D (H,).
    Init: A per ``A_init`` (glorot N(0,1/N), halved_glorot N(0,1/2N), fixed = rescaled Glorot, identity I);
    B ~ N(0, 1/H), C ~ N(0, 1/N), D ~ N(0, 1). Optimiser tag "recurrent" on {A, B}, as the repository's "ssm" group.
    forward: x (B, T, H) real, h0 (B, N) or None -> y (B, T, H), h_T (B, N).
    """

    A_INITS = GLOROT_KINDS + ("identity",)

    def __init__(self, input_size: int, hidden_size: int, A_init: str = "glorot"):
        super().__init__(input_size, hidden_size)
        if A_init not in self.A_INITS:
            raise ConfigError(f"linear_rnn A_init must be one of {', '.join(self.A_INITS)}, got {A_init!r}")
        H, N = input_size, hidden_size
        self.output_size = H
        self.A_init = A_init
        A = torch.eye(N, dtype=torch.float64) if A_init == "identity" else glorot_matrix(N, A_init)
        self.A = nn.Parameter(A.float())
        self.B = nn.Parameter(torch.randn(N, H) / math.sqrt(H))
        self.C = nn.Parameter(torch.randn(H, N) / math.sqrt(N))
        self.D = nn.Parameter(torch.randn(H))

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        bx = x @ self.B.T  # (B, T, N): all input projections at once, outside the loop
        h = bx.new_zeros(bx.shape[0], self.hidden_size) if h0 is None else h0
        if not use_reference(vmap_ok=True):  # vmap-capable (rnns.vmap_rules): stays fast inside a trial pack
            # fast path: the recurrence as one autograd Function with an explicit backward through time
            # (rnns.elman_bptt with the identity nonlinearity: h_t = b_t + h_{t-1} A^T)
            from .elman_bptt import IDENTITY, elman_recurrence

            hs_t = elman_recurrence(bx.transpose(0, 1).contiguous(), self.A.t(), h, IDENTITY)  # (T, B, N)
            y = hs_t.transpose(0, 1) @ self.C.T + self.D * x
            return y, hs_t[-1]
        hs = []
        for b_t in bx.unbind(1):  # unbind keeps the backward O(T) (see rnns.scan.linear_scan_ref)
            h = h @ self.A.T + b_t
            hs.append(h)
        y = torch.stack(hs, dim=1) @ self.C.T + self.D * x  # (B, T, H)
        return y, h

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"recurrent": [self.A, self.B]}


@register_cell("diag_rnn", paper=_PAPER)
class DiagRNN(Cell):
    """Diagonal complex linear RNN, h_t = a * h_{t-1} + B x_t, y_t = Re(C h_t) + D * x_t, by a scan (``scan``: a key of
    rnns.scan.SCANS, default "auto", the form measured fastest for the device).

    Parameters (real tensors; complex numbers are formed in ``forward`` only):
        a_re, a_im (N,)      the diagonal transition a = a_re + i a_im, trained directly (no stability constraint)
        B_re, B_im (N, H)    complex normal / sqrt(H): each part N(0, 1/(2H)), so E|B_ij|^2 = 1/H
        C (H, N) real N(0, 1/N),  D (H,) N(0, 1)
    A_init: eigenvalues of a glorot / halved_glorot / fixed (rescaled) N x N Gaussian matrix, identity (all ones), or
    uniform (|a| ~ U[0,1], phase ~ U[0, 2 pi), independent). Optimiser tag "recurrent" on {a, B}.
    forward: x (B, T, H) real, h0 (B, N) complex or None -> y (B, T, H) real, h_T (B, N) complex.
    """

    A_INITS = GLOROT_KINDS + ("identity", "uniform")

    def __init__(self, input_size: int, hidden_size: int, A_init: str = "glorot", scan: str = "auto"):
        super().__init__(input_size, hidden_size)
        if A_init not in self.A_INITS:
            raise ConfigError(f"diag_rnn A_init must be one of {', '.join(self.A_INITS)}, got {A_init!r}")
        if scan not in SCANS:
            raise ConfigError(f"scan must be one of {', '.join(SCANS)}, got {scan!r}")
        H, N = input_size, hidden_size
        self.output_size = H
        self.A_init, self.scan = A_init, scan
        if A_init == "identity":
            a = torch.ones(N, dtype=torch.complex128)
        elif A_init == "uniform":
            a = uniform_disk_polar(N)
        else:
            a = glorot_eigenvalues(N, A_init)
        self.a_re = nn.Parameter(a.real.float())
        self.a_im = nn.Parameter(a.imag.float())
        self.B_re = nn.Parameter(torch.randn(N, H) / math.sqrt(2 * H))
        self.B_im = nn.Parameter(torch.randn(N, H) / math.sqrt(2 * H))
        self.C = nn.Parameter(torch.randn(H, N) / math.sqrt(N))
        self.D = nn.Parameter(torch.randn(H))

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.complex(self.a_re, self.a_im)  # (N,) complex
        bx = torch.complex(x @ self.B_re.T, x @ self.B_im.T)  # (B, T, N) complex; x stays real
        h = linear_scan(a, bx, h0, self.scan)  # (B, T, N)
        y = h.real @ self.C.T + self.D * x  # Re(C h) = C Re(h) as C is real
        return y, h[:, -1]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"recurrent": [self.a_re, self.a_im, self.B_re, self.B_im]}
