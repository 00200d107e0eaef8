"""Linear Recurrent Unit.

"Resurrecting Recurrent Neural Networks for Long Sequences" (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu, De,
ICML 2023, arXiv 2303.06349), following NicolasZucchet/minimal-LRU (PAPERS.md section 2.1), with the ``A_init``
options of "Revisiting Glorot Initialization for Long-Range Linear Recurrences" (arXiv 2505.19827, section 1.3).

With input u_k in R^H (H = input_size = output_size) and complex state x_k in C^N (N = hidden_size):

    lambda_j = exp(-exp(nu_log_j) + i exp(theta_log_j))          |lambda_j| < 1 for every nu_log (stable by design)
    x_k      = lambda * x_{k-1} + exp(gamma_log) * (B u_k)       B = B_re + i B_im, x_{-1} = 0
    y_k      = Re(C x_k) + D * u_k                               C = C_re + i C_im

All parameters are real tensors; complex numbers exist only inside ``forward``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .base import Cell
from .errors import ConfigError
from .linear import GLOROT_KINDS, glorot_eigenvalues
from .registry import register_cell
from .scan import SCANS, linear_scan

# An eigenvalue init can put |lambda| >= 1, which exp(-exp(nu_log)) cannot represent (nu_log = ln(-ln|lambda|) is
# undefined): clip the modulus just inside the unit circle. Phases of exactly 0 (positive real eigenvalues) have no
# theta_log = ln(phase) either: floor them at a tiny positive angle.
_MAX_MODULUS = 1 - 1e-6
_MIN_PHASE = 1e-6
# keep uniform draws off exactly 0, where ln() of the ring and phase formulas is -inf (probability ~2^-53 per entry)
_TINY = 1e-12


def ring_init(n: int, r_min: float, r_max: float, max_phase: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(nu_log, theta_log), each (n,) float64: |lambda| area-uniform on [r_min, r_max], phase ~ U[0, max_phase].

        nu = -1/2 ln(u1 (r_max^2 - r_min^2) + r_min^2),  nu_log = ln nu          (paper Lemma 2)
        theta_log = ln(max_phase u2)                                            u1, u2 ~ U[0, 1] independent
    """
    u1 = torch.rand(n, dtype=torch.float64).clamp_min(_TINY)
    u2 = torch.rand(n, dtype=torch.float64).clamp_min(_TINY)
    nu = -0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2)
    return torch.log(nu), torch.log(max_phase * u2)


