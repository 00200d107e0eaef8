"""ListOps (Long Range Arena): evaluate a nested expression of MIN / MAX / MED / SM (sum mod 10) over digits.

Two sources (option ``source``):

- ``"files"`` (default): the LRA release, ``basic_{train,val,test}.tsv`` (columns ``Source``, ``Target``; 96k / 2k /
  2k expressions).
- ``"generate"``: a seeded generator following the published LRA specification (operators MIN, MAX, MED, SM; at
  most 10 arguments per operator; tree depth at most 10; an operand is a digit with probability 0.75 below the
  depth limit; kept when its length is strictly between 500 and 2000 tokens; no duplicates; 96k / 2k / 2k). It
  draws from the same distribution as the released files but its examples are NOT the released ones, so its
  numbers are not comparable with published ListOps results. ``data_seed`` (not the trial seed) fixes the data.
  Generation takes minutes in Python (most trees are rejected; about 7 minutes for the LRA sizes on one core), so
  generated sets are cached on disk. The random draws come in the order of LRA's script, so a seeded run of that
  script and of ours grow the same trees (its unseeded set-based sampling is what makes the release irreproducible).

Tokens (vocabulary 16, fixed): 0 padding, the digits 0-9, ``[MIN`` ``[MAX`` ``[MED`` ``[SM`` and the closing ``]``.
The released sources also wrap every partial application in parentheses; they carry no information and are dropped,
as the S4/S5 loaders used by LRU do (LRA's own tfds tokenizer dropped them too). Sequences are cut to ``max_len``
and zero padded at the end; the model reads them with a mean over time (padding included, as in LRU).
"""
from __future__ import annotations

import csv
import os
import random
import statistics
from pathlib import Path

import numpy as np
import torch

from . import files
from .base import Batch, Task, TaskSpec, register_task
from .common import ArrayTask, choice, positive
from .objectives import ClassCE

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
VOCAB = ("<pad>",) + tuple(str(d) for d in range(10)) + OPERATORS + (END,)
STOI = {s: i for i, s in enumerate(VOCAB)}
VALUE_P = 0.25  # below the depth limit, a node is an operator with this probability (else a digit)

_CACHE: dict[tuple, tuple] = {}


def tokenize(source: str) -> list[int]:
    """Token ids of an LRA source string (parentheses dropped); KeyError for a token outside the vocabulary."""
    return [STOI[t] for t in source.replace("(", " ").replace(")", " ").split()]


def read_tsv(path: Path, task: str) -> tuple[list[list[int]], list[int]]:
    key = (str(path), path.stat().st_mtime_ns)
    if key in _CACHE:
        return _CACHE[key]
    xs, ys = [], []
    csv.field_size_limit(1 << 24)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rd = csv.reader(f, delimiter="\t")
            head = next(rd, None)
            if head is None or [h.strip() for h in head[:2]] != ["Source", "Target"]:
                raise files.corrupt(task, path, "the first line is not the header 'Source<TAB>Target'")
            for i, row in enumerate(rd, 2):
                if not row:
                    continue
                try:
                    ids, y = tokenize(row[0]), int(row[1])
                except (KeyError, IndexError, ValueError) as e:
                    raise files.corrupt(task, path, f"line {i} is not an expression and a digit: {e!r}") from None
                if not 0 <= y <= 9 or not ids:
                    raise files.corrupt(task, path, f"line {i}: target {y} or an empty expression")
                xs.append(ids)
                ys.append(y)
    except UnicodeDecodeError as e:
        raise files.corrupt(task, path, f"not UTF-8 text ({e.reason})") from None
    if not xs:
        raise files.corrupt(task, path, "no examples")
    _CACHE[key] = (xs, ys)
    return xs, ys


# ----------------------------------------------------------------------------------------------------------------
# generator


def _tree(rng: random.Random, depth: int, max_depth: int, max_args: int, out: list[int]) -> int:
    """Append one random subtree's tokens to ``out`` in prefix order and return its value.

    The draws come in the order of LRA's generator (node kind, digit or argument count, the arguments, then the
    operator), so that a ``random.Random`` seeded alike grows the same trees."""
    if depth >= max_depth or rng.random() > VALUE_P:
        v = rng.randrange(10)
        out.append(STOI[str(v)])
        return v
    n_args = rng.randint(2, max_args)
    at = len(out)
    out.append(0)  # the operator's slot; it is drawn after its arguments
    vals = [_tree(rng, depth + 1, max_depth, max_args, out) for _ in range(n_args)]
    op = rng.choice(OPERATORS)
    out[at] = STOI[op]
    out.append(STOI[END])
    if op == "[MIN":
        return min(vals)
    if op == "[MAX":
        return max(vals)
    if op == "[MED":
        return int(statistics.median(vals))  # the mean of the middle two for an even count, truncated
    return sum(vals) % 10


def generate(n: int, rng: random.Random, seen: set, *, max_depth: int = 10, max_args: int = 10,
             min_len: int = 500, max_len: int = 2000) -> tuple[list[list[int]], list[int]]:
    """``n`` distinct expressions with min_len < tokens < max_len (LRA's bounds, both exclusive), and their values.

    A tree is grown with depth 1 at the root (as LRA does), so at most max_depth - 1 nested operators."""
    xs, ys = [], []
    while len(xs) < n:
        toks: list[int] = []
        v = _tree(rng, 1, max_depth, max_args, toks)
        if min_len < len(toks) < max_len:
            key = bytes(toks)
            if key not in seen:
                seen.add(key)
                xs.append(toks)
                ys.append(v)
    return xs, ys


