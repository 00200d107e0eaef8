"""expRNN: an RNN whose recurrent matrix is the exponential of a skew-symmetric matrix, hence orthogonal.

Paper: "Cheap Orthogonal Constraints in Neural Networks: A Simple Parametrization of the Orthogonal and Unitary
Group" (Lezcano-Casado & Martinez-Rubio, ICML 2019, arXiv 1901.08428), in the form the nnRNN and Stair code use
(PAPERS.md section 5.3). Row-vector convention, as that code:

    A = M - M^T                           M strictly upper triangular, its entries the parameter S (tag "orth",
                                          trained at lr_orth)
    W = expm(A)                           orthogonal, built once per forward (in float64, cast back)
    h_t = modReLU(U x_t + h_{t-1} W)      U (H, D) without bias

The parameter ``S`` holds only the H(H-1)/2 entries of the strict upper triangle (row-major order of
``torch.triu_indices(H, H, 1)``): the code stores a full H x H tensor whose lower half never matters, which would
make parameter counts (and so the equal-budget hidden sizes, 176 for expRNN at the copy task's 18.9K) wrong.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .base import use_reference
from .init import INPUT_INITS, SKEW_INITS, input_init, skew_init
from .registry import register_cell
from .rnn import ElmanForm, ModReLU, check_choice


def upper_from_vector(v: torch.Tensor, iu: torch.Tensor, n: int) -> torch.Tensor:
    """(n, n) strictly upper-triangular matrix with entries v (n(n-1)/2,) at iu = torch.triu_indices(n, n, 1)."""
    M = v.new_zeros(n, n)
    M[iu[0], iu[1]] = v  # index_put on a fresh tensor: differentiable in v
    return M


class _SkewExpm(torch.autograd.Function):
    """expm(A) of a real skew-symmetric A (float64) through the eigendecomposition of the Hermitian matrix -iA.

    -iA = Q diag(theta) Q^H, so expm(A) = Re(Q diag(e^{i theta}) Q^H). The gradient is the adjoint Frechet derivative
    L(A^T, G) by the Daleckii-Krein formula, Re(Q [(Q^H G Q) o Phi] Q^H) with
    Phi_jk = (e^{-i theta_j} - e^{-i theta_k}) / (-i (theta_j - theta_k))
           = e^{-i (theta_j + theta_k)/2} sinc((theta_j - theta_k)/2),
    written with the sinc so that equal or close eigenvalues need no special case. It reuses the forward's
    eigendecomposition: a few n x n products instead of torch's exponential of a 2n x 2n block matrix.
    """

    @staticmethod
    def forward(ctx, A: torch.Tensor) -> torch.Tensor:
        theta, Q = torch.linalg.eigh(A.to(torch.complex128) * (-1j))
        ctx.save_for_backward(theta, Q)
        return ((Q * torch.exp(1j * theta)) @ Q.mH).real

    @staticmethod
    @once_differentiable
    def backward(ctx, G: torch.Tensor) -> torch.Tensor:
        theta, Q = ctx.saved_tensors
        half_sum = 0.5 * (theta[:, None] + theta[None, :])
        diff = theta[:, None] - theta[None, :]
        phi = torch.exp(-1j * half_sum) * torch.sinc(diff / (2 * math.pi))  # torch.sinc(x) = sin(pi x) / (pi x)
        X = Q.mH @ G.to(Q.dtype) @ Q
        return (Q @ (X * phi) @ Q.mH).real


def matrix_exp(A: torch.Tensor) -> torch.Tensor:
    """expm(A) of a real skew-symmetric A (the only kind the orthogonal cells exponentiate), evaluated and
    differentiated in float64 whatever A's dtype, the result cast back to A's dtype.

    In float32, autograd through ``torch.linalg.matrix_exp`` gives gradients of the skew parameter about 2e-4
    relative off their float64 value (the original code's scipy/numpy Frechet derivative: ~3e-6); the H x H
    exponential is built once per forward, so doing it in float64 costs little, and the cast's backward brings the
    gradient back to float32 (docs/deviations/rnns-orthogonal.md). The fast path exponentiates through an
    eigendecomposition (:class:`_SkewExpm`), 3-4x cheaper forward + backward than ``torch.linalg.matrix_exp`` at
    H = 64-128; ``rnns.base.use_reference()`` selects ``torch.linalg.matrix_exp`` (in float64 too).
    """
    A64 = A.to(torch.float64)
    W = torch.linalg.matrix_exp(A64) if use_reference() else _SkewExpm.apply(A64)
    return W.to(A.dtype)


def skew_from_vector(v: torch.Tensor, iu: torch.Tensor, n: int) -> torch.Tensor:
    """A = M - M^T with M the strict upper triangle holding v: the skew matrix of an expRNN parameter."""
    M = upper_from_vector(v, iu, n)
    return M - M.t()


@register_cell("exprnn", paper="expRNN (Lezcano-Casado & Martinez-Rubio 2019, arXiv 1901.08428)")
class ExpRNNCell(ElmanForm):
    """expRNN, h_t = modReLU(U x_t + h_{t-1} expm(A)), A the skew matrix of parameter S (tag "orth").

    rinit: henaff | cayley | random | xavier, the skew matrix S starts from (see :func:`rnns.init.skew_init`).
    iinit: xavier | kaiming for U.
    """

    def __init__(self, input_size: int, hidden_size: int, rinit: str = "henaff", iinit: str = "xavier"):
        super().__init__(input_size, hidden_size)
        check_choice("rinit", rinit, SKEW_INITS)
        check_choice("iinit", iinit, INPUT_INITS)
        self.rinit, self.iinit = rinit, iinit
        self.U = nn.Linear(input_size, hidden_size, bias=False)
        self.register_buffer("triu_index", torch.triu_indices(hidden_size, hidden_size, 1), persistent=False)
        A0 = skew_init(rinit, hidden_size)
        self.S = nn.Parameter(A0[self.triu_index[0], self.triu_index[1]].clone())  # (H(H-1)/2,)
        self.phi = ModReLU(hidden_size)
        with torch.no_grad():
            self.U.weight.copy_(input_init(iinit, self.U.weight.shape))

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        return self.U(x)

    def recurrent_matrix(self) -> torch.Tensor:
        # The original keeps W as a separate tensor and maps dL/dW back to S by hand with the Frechet derivative
        # of expm. Autograd through torch.linalg.matrix_exp computes that same exact derivative, so S gets the
        # same gradient and no orthogonal_step is needed; the optimiser updates S and the next forward rebuilds W.
        return matrix_exp(self.skew())

    def skew(self) -> torch.Tensor:
        """A (H, H), the skew matrix whose exponential is W."""
        return skew_from_vector(self.S, self.triu_index, self.hidden_size)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"orth": [self.S]}
