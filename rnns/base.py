"""The one cell interface every recurrent layer implements.

Contract (batch first):
    forward(x: (B, T, D_in), h0=None) -> (y: (B, T, output_size), h_T)

``h_T`` is whatever the cell needs to continue (a tensor, or a tuple such as (h, c)); passing it back as ``h0``
continues the sequence, which is how truncated BPTT carries state across chunks. Two optional extras let a cell
talk to the optimiser and the loss without the trainer knowing its name:

- ``param_groups()`` returns ``{tag: [parameters]}``; :mod:`rnns.optim` maps each tag to learning-rate and
  weight-decay settings (``orth`` -> ``lr_orth``, ``tdecay`` -> weight decay ``Tdecay``, ``recurrent`` ->
  ``lr * lr_factor`` without weight decay, ``no_decay`` -> weight decay 0). Untagged parameters are ``default``.
- ``extra_loss()`` returns a scalar added to the task loss (nnRNN's delta penalty), or ``None``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

State = Any  # a tensor, or a tuple of tensors


class Cell(nn.Module):
    """Base class of every recurrent layer (see the module docstring for the contract)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            from .errors import ConfigError

            raise ConfigError(f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.output_size = int(hidden_size)  # a cell whose output width differs (LRU, RRU) overrides this

    def forward(self, x: torch.Tensor, h0: State = None) -> tuple[torch.Tensor, State]:  # pragma: no cover
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {}

    def extra_loss(self) -> torch.Tensor | None:
        return None


def detach_state(h: State) -> State:
    """Cut the graph behind a carried state (tensor or nested tuple) for truncated BPTT."""
    if h is None:
        return None
    if isinstance(h, torch.Tensor):
        return h.detach()
    return type(h)(detach_state(v) for v in h)


_PACKED = [0]  # depth of rnns.base.packed() contexts (a trial pack runs its members' models under torch.func.vmap)


class packed:
    """Context in which models run under ``torch.func.vmap`` over the members of a trial pack (``search.pack``).

    Inside it, :func:`use_reference` is true for every fast path that has not declared itself vmap-capable: custom
    autograd functions and TorchScript loops cannot be vmapped unless they carry a vmap rule. A fast path that has
    one asks ``use_reference(vmap_ok=True)`` and stays fast inside a pack."""

    def __enter__(self):
        _PACKED[0] += 1
        return self

    def __exit__(self, *exc):
        _PACKED[0] -= 1
        return False


def in_pack() -> bool:
    return _PACKED[0] > 0


def use_reference(vmap_ok: bool = False) -> bool:
    """True when ``RNNSWEEP_REFERENCE_CELLS=1``: cells run their slow reference path (a plain step loop with
    autograd) instead of their fast path. Tests and ``bench/bench_cells.py`` use it to compare the two.

    Also true inside :class:`packed` (a trial pack's vmap) unless the caller's fast path is vmap-capable
    (``vmap_ok=True``)."""
    import os

    if os.environ.get("RNNSWEEP_REFERENCE_CELLS", "") not in ("", "0"):
        return True
    return _PACKED[0] > 0 and not vmap_ok