GEN_VERSION = 2  # bump when the generator changes, so cached sets are not reused


def _generated(tag: str, make) -> tuple[list[list[int]], list[int]]:
    """A generated set memoised in the process and on disk in the cache (generation takes minutes for LRA sizes)."""
    key = ("gen", tag)
    if key in _CACHE:
        return _CACHE[key]
    f = files.cache_dir() / f"listops-gen-v{GEN_VERSION}-{tag}.npz"
    if f.is_file():
        z = np.load(f)
        flat, offs = z["tokens"], z["offsets"]
        xs = [flat[offs[i]:offs[i + 1]].tolist() for i in range(len(offs) - 1)]
        out = (xs, z["values"].tolist())
    else:
        out = make()
        offs = np.cumsum([0] + [len(x) for x in out[0]])
        tmp = f.with_name(f"{f.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, tokens=np.fromiter((t for x in out[0] for t in x), np.uint8, int(offs[-1])), offsets=offs,
                 values=np.asarray(out[1], dtype=np.int64))
        os.replace(tmp, f)
    _CACHE[key] = out
    return out


def _rows(xs: list[list[int]], ys: list[int], max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    out = np.zeros((len(xs), max_len), dtype=np.uint8)
    lens = np.zeros(len(xs), dtype=np.int64)
    for i, ids in enumerate(xs):
        ids = ids[:max_len]
        out[i, :len(ids)] = ids
        lens[i] = len(ids)
    return torch.from_numpy(out), torch.from_numpy(lens), torch.tensor(ys, dtype=torch.long)


def collate(rows) -> Batch:
    x, lens, y = rows
    return Batch(x.long(), y, torch.arange(x.shape[1], device=x.device) < lens[:, None])


@register_task("listops", paper="LRA ListOps (Tay et al. 2021) / LRU / Rescaled Glorot")
def listops(*, data_dir, seed, device, allow_test, source: str = "files", max_len: int = 2048, batch_size: int = 32,
            data_seed: int = 0, n_train: int = 96000, n_val: int = 2000, n_test: int = 2000) -> Task:
    """LRA ListOps: tokens (vocabulary 16), length 2048, 10 classes, mean readout; LRA TSVs or a seeded generator."""
    choice("listops", "source", source, ("files", "generate"))
    positive("listops", max_len=max_len, batch_size=batch_size, n_train=n_train, n_val=n_val, n_test=n_test)
    if source == "files":
        root = files.need_root(data_dir, "listops")
        paths = {s: root / f"listops/basic_{s}.tsv" for s in ("train", "val", "test")}
        for s in ("train", "val"):
            files.require(root, "listops", f"listops/basic_{s}.tsv")

        def load(split: str):
            files.require(root, "listops", f"listops/basic_{split}.tsv")
            return _rows(*read_tsv(paths[split], "listops"), max_len)

        data = {"train": load("train"), "val": load("val"), "test": lambda: load("test")}
        used = [paths["train"], paths["val"]] + ([paths["test"]] if allow_test else [])
        desc = "LRA ListOps (released files)"
    else:
        tr_va = _generated(f"s{data_seed}-{n_train}-{n_val}", lambda: generate(n_train + n_val,
                                                                              random.Random(data_seed), set()))
        tr, va = (tr_va[0][:n_train], tr_va[1][:n_train]), (tr_va[0][n_train:], tr_va[1][n_train:])

        def gen_test():  # its own stream, avoiding every train/val expression; train/val never depend on it
            seen = {bytes(x) for x in tr_va[0]}
            return _rows(*_generated(f"s{data_seed}-{n_train}-{n_val}-test{n_test}", lambda: generate(
                n_test, random.Random(data_seed * 1_000_003 + 7), seen)), max_len)

        data = {"train": _rows(*tr, max_len), "val": _rows(*va, max_len), "test": gen_test}
        used = []
        desc = f"ListOps generated (data_seed {data_seed}); not the LRA release"
    spec = TaskSpec("listops", "lra", input_size=len(VOCAB), output_size=10, seq_len=max_len, readout="mean",
                    metric="accuracy", mode="max", input_kind="tokens", description=desc)
    return ArrayTask(spec, ClassCE(), data=data, collate=collate, batch_size=batch_size,
                     eval_batch_size=max(batch_size, 64), seed=seed, device=device, allow_test=allow_test, files=used)


def to_source(ids: list[int]) -> str:
    """The LRA release's string for a token list, parentheses included: [MAX 2 9 ] is written
    ``( ( ( [MAX 2 ) 9 ) ] )`` (each partial application wrapped). Used to write TSVs in the release format."""
    toks = [VOCAB[i] for i in ids]

    def node(pos: int) -> tuple[str, int]:
        t = toks[pos]
        if t not in OPERATORS:
            return t, pos + 1
        s, pos = t, pos + 1
        while toks[pos] != END:
            arg, pos = node(pos)
            s = f"( {s} {arg} )"
        return f"( {s} {END} )", pos + 1

    return node(0)[0]
