"""Numbers the seed papers published, keyed by (task, model), for ``run_search.py compare``.

Values are in the units of this project's metric for the task (accuracies as fractions, BPC, perplexity, NLL).
``when`` restricts an entry to configurations with those task options (PTB char at bptt 150 vs 300).
Source lines refer to sections of PAPERS.md; entries marked UNCERTAIN there are not listed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Published:
    task: str
    model: str
    value: float
    metric: str
    source: str
    when: dict[str, Any] = field(default_factory=dict)


def _rru(task: str, metric: str, vals: tuple[float, float, float, float], scale: float = 1.0) -> list[Published]:
    models = ("rru", "gru", "lstm", "mogrifier_lstm")
    return [Published(task, m, v * scale, metric, "RRU README / arXiv 2108.00527 results table (PAPERS 4.5)")
            for m, v in zip(models, vals)]


PUBLISHED: list[Published] = [
    *_rru("jsb", "nll", (7.72, 8.20, 8.33, 8.18)),
    *_rru("nottingham", "nll", (2.92, 3.22, 3.25, 3.28)),
    *_rru("musedata", "nll", (7.03, 7.31, 7.24, 7.22)),
    *_rru("piano_midi", "nll", (7.38, 7.58, 7.54, 7.52)),
    *_rru("ptb_word", "ppl", (102.56, 122.21, 140.35, 126.88)),
    *_rru("ptb_char", "bpc", (1.27, 1.28, 1.34, 1.29)),
    *_rru("enwik8", "bpc", (1.37, 1.53, 1.49, 1.36)),
    *_rru("text8", "bpc", (1.35, 1.55, 1.44, 1.37)),
    *_rru("imdb_words", "accuracy", (87.20, 87.04, 85.89, 86.23), 0.01),
    *_rru("smnist_rru", "accuracy", (98.74, 98.36, 92.88, 98.14), 0.01),
    *_rru("psmnist_rru", "accuracy", (97.67, 98.68, 97.39, 97.81), 0.01),
    Published("scifar", "lru", 0.890, "accuracy", "LRU paper Table 3 (PAPERS 2.4)"),
    Published("listops", "lru", 0.602, "accuracy", "LRU paper Table 3 (PAPERS 2.4)"),
    Published("imdb_bytes", "lru", 0.894, "accuracy", "LRU paper Table 3, Text (PAPERS 2.4)"),
    Published("scifar", "linear_rnn", 0.722, "accuracy", "LRU paper Table 1, linear dense (PAPERS 1.1, 2.4)"),
    Published("listops", "linear_rnn", 0.504, "accuracy", "LRU paper Table 1, linear dense (PAPERS 1.1, 2.4)"),
    Published("imdb_bytes", "linear_rnn", 0.891, "accuracy", "LRU paper Table 1, linear dense (PAPERS 1.1, 2.4)"),
    Published("scifar", "diag_rnn", 0.865, "accuracy", "LRU paper Table 1, diagonal Re+Im (PAPERS 1.1, 2.4)"),
    Published("listops", "diag_rnn", 0.588, "accuracy", "LRU paper Table 1, diagonal Re+Im (PAPERS 1.1, 2.4)"),
    Published("imdb_bytes", "diag_rnn", 0.874, "accuracy", "LRU paper Table 1, diagonal Re+Im (PAPERS 1.1, 2.4)"),
    Published("smnist", "ur_lstm", 0.9928, "accuracy", "S4 paper Table 6 quoting UR-LSTM (PAPERS 3.3)"),
    Published("psmnist", "ur_lstm", 0.9696, "accuracy", "S4 paper Table 6 quoting UR-LSTM (PAPERS 3.3)"),
    Published("scifar", "ur_lstm", 0.7100, "accuracy", "S4 paper Table 6 quoting UR-LSTM (PAPERS 3.3)"),
    *[Published("ptb_char", m, v, "bpc", "nnRNN README, updated PTB runs, fixed ~1.32M params (PAPERS 5.6)",
                {"bptt": b}) for b, row in ((150, (2.89, 1.62, 1.43, 1.40)), (300, (2.90, 1.66, 1.44, 1.42)))
      for m, v in zip(("rnn", "rnn_orth", "exprnn", "nnrnn"), row)],
]


def published_for(task: str, model: str, config: dict[str, Any] | None = None) -> Published | None:
    config = config or {}
    for p in PUBLISHED:
        if p.task == task and p.model == model and all(config.get(k, v) == v for k, v in p.when.items()):
            return p
    return None
