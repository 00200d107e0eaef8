"""Initialisers of the orthogonal / non-normal RNN papers, as pure functions.

Papers: "Cheap Orthogonal Constraints in Neural Networks: A Simple Parametrization of the Orthogonal and Unitary
Group" (Lezcano-Casado & Martinez-Rubio, ICML 2019, arXiv 1901.08428) and "Non-normal Recurrent Neural Network
(nnRNN): learning long time dependencies while improving expressivity with transient dynamics" (Kerg et al.,
NeurIPS 2019, arXiv 1905.12080); the skew initialisations come from their code (PAPERS.md section 5.3).

Every function draws from ``generator`` when one is given and from the global torch RNG otherwise, so
``torch.manual_seed`` makes a cell's initialisation reproducible. Skew and orthogonal matrices are computed in
float64 (``logm`` / ``matrix_exp`` lose orthogonality in float32) and cast to ``dtype`` at the end.

    glorot_normal(shape)       (rows, cols)  N(0, 2 / (fan_in + fan_out))             "xavier"
    kaiming_normal(shape)      (rows, cols)  N(0, 2 / fan_in), fan_in = cols            "kaiming"
    henaff_skew(n)             (n, n)        2x2 skew blocks, s ~ U(-pi, 0)
    cayley_skew(n)             (n, n)        2x2 skew blocks, s = -tan(u / 2), u ~ U(0, pi/2)
    haar_orthogonal(n)         (n, n)        Haar-random Q in SO(n)
    skew_log(Q)                (n, n)        real skew A with expm(A) = Q
    skew_init(name, n)         (n, n)        the skew matrix A of a named rinit
    orthogonal_init(name, n)   (n, n)        expm(A) of a named orthogonal rinit
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import scipy.linalg
import torch

from .errors import unknown

# rinit names whose matrix is a skew-symmetric A (expRNN / nnRNN parametrise W = expm(A)); "xavier" is the
# Glorot-normal matrix used as the skew parameter itself
SKEW_INITS = ("henaff", "cayley", "random", "xavier")
# rinit names that give an orthogonal recurrent matrix to a plain RNN
ORTHOGONAL_INITS = ("henaff", "cayley", "random")
INPUT_INITS = ("xavier", "kaiming")
# nnRNN / srnn_nn ``input_init``: "iinit" applies the iinit above; "torch_default" keeps PyTorch's default nn.Linear
# init of U (kaiming_uniform with a = sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))), which is what the nnRNN and
# Stair code ran: its nnRNN cell stores the input initialiser and never applies it
INPUT_INIT_MODES = ("iinit", "torch_default")

_F64 = torch.float64


def _dtype(dtype: torch.dtype | None) -> torch.dtype:
    return torch.get_default_dtype() if dtype is None else dtype


def glorot_normal(shape: Sequence[int], generator: torch.Generator | None = None,
                  dtype: torch.dtype | None = None) -> torch.Tensor:
    """Glorot (Xavier) normal for a weight of shape (fan_out, fan_in): std = sqrt(2 / (fan_in + fan_out))."""
    fan_out, fan_in = int(shape[0]), int(shape[1])
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return torch.randn(fan_out, fan_in, generator=generator, dtype=_dtype(dtype)) * std


def kaiming_normal(shape: Sequence[int], generator: torch.Generator | None = None,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """He (Kaiming) normal for a weight of shape (fan_out, fan_in): std = sqrt(2 / fan_in).

    This is what ``nn.init.kaiming_normal_`` does with its defaults (fan_in mode, ReLU gain), which is what the
    nnRNN/Stair code calls for ``--iinit kaiming``.
    """
    fan_out, fan_in = int(shape[0]), int(shape[1])
    return torch.randn(fan_out, fan_in, generator=generator, dtype=_dtype(dtype)) * math.sqrt(2.0 / fan_in)


def input_init(name: str, shape: Sequence[int], generator: torch.Generator | None = None,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """The input-weight initialiser named by ``iinit`` ("xavier" or "kaiming")."""
    if name == "xavier":
        return glorot_normal(shape, generator, dtype)
    if name == "kaiming":
        return kaiming_normal(shape, generator, dtype)
    raise unknown("iinit", name, INPUT_INITS)


def block_skew(s: torch.Tensor, n: int) -> torch.Tensor:
    """Skew matrix (n, n) with blocks [[0, s_i], [-s_i, 0]] at rows/cols (2i, 2i+1); s has floor(n/2) entries.

    For odd n the last row and column stay zero.
    """
    A = torch.zeros(n, n, dtype=s.dtype)
    i = torch.arange(0, 2 * s.numel(), 2)
    A[i, i + 1] = s
    A[i + 1, i] = -s
    return A


def henaff_skew(n: int, generator: torch.Generator | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Henaff et al. (2016) skew init: 2x2 blocks with s_i ~ U(-pi, 0).

    U(-pi, 0) is the range of the nnRNN/Stair copy of expRNN's initialiser; lezcano/expRNN at HEAD draws
    s_i ~ U(-pi, pi). Both give expm(A) = blockdiag of rotations by s_i; the half range only fixes their sense.
    """
    s = -math.pi * torch.rand(n // 2, generator=generator, dtype=_F64)
    return block_skew(s, n).to(_dtype(dtype))


def cayley_skew(n: int, generator: torch.Generator | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Cayley init (Helfrich et al. 2018) as expRNN uses it: s_i = -tan(u_i / 2), u_i ~ U(0, pi/2), so s_i in (-1, 0].

    The code writes s = -sqrt((1 - cos u) / (1 + cos u)), which is -tan(u/2) on [0, pi/2).
    """
    u = (math.pi / 2) * torch.rand(n // 2, generator=generator, dtype=_F64)
    return block_skew(-torch.tan(u / 2), n).to(_dtype(dtype))


def haar_orthogonal(n: int, generator: torch.Generator | None = None,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """Haar-random Q in SO(n): QR of a Gaussian matrix with the signs of diag(R) moved into Q (Mezzadri 2007).

    A draw with det -1 is redrawn (as the code does), which conditions Haar O(n) on SO(n): only SO(n) has a
    real matrix logarithm, and expRNN / nnRNN need A = log Q.
    """
    while True:
        Z = torch.randn(n, n, generator=generator, dtype=_F64)
        Q, R = torch.linalg.qr(Z)
        # without the sign fix QR's convention biases the distribution away from Haar
        Q = Q * torch.sign(torch.diagonal(R)).unsqueeze(0)
        if torch.linalg.det(Q) > 0:
            return Q.to(_dtype(dtype))


def skew_log(Q: torch.Tensor) -> torch.Tensor:
    """Real skew-symmetric A with expm(A) = Q, for Q in SO(n) (real part of the principal logm).

    The real part is taken because scipy returns a complex array with round-off imaginary parts; the result is
    re-symmetrised so that A is skew to machine precision.
    """
    L = scipy.linalg.logm(Q.detach().to(_F64).cpu().numpy())
    A = torch.as_tensor(np.real(L), dtype=_F64)
    return (0.5 * (A - A.T)).to(Q.dtype)


def skew_init(name: str, n: int, generator: torch.Generator | None = None,
              dtype: torch.dtype | None = None) -> torch.Tensor:
    """The skew parameter A (n, n) of expRNN / nnRNN for ``rinit`` = henaff | cayley | random | xavier.

    "xavier" is Glorot normal applied to the matrix itself; only its strict upper triangle matters once it is
    read as a skew parameter (A = triu(G, 1) - triu(G, 1)^T), so its skew part is returned.
    """
    if name == "henaff":
        return henaff_skew(n, generator, dtype)
    if name == "cayley":
        return cayley_skew(n, generator, dtype)
    if name == "random":
        return skew_log(haar_orthogonal(n, generator, _F64)).to(_dtype(dtype))
    if name == "xavier":
        G = torch.triu(glorot_normal((n, n), generator, _F64), diagonal=1)
        return (G - G.T).to(_dtype(dtype))
    raise unknown("rinit", name, SKEW_INITS)


def orthogonal_init(name: str, n: int, generator: torch.Generator | None = None,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """An orthogonal (n, n) matrix for ``rinit`` = henaff | cayley | random: expm of that rinit's skew matrix.

    "random" returns the Haar draw itself (expm(logm(Q)) = Q, without the round trip).
    """
    if name == "random":
        return haar_orthogonal(n, generator, dtype)
    if name not in ORTHOGONAL_INITS:
        raise unknown("orthogonal rinit", name, ORTHOGONAL_INITS)
    return torch.linalg.matrix_exp(skew_init(name, n, generator, _F64)).to(_dtype(dtype))
