"""Synthetic tasks generated on the training device from a seed, with fixed validation and test sets.

Four mutually incompatible copying-memory tasks exist in the seed papers (PAPERS.md section 6.5); each is its own
task here so that results of one are never compared with another:

| task        | input                               | length     | scored                    | constant baseline      |
|-------------|-------------------------------------|------------|---------------------------|------------------------|
| copy_nnrnn  | 10 symbols, delay-1 blanks, cue 9   | delay + 20 | CE over all steps         | 10 ln 8 / (delay + 20) |
| copy_exprnn | 10 symbols, lag blanks, marker 9    | lag + 20   | CE over all steps         | 10 ln 8 / (lag + 20)   |
| copy_urlstm | 10 symbols, lag blanks, 10 cues 9   | lag + 20   | CE over the last 10 steps | ln 8                   |
| copy_lru    | 20 7-bit patterns, pad 7, marker    | 48         | bitwise CE, last 20 steps | ln 2 per bit           |

The adding problem (UR-LSTM, PAPERS.md 3.2) regresses the sum of two marked values; predicting their mean sum 1
scores an MSE of about 1/6.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from rnns.errors import ConfigError

from .base import Batch, Task, TaskSpec, register_task, require_test
from .objectives import MSE, MaskedBitCE, MaskedStepCE, StepCE

# fixed offsets so that the validation and test sets never coincide with any training stream
_VAL_OFFSET, _TEST_OFFSET = 10_000_019, 20_000_033


def _gen(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed) % (2**63))
    return g


class StreamTask(Task):
    """Fresh training batches every update (``updates`` per reported epoch); fixed val/test sets."""

    def __init__(self, spec, objective, make, *, seed, device, batch_size, updates, n_val, n_test, allow_test):
        super().__init__(spec, objective)
        self.make, self.seed, self.device = make, seed, device
        self.batch_size, self.updates = batch_size, updates
        self.n_val, self.n_test, self.allow_test = n_val, n_test, allow_test
        self._fixed: dict[str, Batch] = {}

    def _fixed_set(self, split: str) -> Batch:
        if split not in self._fixed:
            n, off = (self.n_val, _VAL_OFFSET) if split == "val" else (self.n_test, _TEST_OFFSET)
            self._fixed[split] = self.make(n, _gen(self.seed + off, self.device))
        return self._fixed[split]

    def batches(self, split: str, epoch: int = 0) -> Iterator[Batch]:
        if split == "train":
            g = _gen(self.seed * 1_000_003 + epoch, self.device)
            for _ in range(self.updates):
                yield self.make(self.batch_size, g)
            return
        if split == "test":
            require_test(self.allow_test, self.spec.name)
        elif split != "val":
            raise ValueError(f"unknown split {split!r}")
        full = self._fixed_set(split)
        bs = max(self.batch_size, 256)
        for i in range(0, full.x.shape[0], bs):
            yield Batch(*(None if t is None else t[i:i + bs] for t in full))


def _positive(name: str, **vals: int) -> None:
    for k, v in vals.items():
        if int(v) != v or v <= 0:
            raise ConfigError(f"task {name!r}: {k} must be a positive integer, got {v}")


def copy_nnrnn_batch(n: int, g: torch.Generator, *, delay: int, onehot: bool, labels: int = 8, length: int = 10):
    """nnRNN/Stair copying memory: ``length`` symbols in 1..labels, delay-1 blanks, the cue 9, ``length`` blanks.

    Sequence length delay + 2*length (= T + 20). Targets: delay + length blanks, then the symbols.
    """
    dev = g.device
    T = delay + 2 * length
    sym = torch.randint(1, labels + 1, (n, length), generator=g, device=dev)
    x = torch.zeros(n, T, dtype=torch.long, device=dev)
    x[:, :length] = sym
    x[:, length + delay - 1] = labels + 1  # the cue (9 with 8 labels)
    y = torch.zeros(n, T, dtype=torch.long, device=dev)
    y[:, -length:] = sym
    xin = torch.nn.functional.one_hot(x, labels + 2).float() if onehot else x.unsqueeze(-1).float()
    return Batch(xin, y)


def copy_baseline_loss(delay: int, labels: int = 8, length: int = 10) -> float:
    """Loss of the best constant strategy (blanks, then uniform over the symbols): length*ln(labels)/(T+2*length)."""
    return length * math.log(labels) / (delay + 2 * length)


@register_task("copy_nnrnn", paper="nnRNN (Kerg et al. 2019) / Stair RNN")
def copy_nnrnn(*, data_dir, seed, device, allow_test, delay: int = 200, onehot: bool = False, batch_size: int = 10,
               updates: int = 100, n_val: int = 1000, n_test: int = 1000) -> Task:
    """Copying memory of nnRNN/Stair: delay T, scalar or one-hot input, CE over all T+20 steps, accuracy on the last 10."""
    _positive("copy_nnrnn", delay=delay, batch_size=batch_size, updates=updates, n_val=n_val, n_test=n_test)
    spec = TaskSpec("copy_nnrnn", "nnrnn", input_size=10 if onehot else 1, output_size=9, seq_len=delay + 20,
                    readout="all", metric="loss", mode="min", budget_unit="updates",
                    description=f"copy, delay {delay}; constant baseline loss {copy_baseline_loss(delay):.4f}")
    make = lambda n, g: copy_nnrnn_batch(n, g, delay=delay, onehot=bool(onehot))  # noqa: E731
    return StreamTask(spec, StepCE(acc_last=10), make, seed=seed, device=device, batch_size=batch_size,
                      updates=updates, n_val=n_val, n_test=n_test, allow_test=allow_test)


def copy_lru_batch(n: int, g: torch.Generator, *, pattern: int = 20, pad: int = 7, bits: int = 7):
    """minimal-LRU copy: ``pattern`` random 7-bit vectors, ``pad`` blanks, a marker on channel 7, then the window.

    Length 2*pattern + pad + 1 (= 48). Targets are the patterns at the last ``pattern`` steps; mask marks them.
    """
    dev = g.device
    T = 2 * pattern + pad + 1
    pat = torch.randint(0, 2, (n, pattern, bits), generator=g, device=dev)
    x = torch.zeros(n, T, bits + 1, device=dev)
    x[:, :pattern, :bits] = pat.float()
    x[:, pattern + pad, bits] = 1.0
    y = torch.zeros(n, T, bits, dtype=torch.long, device=dev)
    y[:, -pattern:] = pat
    mask = torch.zeros(n, T, dtype=torch.bool, device=dev)
    mask[:, -pattern:] = True
    return Batch(x, y, mask)


class FixedTask(StreamTask):
    """Synthetic data generated once (a fixed training set shuffled per epoch)."""

    def __init__(self, *args, n_train: int, **kw):
        super().__init__(*args, **kw)
        self.n_train = n_train
        self._train: Batch | None = None

    def batches(self, split: str, epoch: int = 0):
        if split != "train":
            yield from super().batches(split, epoch)
            return
        if self._train is None:
            self._train = self.make(self.n_train, _gen(self.seed, self.device))
        perm = torch.randperm(self.n_train, generator=_gen(self.seed * 7919 + epoch, self.device), device=self.device)
        for i in range(0, self.n_train, self.batch_size):
            idx = perm[i:i + self.batch_size]
            yield Batch(*(None if t is None else t[idx] for t in self._train))


@register_task("copy_lru", paper="minimal-LRU (Orvieto et al. 2023)")
def copy_lru(*, data_dir, seed, device, allow_test, pattern: int = 20, batch_size: int = 64, n_train: int = 20000,
             n_val: int = 1000, n_test: int = 1000) -> Task:
    """minimal-LRU copy: 7-bit patterns, marker, length 48, per-bit loss masked to the last 20 steps."""
    _positive("copy_lru", pattern=pattern, batch_size=batch_size, n_train=n_train, n_val=n_val, n_test=n_test)
    spec = TaskSpec("copy_lru", "lru", input_size=8, output_size=14, seq_len=2 * pattern + 8, readout="all",
                    metric="accuracy", mode="max", description="minimal-LRU copy, 7 bits, pad 7")
    make = lambda n, g: copy_lru_batch(n, g, pattern=pattern)  # noqa: E731
    return FixedTask(spec, MaskedBitCE(bits=7), make, seed=seed, device=device, batch_size=batch_size,
                     updates=0, n_val=n_val, n_test=n_test, allow_test=allow_test, n_train=n_train)


def copy_exprnn_batch(n: int, g: torch.Generator, *, lag: int, K: int = 10, labels: int = 8):
    """expRNN copying task (lezcano/expRNN): K symbols in 1..labels, ``lag`` blanks, the marker 9, K-1 blanks.

    Length lag + 2K. Targets: lag + K blanks, then the symbols, so the first symbol is due at the marker's own step
    (one step earlier than in copy_nnrnn). One-hot input of labels + 2 = 10.
    """
    dev = g.device
    T = lag + 2 * K
    sym = torch.randint(1, labels + 1, (n, K), generator=g, device=dev)
    x = torch.zeros(n, T, dtype=torch.long, device=dev)
    x[:, :K] = sym
    x[:, K + lag] = labels + 1
    y = torch.zeros(n, T, dtype=torch.long, device=dev)
    y[:, -K:] = sym
    return Batch(torch.nn.functional.one_hot(x, labels + 2).float(), y)


@register_task("copy_exprnn", paper="expRNN (Lezcano-Casado & Martinez-Rubio 2019)")
def copy_exprnn(*, data_dir, seed, device, allow_test, lag: int = 1000, batch_size: int = 128, updates: int = 100,
                n_val: int = 1000, n_test: int = 1000) -> Task:
    """Copying memory of expRNN: one-hot input, lag L (1000 or 2000 in the paper), CE over all L+20 steps."""
    _positive("copy_exprnn", lag=lag, batch_size=batch_size, updates=updates, n_val=n_val, n_test=n_test)
    base = copy_baseline_loss(lag)
    spec = TaskSpec("copy_exprnn", "exprnn", input_size=10, output_size=9, seq_len=lag + 20, readout="all",
                    metric="loss", mode="min", budget_unit="updates",
                    description=f"expRNN copy, lag {lag}; constant baseline loss {base:.4f}")
    make = lambda n, g: copy_exprnn_batch(n, g, lag=lag)  # noqa: E731
    return StreamTask(spec, StepCE(acc_last=10), make, seed=seed, device=device, batch_size=batch_size,
                      updates=updates, n_val=n_val, n_test=n_test, allow_test=allow_test)


def copy_urlstm_batch(n: int, g: torch.Generator, *, lag: int, K: int = 10, labels: int = 8):
    """UR-LSTM copy (r0mainK/ur-lstm): K symbols in 1..labels, ``lag`` blanks, then K cue tokens 9; one-hot of 10.

    Length lag + 2K. Targets are the symbols at the last K steps; ``mask`` marks them (nothing else is scored).
    """
    dev = g.device
    T = lag + 2 * K
    sym = torch.randint(1, labels + 1, (n, K), generator=g, device=dev)
    x = torch.zeros(n, T, dtype=torch.long, device=dev)
    x[:, :K] = sym
    x[:, -K:] = labels + 1
    y = torch.zeros(n, T, dtype=torch.long, device=dev)
    y[:, -K:] = sym
    mask = torch.zeros(n, T, dtype=torch.bool, device=dev)
    mask[:, -K:] = True
    return Batch(torch.nn.functional.one_hot(x, labels + 2).float(), y, mask)


@register_task("copy_urlstm", paper="UR-LSTM (Gu et al. 2020), r0mainK reimplementation")
def copy_urlstm(*, data_dir, seed, device, allow_test, lag: int = 480, batch_size: int = 10, updates: int = 100,
                n_val: int = 1000, n_test: int = 1000) -> Task:
    """Copying memory of UR-LSTM: 10 symbols, lag blanks, 10 cues; one-hot 10; CE on the last 10 outputs only."""
    _positive("copy_urlstm", lag=lag, batch_size=batch_size, updates=updates, n_val=n_val, n_test=n_test)
    spec = TaskSpec("copy_urlstm", "urlstm", input_size=10, output_size=10, seq_len=lag + 20, readout="all",
                    metric="loss", mode="min", budget_unit="updates",
                    description=f"UR-LSTM copy, lag {lag}; constant baseline loss ln 8 = {math.log(8):.4f}")
    make = lambda n, g: copy_urlstm_batch(n, g, lag=lag)  # noqa: E731
    return StreamTask(spec, MaskedStepCE(), make, seed=seed, device=device, batch_size=batch_size,
                      updates=updates, n_val=n_val, n_test=n_test, allow_test=allow_test)


def adding_batch(n: int, g: torch.Generator, *, length: int):
    """Adding problem (r0mainK/ur-lstm): channel 0 ~ U[0,1]; channel 1 marks one step in [0, L/2-1] and one in
    [L/2-1, L-1] (both ends inclusive, so the two ranges share L/2-1 and may mark the same step, whose value then
    counts twice). Target (n, 1): the sum of the two marked values."""
    dev = g.device
    half = length // 2
    x = torch.zeros(n, length, 2, device=dev)
    x[:, :, 0] = torch.rand(n, length, generator=g, device=dev)
    i1 = torch.randint(0, half, (n,), generator=g, device=dev)
    i2 = torch.randint(half - 1, length, (n,), generator=g, device=dev)
    rows = torch.arange(n, device=dev)
    x[rows, i1, 1] = 1.0
    x[rows, i2, 1] = 1.0
    y = (x[rows, i1, 0] + x[rows, i2, 0]).unsqueeze(-1)
    return Batch(x, y)


def adding_baseline_mse() -> float:
    """MSE of always predicting 1: the variance of a sum of two U[0,1] values, 1/6 (slightly more when both marks
    fall on the shared step L/2-1, with probability 4/(L(L+2)))."""
    return 1.0 / 6.0


@register_task("adding", paper="UR-LSTM (Gu et al. 2020), r0mainK reimplementation")
def adding(*, data_dir, seed, device, allow_test, length: int = 2000, batch_size: int = 10, updates: int = 100,
           n_val: int = 1000, n_test: int = 1000) -> Task:
    """Adding problem: length L, two marked values, MSE of the last output against their sum."""
    _positive("adding", length=length, batch_size=batch_size, updates=updates, n_val=n_val, n_test=n_test)
    if length < 4:
        raise ConfigError(f"task 'adding': length must be at least 4, got {length}")
    spec = TaskSpec("adding", "urlstm", input_size=2, output_size=1, seq_len=length, readout="last",
                    metric="mse", mode="min", budget_unit="updates",
                    description=f"adding, length {length}; constant baseline MSE 1/6")
    make = lambda n, g: adding_batch(n, g, length=length)  # noqa: E731
    return StreamTask(spec, MSE(), make, seed=seed, device=device, batch_size=batch_size,
                      updates=updates, n_val=n_val, n_test=n_test, allow_test=allow_test)
