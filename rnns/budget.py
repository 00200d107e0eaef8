"""Hidden size for a parameter budget: compare models at equal parameter count.

The RRU paper (Zakovskis et al., "Gates are not what you need in RNNs", arXiv 2108.00527, PAPERS.md section 4.2)
fixes a budget ``number_of_parameters`` and picks the largest number of units that fits
(``find_optimal_hidden_units``). Here the count is the real one of :class:`rnns.model.SequenceModel` (or of
any model a callable builds), found by binary search, so no per-cell formula has to be kept in sync.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .errors import ConfigError
from .model import SequenceModel, count_parameters

MAX_HIDDEN = 1 << 20


def _count(build: Callable[[int], nn.Module], hidden: int) -> int:
    # build on the meta device: shapes only, no memory and no init cost even for very large models;
    # a cell whose init needs real numbers (numpy, scipy) falls back to an ordinary build
    # fork_rng: solving for the size must not shift the random stream the real model is then built from
    with torch.random.fork_rng(devices=[]):
        try:
            with torch.device("meta"):
                return count_parameters(build(hidden))
        except ConfigError:
            raise
        except Exception:
            return count_parameters(build(hidden))


def largest_hidden(build: Callable[[int], nn.Module], budget: int, *, max_hidden: int = MAX_HIDDEN) -> int:
    """The largest hidden size h with ``count_parameters(build(h)) <= budget``.

    Assumes the count grows with h (true of every registered cell). ConfigError if even h = 1 is over budget.
    """
    if not budget > 0:
        raise ConfigError(f"parameter budget must be positive, got {budget}")
    n1 = _count(build, 1)
    if n1 > budget:
        raise ConfigError(f"even hidden_size 1 needs {n1} parameters, over the budget of {budget}; raise the budget")
    lo, hi = 1, 2  # invariant: lo fits; find an hi that does not by doubling, then bisect
    while _count(build, hi) <= budget:
        lo, hi = hi, hi * 2
        if hi > max_hidden:
            raise ConfigError(f"a budget of {budget} parameters allows hidden_size above {max_hidden}; lower it")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _count(build, mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def hidden_for_budget(cell: str, input_size: int, output_size: int, readout: str, budget: int,
                      **model_opts: Any) -> int:
    """Largest ``hidden_size`` whose ``SequenceModel(cell, input_size, output_size, readout, ...)`` fits ``budget``.

    ``model_opts`` are the other model and cell options (num_layers, embed_dim, token_input, middle, ...);
    a ``hidden_size`` among them is ignored, since it is what is solved for.
    """
    model_opts.pop("hidden_size", None)

    def build(h: int) -> nn.Module:
        return SequenceModel(cell, input_size, output_size, readout, hidden_size=h, **model_opts)

    return largest_hidden(build, budget)
