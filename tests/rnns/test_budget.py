"""Hidden size for a parameter budget (the RRU paper's equal-parameter comparisons, arXiv 2108.00527 section 4.2)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from rnns.budget import hidden_for_budget, largest_hidden
from rnns.errors import ConfigError
from rnns.model import SequenceModel, count_parameters


def test_largest_hidden_with_a_callable():
    square = lambda h: nn.Linear(h, h)  # h^2 + h parameters
    assert largest_hidden(square, 110) == 10  # exactly on the budget fits
    assert largest_hidden(square, 109) == 9
    assert largest_hidden(square, 2) == 1
    with pytest.raises(ConfigError):
        largest_hidden(square, 1)
    with pytest.raises(ConfigError):
        largest_hidden(square, 0)


@pytest.mark.parametrize("cell,opts", [
    ("lstm", {"num_layers": 2}),
    ("ur_lstm", {}),
    ("rru", {"num_layers": 2, "out_size": 16, "middle": 1.5}),
    ("mogrifier_lstm", {"rank": 4, "embed_dim": 8, "token_input": True}),
    ("gru", {"block": "residual", "embed_dim": 16, "num_layers": 2}),
])
def test_hidden_for_budget_is_largest_fit(cell, opts):
    budget = 20_000
    h = hidden_for_budget(cell, 10, 5, "last", budget, **opts)

    def n(k):
        return count_parameters(SequenceModel(cell, 10, 5, "last", hidden_size=k, **opts))

    assert n(h) <= budget < n(h + 1)


def test_budget_errors_and_rng():
    with pytest.raises(ConfigError):
        hidden_for_budget("lstm", 10, 5, "last", 50)  # the decoder and one unit alone need more
    torch.manual_seed(0)
    a = torch.rand(3)
    torch.manual_seed(0)
    hidden_for_budget("rru", 10, 5, "last", 5_000, hidden_size=999)
    assert torch.equal(torch.rand(3), a)  # solving does not move the global random stream
