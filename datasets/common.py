"""Tasks over data held as tensors on the training device, and the small helpers the real-data loaders share.

Two shapes of data cover every real task:

- :class:`ArrayTask`: one example per row (images, reviews, ListOps expressions, music windows). Rows are kept in
  their storage dtype (uint8 pixels, small-int tokens) on the device and turned into model input per batch by a
  ``collate`` function, so a whole dataset costs its raw size and a batch costs one gather.
- :class:`TokenStreamTask`: language modelling on one long token stream, either awd-lstm style (``stateful``: the
  stream cut into ``batch_size`` contiguous rows read in chunks of ``bptt``, state carried across chunks) or as
  independent windows of ``bptt`` tokens shuffled per epoch (stateless).

Training order is drawn from a CPU generator seeded by (seed, epoch), so it is the same on every device.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from rnns.errors import ConfigError

from .base import Batch, Objective, Task, TaskSpec, require_test

SPLITS = ("train", "val", "test")
Tensors = tuple[torch.Tensor, ...]


def cpu_generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed) % (2**63))
    return g


def storage_dtype(vocab_size: int) -> torch.dtype:
    """Smallest integer dtype that holds token ids below ``vocab_size`` (converted to long per batch)."""
    if vocab_size <= 256:
        return torch.uint8
    if vocab_size <= 2**15:
        return torch.int16
    return torch.int32


def positive(task: str, **vals) -> None:
    for k, v in vals.items():
        if isinstance(v, bool) or int(v) != v or v <= 0:
            raise ConfigError(f"task {task!r}: {k} must be a positive integer, got {v!r}")


def fraction(task: str, name: str, v: float) -> None:
    if not 0.0 < float(v) < 1.0:
        raise ConfigError(f"task {task!r}: {name} must be in (0, 1), got {v!r}")


def choice(task: str, name: str, v, valid: Sequence) -> None:
    if v not in valid:
        raise ConfigError(f"task {task!r}: {name} must be one of {', '.join(map(str, valid))}, got {v!r}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")


class _LazySplits:
    """Split data on the device; the test split is produced (read from disk) only after the allow_test guard."""

    def __init__(self, name: str, data: dict, device: torch.device, allow_test: bool):
        self.name, self.device, self.allow_test = name, device, allow_test
        self._data = dict(data)

    def get(self, split: str):
        _check_split(split)
        if split == "test":
            require_test(self.allow_test, self.name)
        d = self._data[split]
        if callable(d):
            d = self._data[split] = _to(d(), self.device)
        return d

    def loaded(self, split: str) -> bool:
        return not callable(self._data[split])


def _to(d, device):
    if isinstance(d, torch.Tensor):
        return d.to(device)
    return tuple(t.to(device) for t in d)


class ArrayTask(Task):
    """Examples as rows of tensors per split; ``collate(rows) -> Batch`` builds model input from gathered rows.

    ``data[split]`` is a tuple of tensors with examples on dim 0 (or a zero-argument callable returning one, read
    only when first needed: the test split is never read without ``allow_test``).
    """

    def __init__(self, spec: TaskSpec, objective: Objective, *, data: dict, collate: Callable[[Tensors], Batch],
                 batch_size: int, eval_batch_size: int, seed: int, device: torch.device, allow_test: bool,
                 shuffle: bool = True, files: Iterable = ()):
        super().__init__(spec, objective)
        self.collate = collate
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.seed, self.device, self.shuffle = seed, device, shuffle
        self._splits = _LazySplits(spec.name, {k: v if callable(v) else _to(v, device) for k, v in data.items()},
                                   device, allow_test)
        self._files = list(files)

    def files(self):
        return list(self._files)

    def rows(self, split: str) -> Tensors:
        return self._splits.get(split)

    def size(self, split: str) -> int:
        """Number of examples in a split (reading the test split is guarded like batches)."""
        return int(self.rows(split)[0].shape[0])

    def batches(self, split: str, epoch: int = 0) -> Iterator[Batch]:
        rows = self.rows(split)  # raises now (not at the first next()) for a refused test split
        return self._iter(rows, split, epoch)

    def _iter(self, rows: Tensors, split: str, epoch: int) -> Iterator[Batch]:
        n = rows[0].shape[0]
        if split == "train":
            bs = self.batch_size
            if self.shuffle:
                order = torch.randperm(n, generator=cpu_generator(self.seed * 1_000_003 + epoch)).to(self.device)
                for i in range(0, n, bs):
                    idx = order[i:i + bs]
                    yield self.collate(tuple(t[idx] for t in rows))
                return
        else:
            bs = self.eval_batch_size
        for i in range(0, n, bs):
            yield self.collate(tuple(t[i:i + bs] for t in rows))


class TokenStreamTask(Task):
    """Next-token prediction on a token stream per split (x = tokens[t], y = tokens[t+1]); see the module doc."""

    def __init__(self, spec: TaskSpec, objective: Objective, *, streams: dict, bptt: int, batch_size: int,
                 eval_batch_size: int, seed: int, device: torch.device, allow_test: bool, files: Iterable = ()):
        super().__init__(spec, objective)
        self.bptt, self.batch_size, self.eval_batch_size = int(bptt), int(batch_size), int(eval_batch_size)
        self.seed, self.device = seed, device
        self._splits = _LazySplits(spec.name, {k: v if callable(v) else v.to(device) for k, v in streams.items()},
                                   device, allow_test)
        self._files = list(files)

    def files(self):
        return list(self._files)

    def stream(self, split: str) -> torch.Tensor:
        return self._splits.get(split)

    def size(self, split: str) -> int:
        """Number of tokens in a split's stream."""
        return int(self.stream(split).shape[0])

    def batches(self, split: str, epoch: int = 0) -> Iterator[Batch]:
        s = self.stream(split)
        bs = self.batch_size if split == "train" else self.eval_batch_size
        if self.spec.stateful:
            return self._stream_chunks(s, bs)
        return self._windows(s, bs, split, epoch)

    def _stream_chunks(self, s: torch.Tensor, bs: int) -> Iterator[Batch]:
        # awd-lstm batchify: bs contiguous rows (the remainder tokens dropped), read left to right in bptt chunks
        n = s.shape[0] // bs
        if n < 2:
            raise ConfigError(f"task {self.spec.name!r}: a split of {s.shape[0]} tokens is too short for batch {bs}")
        data = s[:n * bs].view(bs, n)  # (B, n)
        for i in range(0, n - 1, self.bptt):
            L = min(self.bptt, n - 1 - i)
            yield Batch(data[:, i:i + L].long(), data[:, i + 1:i + 1 + L].long())

    def _windows(self, s: torch.Tensor, bs: int, split: str, epoch: int) -> Iterator[Batch]:
        T = self.bptt
        nw = (s.shape[0] - 1) // T
        x, y = s[:nw * T].view(nw, T), s[1:nw * T + 1].view(nw, T)  # (nw, T) views, no copy
        if split == "train":
            order = torch.randperm(nw, generator=cpu_generator(self.seed * 1_000_003 + epoch)).to(s.device)
            for i in range(0, nw, bs):
                idx = order[i:i + bs]
                yield Batch(x[idx].long(), y[idx].long())
            return
        for i in range(0, nw, bs):
            yield Batch(x[i:i + bs].long(), y[i:i + bs].long())
        rem = s.shape[0] - 1 - nw * T
        if rem > 0:  # the tail, so that every token of an evaluation split is scored exactly once
            yield Batch(s[nw * T:nw * T + rem].long()[None], s[nw * T + 1:].long()[None])


