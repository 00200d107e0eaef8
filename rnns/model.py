"""One cell-agnostic sequence model: encoder, stacked cells (or residual blocks), readout.

    x (B, T, D_in) or tokens (B, T)
      -> encoder: Embedding(vocab, embed_dim) for tokens, Linear(D_in, embed_dim) when embed_dim is set
      -> block "stack":    cell_1 -> dropout -> cell_2 ... -> cell_L            (the classic RNN papers)
                           (no dropout between layers for a cell with its own ``dropout`` option: the gated cells
                            and RRU drop inside the cell, as the RRU paper's code, and nowhere else)
         block "residual": L x [ u + Drop(GLU(Drop(GELU(cell(Norm(u)))))) ]     (minimal-LRU, pre-norm;
                           GELU the tanh approximation and LayerNorm eps 1e-6, as Flax)
      -> readout: last step, mean over time, or every step
      -> decoder Linear(width, output_size)

The residual path follows NicolasZucchet/minimal-LRU (PAPERS.md 2.2) for "Resurrecting Recurrent Neural Networks for
Long Sequences" (arXiv 2303.06349); ``second_gelu`` adds the extra GELU of the Rescaled Glorot repository (arXiv
2505.19827, PAPERS.md 1.3). Its Linear layers (encoder, GLU, decoder) use Flax's default init, as those JAX codes do.

The model never looks at the cell's name: optimiser groups and extra losses come from the cells' own
``param_groups()`` / ``extra_loss()`` (see :mod:`rnns.base`).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .base import Cell, State
from .errors import ConfigError
from .registry import build_cell, get_cell

MODEL_OPTIONS = ("hidden_size", "num_layers", "embed_dim", "dropout", "block", "norm", "second_gelu")

# Flax BatchNorm's momentum 0.99 weights the old running average; PyTorch's momentum weights the new batch
_FLAX_BN_MOMENTUM = 1 - 0.99
_FLAX_LN_EPS = 1e-6
# Flax's nn.gelu defaults to the tanh approximation, which minimal-LRU and the Rescaled Glorot code call
GELUS = ("tanh", "none")  # F.gelu's ``approximate``: "none" is the exact erf GELU


def lecun_normal_(layer: nn.Module) -> nn.Module:
    """Flax ``Dense`` default init in place: kernel truncated normal at +-2 sd with variance 1/fan_in, zero bias.

    (PyTorch's Linear default is uniform with variance 1/(3 fan_in); the 0.8796 factor undoes the truncation's
    shrinkage.) An Embedding gets the same table as a Dense layer applied to one-hot tokens, fan_in = vocabulary size;
    the JAX codes encode tokens that way.
    """
    fan_in = layer.in_features if isinstance(layer, nn.Linear) else layer.num_embeddings
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(layer.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


class _Norm(nn.Module):
    """BatchNorm pooled over batch and time, LayerNorm over features, or identity. Input (B, T, H)."""

    def __init__(self, kind: str, width: int):
        super().__init__()
        if kind not in ("batch", "layer", "none"):
            raise ConfigError(f"norm must be batch, layer or none, got {kind!r}")
        self.kind = kind
        if kind == "batch":
            self.norm: nn.Module = nn.BatchNorm1d(width, momentum=_FLAX_BN_MOMENTUM)
        else:
            # Flax LayerNorm's epsilon is 1e-6 (torch's default 1e-5); Flax BatchNorm's is 1e-5, as torch's
            self.norm = nn.LayerNorm(width, eps=_FLAX_LN_EPS) if kind == "layer" else nn.Identity()

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if self.kind == "batch":
            return self.norm(u.transpose(1, 2)).transpose(1, 2)  # stats over (B, T) per feature
        return self.norm(u)


class ResidualBlock(nn.Module):
    """Pre-norm block of minimal-LRU: out = u + Drop(GLU(Drop(GELU(cell(Norm(u)))))), u (B, T, width).

    GLU(v) = W1 v * sigmoid(W2 v) with two width -> width Linear layers with bias. ``second_gelu`` applies GELU once
    more after the first dropout, as the Rescaled Glorot repository's block does. GELU is Flax's default, the tanh
    approximation 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))), as both JAX codes run it; ``gelu="none"`` gives
    the exact erf form. LayerNorm uses Flax's epsilon 1e-6 (docs/deviations/rnns-linear.md).
    """

    def __init__(self, cell: Cell, width: int, norm: str, dropout: float, second_gelu: bool = False,
                 gelu: str = "tanh"):
        super().__init__()
        if gelu not in GELUS:
            raise ConfigError(f"gelu must be one of {', '.join(GELUS)}, got {gelu!r}")
        self.gelu = gelu
        self.norm = _Norm(norm, width)
        self.cell = cell
        # a cell whose output is not the model width (a plain RNN inside a residual block) is projected back
        self.proj = nn.Identity() if cell.output_size == width else lecun_normal_(nn.Linear(cell.output_size, width))
        self.glu_a = lecun_normal_(nn.Linear(width, width))
        self.glu_b = lecun_normal_(nn.Linear(width, width))
        self.second_gelu = bool(second_gelu)
        # one dropout mask per sequence and feature, shared over time (as in minimal-LRU)
        self.drop = nn.Dropout1d(dropout) if dropout > 0 else nn.Identity()

    def _drop(self, v: torch.Tensor) -> torch.Tensor:
        # Dropout1d zeroes whole channels of (B, C, L): with C = features, a mask per (sequence, feature)
        return self.drop(v.transpose(1, 2)).transpose(1, 2) if isinstance(self.drop, nn.Dropout1d) else v

    def forward(self, u: torch.Tensor, h0: State = None) -> tuple[torch.Tensor, State]:
        v, h = self.cell(self.norm(u), h0)
        v = self._drop(F.gelu(self.proj(v), approximate=self.gelu))
        if self.second_gelu:
            v = F.gelu(v, approximate=self.gelu)
        v = self.glu_a(v) * torch.sigmoid(self.glu_b(v))
        return u + self._drop(v), h


class SequenceModel(nn.Module):
    def __init__(self, cell: str, input_size: int, output_size: int, readout: str, *, token_input: bool = False,
                 hidden_size: int = 128, num_layers: int = 1, embed_dim: int | None = None, dropout: float = 0.0,
                 block: str = "stack", norm: str = "none", second_gelu: bool = False, **cell_opts: Any):
        super().__init__()
        if readout not in ("last", "mean", "all"):
            raise ConfigError(f"readout must be last, mean or all, got {readout!r}")
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        if block not in ("stack", "residual"):
            raise ConfigError(f"block must be stack or residual, got {block!r}")
        if second_gelu and block != "residual":
            raise ConfigError("second_gelu applies to block 'residual' only")
        if token_input and not embed_dim:
            raise ConfigError("a token task needs embed_dim (the embedding width)")
        if block == "residual" and not embed_dim:
            raise ConfigError("block 'residual' needs embed_dim (the model width H)")
        get_cell(cell)  # fail early on an unknown name
        self.readout = readout
        self.block = block
        if token_input:
            self.encoder: nn.Module = nn.Embedding(input_size, embed_dim)
        elif embed_dim:
            self.encoder = nn.Linear(input_size, embed_dim)
        else:
            self.encoder = nn.Identity()
        width = embed_dim or input_size
        layers = []
        # a cell with its own dropout (the gated cells' candidate, RRU's inner layer) takes the model's `dropout`
        # and, in a stack, gets none between layers (the RRU paper's code: dropout inside every cell, none between)
        own_dropout = "dropout" in get_cell(cell).options()
        for _ in range(num_layers):
            shared = {"dropout": dropout} if own_dropout else {}
            c = build_cell(cell, width, hidden_size, **shared, **cell_opts)
            if block == "residual":
                layers.append(ResidualBlock(c, width, norm, dropout, second_gelu))
            else:
                layers.append(c)
                width = c.output_size
        self.layers = nn.ModuleList(layers)
        stacked_dropout = dropout > 0 and block == "stack" and not own_dropout
        self.between = nn.Dropout(dropout) if stacked_dropout else nn.Identity()
        self.decoder = nn.Linear(width, output_size)
        if block == "residual":
            # the JAX codes' Dense layers; the stack block keeps PyTorch defaults, as the classic RNN papers' code did
            for lin in (self.encoder, self.decoder):
                if isinstance(lin, (nn.Linear, nn.Embedding)):
                    lecun_normal_(lin)

    def cells(self) -> list[Cell]:
        return [m for m in self.modules() if isinstance(m, Cell)]

    def forward(self, x: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        u = self.encoder(x)
        new_state = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                u = self.between(u)
            u, h = layer(u, None if state is None else state[i])
            new_state.append(h)
        if self.readout == "last":
            u = u[:, -1]
        elif self.readout == "mean":
            u = u.mean(dim=1)
        return self.decoder(u), new_state

    def extra_loss(self) -> torch.Tensor | None:
        terms = [t for t in (c.extra_loss() for c in self.cells()) if t is not None]
        return torch.stack([t.reshape(()) for t in terms]).sum() if terms else None

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """{tag: params}; every parameter appears exactly once, untagged ones under 'default'."""
        groups: dict[str, list[nn.Parameter]] = {}
        seen: set[int] = set()
        for c in self.cells():
            for tag, ps in c.param_groups().items():
                for p in ps:
                    if id(p) not in seen:
                        seen.add(id(p))
                        groups.setdefault(tag, []).append(p)
        rest = [p for p in self.parameters() if id(p) not in seen]
        if rest:
            groups.setdefault("default", []).extend(rest)
        return groups


def split_model_options(cell: str, opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options the model or the cell takes, the rest) from a flat configuration."""
    known = set(MODEL_OPTIONS) | set(get_cell(cell).options())
    return {k: v for k, v in opts.items() if k in known}, {k: v for k, v in opts.items() if k not in known}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