def eigen_init(lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(nu_log, theta_log), each (n,) float64, representing the given complex eigenvalues (n,) in the LRU's form.

    The phase is taken in [0, 2 pi) (the eigenvalue itself), floored at ``_MIN_PHASE``; the modulus is clipped to
    ``_MAX_MODULUS``. The Rescaled repository instead uses ln(angle + pi), i.e. it negates every eigenvalue.
    """
    modulus = lam.abs().clamp(_TINY, _MAX_MODULUS)
    phase = torch.remainder(lam.angle(), 2 * math.pi).clamp_min(_MIN_PHASE)
    return torch.log(-torch.log(modulus)), torch.log(phase)


_PAPER = "Orvieto et al., Resurrecting Recurrent Neural Networks for Long Sequences, arXiv 2303.06349"


@register_cell("lru", paper=_PAPER)
class LRU(Cell):
    """Linear Recurrent Unit (minimal-LRU), diagonal complex recurrence with exponential parameterisation.

    Parameters (all real):
        nu_log, theta_log, gamma_log (N,)   lambda's log-log modulus and log phase; gamma_log = ln sqrt(1 - |lambda|^2)
        B_re, B_im (N, H)                   N(0, 1/(2H)) each
        C_re, C_im (H, N)                   N(0, 1/N) each (minimal-LRU; the Rescaled repo uses 1/(2N))
        D (H,)                              N(0, 1)
    Options:
        r_min, r_max, max_phase   ring init of lambda (minimal-LRU defaults 0, 1, 6.28); used by A_init "ring" only
        A_init   "ring", or lambda = eigenvalues of a glorot / halved_glorot / fixed (rescaled Glorot) N x N matrix
        scan     a key of rnns.scan.SCANS: "auto" (default: the explicit-BPTT loop on CPU, the two-level scan on an
                 accelerator), "parallel", "log_depth" or "loop"
    Optimiser tag "recurrent" on {nu_log, theta_log, gamma_log, B_re, B_im}; C, D take the default group.
    forward: x (B, T, H) real, h0 (B, N) complex or None -> y (B, T, H) real, h_T (B, N) complex.
    """

    A_INITS = ("ring",) + GLOROT_KINDS

    def __init__(self, input_size: int, hidden_size: int, r_min: float = 0.0, r_max: float = 1.0,
                 max_phase: float = 6.28, A_init: str = "ring", scan: str = "auto"):
        super().__init__(input_size, hidden_size)
        if A_init not in self.A_INITS:
            raise ConfigError(f"lru A_init must be one of {', '.join(self.A_INITS)}, got {A_init!r}")
        if scan not in SCANS:
            raise ConfigError(f"scan must be one of {', '.join(SCANS)}, got {scan!r}")
        if not (0.0 <= r_min <= r_max <= 1.0) or r_min == 1.0 or r_max == 0.0:
            # |lambda| = 1 or 0 for every mode leaves nu_log = ln(-ln|lambda|) undefined
            raise ConfigError(f"lru needs 0 <= r_min <= r_max <= 1 with r_min < 1 and r_max > 0, "
                              f"got r_min={r_min}, r_max={r_max}")
        if not max_phase > 0:
            raise ConfigError(f"lru max_phase must be positive, got {max_phase}")
        H, N = input_size, hidden_size
        self.output_size = H  # the LRU maps H -> H; N is the state width
        self.r_min, self.r_max, self.max_phase = float(r_min), float(r_max), float(max_phase)
        self.A_init, self.scan = A_init, scan
        if A_init == "ring":
            nu_log, theta_log = ring_init(N, self.r_min, self.r_max, self.max_phase)
        else:
            nu_log, theta_log = eigen_init(glorot_eigenvalues(N, A_init))
        # gamma = sqrt(1 - |lambda|^2) with |lambda|^2 = exp(-2 nu); expm1 keeps it accurate when |lambda| -> 1
        gamma_log = 0.5 * torch.log(-torch.expm1(-2 * torch.exp(nu_log)))
        self.nu_log = nn.Parameter(nu_log.float())
        self.theta_log = nn.Parameter(theta_log.float())
        self.gamma_log = nn.Parameter(gamma_log.float())
        self.B_re = nn.Parameter(torch.randn(N, H) / math.sqrt(2 * H))
        self.B_im = nn.Parameter(torch.randn(N, H) / math.sqrt(2 * H))
        self.C_re = nn.Parameter(torch.randn(H, N) / math.sqrt(N))
        self.C_im = nn.Parameter(torch.randn(H, N) / math.sqrt(N))
        self.D = nn.Parameter(torch.randn(H))

    def eigenvalues(self) -> torch.Tensor:
        """lambda (N,) complex: exp(-exp(nu_log)) * exp(i exp(theta_log))."""
        modulus = torch.exp(-torch.exp(self.nu_log))
        phase = torch.exp(self.theta_log)
        return torch.complex(modulus * torch.cos(phase), modulus * torch.sin(phase))

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        lam = self.eigenvalues()
        g = torch.exp(self.gamma_log).unsqueeze(-1)  # (N, 1): gamma normalisation, folded into B's rows
        bu = torch.complex(x @ (g * self.B_re).T, x @ (g * self.B_im).T)  # (B, T, N); x stays real
        h = linear_scan(lam, bu, h0, self.scan)  # (B, T, N) complex
        y = h.real @ self.C_re.T - h.imag @ self.C_im.T + self.D * x  # Re(C h) + D u, (B, T, H)
        return y, h[:, -1]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"recurrent": [self.nu_log, self.theta_log, self.gamma_log, self.B_re, self.B_im]}