# ----------------------------------------------------------------------------------------------------------------
# vocabularies and splits


class Vocab:
    """A fixed symbol list; ``encode`` maps symbols to ids (numpy int32)."""

    def __init__(self, itos: Sequence[str], unk: str | None = None):
        self.itos = list(itos)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("duplicate symbols in vocabulary")
        self.unk = unk
        self.unk_id = self.stoi[unk] if unk is not None else None
        self._lookup = _UnkDict(self.stoi, self.unk_id) if unk is not None else self.stoi

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def from_counts(cls, counts: dict, *, specials: Sequence[str] = (), max_size: int | None = None,
                    unk: str | None = None, by_frequency: bool = True) -> "Vocab":
        """Specials first, then symbols by decreasing count (ties by symbol), or sorted by symbol."""
        syms = [s for s in counts if s not in specials]
        syms.sort(key=(lambda s: (-counts[s], s)) if by_frequency else None)
        if max_size is not None:
            syms = syms[:max(max_size - len(specials), 0)]
        return cls(list(specials) + syms, unk=unk)

    def encode(self, symbols: Sequence[str], *, task: str, what: str) -> np.ndarray:
        try:
            return np.fromiter(map(self._lookup.__getitem__, symbols), dtype=np.int32, count=len(symbols))
        except KeyError as e:  # only without an unk symbol
            raise ConfigError(f"task {task!r}: {what} contains the symbol {e.args[0]!r}, absent from the training "
                              "split; not the standard file?") from None


class _UnkDict(dict):
    """symbol -> id, answering the unk id for a missing symbol (the lookup stays a C-level dict hit otherwise)."""

    def __init__(self, stoi: dict, unk_id: int):
        super().__init__(stoi)
        self.unk_id = unk_id

    def __missing__(self, key):
        return self.unk_id


def carve_val(n: int, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: a seeded random ``n_val`` of ``n`` rows for validation, both in ascending order."""
    perm = np.random.RandomState(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def read_utf8(path, task: str) -> str:
    from .files import corrupt

    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise corrupt(task, path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
