"""An rnnsweep plugin: a cell and a space of one's own, swept without forking the project.

    python run_search.py sweep --plugin docs/examples/my_cells.py --space mine/copy --samples 4
    python run_search.py spaces show mine/copy --plugin docs/examples/my_cells.py

The cell follows the contract of rnns/base.py: forward(x (B, T, D), h0) -> (y (B, T, H), h_T).
"""
import torch
from torch import nn

from rnns.base import Cell
from rnns.registry import register_cell
from spaces.base import Param, Space


@register_cell("leaky_rnn", paper="example", description="Elman RNN with a leaky state: h = (1-a) h + a tanh(Wx + Uh)")
class LeakyRNN(Cell):
    def __init__(self, input_size: int, hidden_size: int, leak: float = 0.5):
        super().__init__(input_size, hidden_size)
        if not 0.0 < leak <= 1.0:
            from rnns.errors import ConfigError

            raise ConfigError(f"leak must be in (0, 1], got {leak}")
        self.leak = float(leak)
        self.W = nn.Linear(input_size, hidden_size)
        self.U = nn.Linear(hidden_size, hidden_size, bias=False)
        nn.init.orthogonal_(self.U.weight)

    def forward(self, x, h0=None):
        h = x.new_zeros(x.shape[0], self.hidden_size) if h0 is None else h0
        wx = self.W(x)  # every step's input projection in one product
        ys = []
        for t in range(x.shape[1]):
            h = (1 - self.leak) * h + self.leak * torch.tanh(wx[:, t] + self.U(h))
            ys.append(h)
        return torch.stack(ys, 1), h


SPACES = (
    Space(name="mine/copy", paper="example", task="copy_nnrnn", models=("leaky_rnn",),
          params=(Param("lr", "loguniform", 1e-3, 3e-2), Param("leak", "uniform", 0.2, 1.0)),
          fixed={"optimizer": "rmsprop", "grad_clip": 1.0, "epochs": 2, "hidden_size": 32},
          task_options={"delay": 5, "onehot": True, "updates": 20, "batch_size": 10, "n_val": 50},
          budget=2, description="an own cell on a short copy task (plugin example)"),
)
