"""Text tasks: character- and word-level language modelling, and IMDB sentiment classification.

Our own small tokenisers (no torchtext, no Hugging Face):

- PTB (word and char), WikiText-103: the awd-lstm convention, whitespace-split tokens of each line followed by
  ``<eos>``. In the char-level PTB file every character is already followed by a space, so its tokens are the
  characters, ``_`` for a word boundary and ``<eos>`` per line (vocabulary 50).
- text8 and enwik8: one file cut 90% / 5% / 5% into train / val / test (RRU, and the usual enwik8 split);
  text8 by character, enwik8 by byte.
- IMDB: ``imdb_bytes`` reads UTF-8 bytes (LRA Text), ``imdb_words`` lower-cased words (RRU / keras style).

Vocabularies come from the training split only. A symbol of val/test absent from training maps to ``<unk>`` where
the vocabulary has one (word level, enwik8 bytes) and is a ConfigError for the closed character sets (PTB char,
text8), which only a damaged or non-standard file produces.

Language models are scored on every next token; ``stateful`` selects awd-lstm stream batching with state carried
across chunks (the PTB-char setup of nnRNN/Stair), otherwise independent windows of ``bptt`` tokens.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import zipfile
import zlib
from array import array
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from rnns.errors import ConfigError

from . import files
from .base import Batch, Task, TaskSpec, register_task
from .common import ArrayTask, TokenStreamTask, Vocab, carve_val, choice, positive, storage_dtype
from .objectives import ClassCE, LanguageCE

EOS, UNK = "<eos>", "<unk>"


# ----------------------------------------------------------------------------------------------------------------
# tokenisers


def line_tokens(path: Path, task: str) -> Iterator[list[str]]:
    """Whitespace tokens of each line plus ``<eos>`` (awd-lstm), read lazily; ConfigError when not UTF-8."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                toks = line.split()
                toks.append(EOS)
                yield toks
    except UnicodeDecodeError as e:
        raise files.corrupt(task, path, f"not UTF-8 text ({e.reason})") from None


def count_tokens(path: Path, task: str) -> Counter:
    c: Counter = Counter()
    for toks in line_tokens(path, task):
        c.update(toks)
    return c


def encode_lines(path: Path, vocab: Vocab, task: str, what: str) -> np.ndarray:
    out = array("i")
    for toks in line_tokens(path, task):
        out.extend(vocab.encode(toks, task=task, what=what))
    return np.frombuffer(out, dtype=np.int32) if len(out) else np.zeros(0, np.int32)


def byte_lut(vocab_bytes: Iterable[int], unk_id: int | None) -> np.ndarray:
    """Lookup table byte -> id (-1 for bytes outside the vocabulary and no unk)."""
    lut = np.full(256, -1 if unk_id is None else unk_id, dtype=np.int32)
    for i, b in enumerate(vocab_bytes):
        lut[b] = i
    return lut


def word_tokens(text: str) -> list[str]:
    """IMDB words: lower case, HTML line breaks removed, runs of letters/digits with inner apostrophes."""
    return _WORD.findall(text.lower().replace("<br />", " "))


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


# ----------------------------------------------------------------------------------------------------------------
# language modelling


def _lm_spec(name: str, paper: str, vocab: int, bptt: int, stateful: bool, metric: str, desc: str) -> TaskSpec:
    return TaskSpec(name, paper, input_size=vocab, output_size=vocab, seq_len=bptt, readout="all", metric=metric,
                    mode="min", input_kind="tokens", stateful=stateful, description=desc)


def _lm_options(name: str, bptt, batch_size, eval_batch_size) -> None:
    positive(name, bptt=bptt, batch_size=batch_size, eval_batch_size=eval_batch_size)


_NP = {torch.uint8: np.uint8, torch.int16: np.int16, torch.int32: np.int32}


def _to_stream(ids: np.ndarray, vocab_size: int) -> torch.Tensor:
    """Token ids in the smallest dtype that holds them (no int64 copy of a 100M-token stream)."""
    return torch.from_numpy(ids.astype(_NP[storage_dtype(vocab_size)]))


def _line_lm(name: str, paper: str, rels: tuple[str, str, str], *, data_dir, seed, device, allow_test, bptt,
             batch_size, eval_batch_size, stateful, metric, open_vocab: bool, cache: bool = False) -> Task:
    """A language model over three line-oriented token files (PTB word/char, WikiText)."""
    _lm_options(name, bptt, batch_size, eval_batch_size)
    root = files.need_root(data_dir, name)
    paths = [files.require(root, name, rel) for rel in rels[:2]]

    def build():
        counts = count_tokens(paths[0], name)
        if not counts or sum(counts.values()) <= counts[EOS]:
            raise files.corrupt(name, paths[0], "no tokens")
        unk = UNK if open_vocab and UNK in counts else None
        return Vocab.from_counts(counts, specials=(EOS,), unk=unk, by_frequency=open_vocab)

    vocab = _cached_vocab(name, paths[0], build) if cache else build()

    def encode(path: Path, split: str) -> torch.Tensor:
        make = lambda: encode_lines(path, vocab, name, f"the {split} file {path.name}")  # noqa: E731
        ids = _cached_ids(name, path, _vocab_tag(vocab), make) if cache else make()
        if ids.size < 2:
            raise files.corrupt(name, path, "fewer than 2 tokens")
        return _to_stream(ids, len(vocab))

    streams = {"train": encode(paths[0], "train"), "val": encode(paths[1], "val"),
               "test": lambda: encode(files.require(root, name, rels[2]), "test")}
    spec = _lm_spec(name, paper, len(vocab), bptt, bool(stateful), metric,
                    f"{name}: vocabulary {len(vocab)}, bptt {bptt}, {'stateful' if stateful else 'windows'}")
    task = TokenStreamTask(spec, LanguageCE(), streams=streams, bptt=bptt, batch_size=batch_size,
                           eval_batch_size=eval_batch_size, seed=seed, device=device, allow_test=allow_test,
                           files=paths + ([root / rels[2]] if allow_test else []))
    task.vocab = vocab
    return task


def _vocab_tag(vocab: Vocab) -> str:
    return hashlib.sha256("\n".join(vocab.itos).encode()).hexdigest()[:12]


def _cache_folder(task: str, src: Path) -> Path:
    """Derived data of a source file lives in a folder named by the file's sha256 (WikiText-103 takes minutes to
    tokenise in Python; a cached copy loads in a second). Writes go through a temporary name and a rename."""
    d = files.cache_dir() / f"{task}-{files.sha256_of(src)[:16]}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _cached_vocab(task: str, src: Path, make) -> Vocab:
    f = _cache_folder(task, src) / f"{src.name}.vocab.txt"
    if f.is_file():
        itos = f.read_text(encoding="utf-8").split("\n")
        return Vocab(itos, unk=UNK if UNK in itos else None)
    v = make()
    tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(v.itos), encoding="utf-8")
    os.replace(tmp, f)
    return v


def _cached_ids(task: str, src: Path, tag: str, make) -> np.ndarray:
    f = _cache_folder(task, src) / f"{src.name}.ids-{tag}.npy"
    if f.is_file():
        return np.load(f)
    arr = make()
    tmp = f.with_name(f"{f.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, f)
    return arr


@register_task("ptb_char", paper="nnRNN (Kerg et al. 2019) / Stair RNN")
def ptb_char(*, data_dir, seed, device, allow_test, bptt: int = 150, batch_size: int = 128,
             eval_batch_size: int = 10, stateful: bool = True) -> Task:
    """Character-level PTB (awd-lstm batching as in nnRNN/Stair): truncated BPTT of 150, state carried, BPC."""
    return _line_lm("ptb_char", "nnrnn", ("ptb/ptb.char.train.txt", "ptb/ptb.char.valid.txt", "ptb/ptb.char.test.txt"),
                    data_dir=data_dir, seed=seed, device=device, allow_test=allow_test, bptt=bptt,
                    batch_size=batch_size, eval_batch_size=eval_batch_size, stateful=stateful, metric="bpc",
                    open_vocab=False)


@register_task("ptb_word", paper="RRU (Zakovskis et al. 2021)")
def ptb_word(*, data_dir, seed, device, allow_test, bptt: int = 64, batch_size: int = 64, eval_batch_size: int = 64,
             stateful: bool = False) -> Task:
    """Word-level PTB (RRU: shuffled windows of 64 words, stateless), perplexity."""
    return _line_lm("ptb_word", "rru", ("ptb/ptb.train.txt", "ptb/ptb.valid.txt", "ptb/ptb.test.txt"),
                    data_dir=data_dir, seed=seed, device=device, allow_test=allow_test, bptt=bptt,
                    batch_size=batch_size, eval_batch_size=eval_batch_size, stateful=stateful, metric="ppl",
                    open_vocab=True)


@register_task("wikitext103", paper="UR-LSTM (Gu et al. 2020), r0mainK reimplementation")
def wikitext103(*, data_dir, seed, device, allow_test, bptt: int = 128, batch_size: int = 128,
                eval_batch_size: int = 128, stateful: bool = False) -> Task:
    """WikiText-103 word level (UR-LSTM: bptt 128, batch 128, each chunk from a zero state), perplexity."""
    return _line_lm("wikitext103", "urlstm",
                    tuple(f"wikitext-103/wiki.{s}.tokens" for s in ("train", "valid", "test")),
                    data_dir=data_dir, seed=seed, device=device, allow_test=allow_test, bptt=bptt,
                    batch_size=batch_size, eval_batch_size=eval_batch_size, stateful=stateful, metric="ppl",
                    open_vocab=True, cache=True)


def read_single(root: Path, task: str, name: str) -> tuple[bytes, Path]:
    """The bytes of text8 / enwik8 from ``<name>/<name>`` or the zip as downloaded (``<name>/<name>.zip``)."""
    rel = files.first_present(root, task, [f"{name}/{name}", f"{name}/{name}.zip"])
    p = files.require(root, task, rel)
    if rel.endswith(".zip"):
        try:
            with zipfile.ZipFile(p) as z:
                return z.read(name), p
        except (zipfile.BadZipFile, KeyError, zlib.error, OSError, EOFError) as e:
            raise files.corrupt(task, p, f"not a zip holding {name!r}: {e}") from None
    return p.read_bytes(), p


def split_90_5_5(n: int) -> tuple[int, int]:
    """End offsets of train and val: the first 90% train, the next 5% val, the rest test."""
    return int(n * 0.9), int(n * 0.9) + int(n * 0.05)


def _single_file_lm(name: str, *, byte_level: bool, data_dir, seed, device, allow_test, bptt, batch_size,
                    eval_batch_size, stateful) -> Task:
    _lm_options(name, bptt, batch_size, eval_batch_size)
    root = files.need_root(data_dir, name)
    data, path = read_single(root, name, name)
    if not byte_level:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise files.corrupt(name, path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size < 100:
        raise files.corrupt(name, path, f"only {raw.size} bytes")
    a, b = split_90_5_5(raw.size)
    present = np.flatnonzero(np.bincount(raw[:a], minlength=256))  # the symbols of the training part
    if byte_level:  # enwik8: bytes, unseen bytes of val/test -> <unk> (the last id)
        itos = [f"<{x:02x}>" for x in present] + [UNK]
        lut = byte_lut(present, unk_id=len(present))
    else:  # text8: its characters are ASCII (a-z and space); the closed set admits no unknown
        itos = [chr(x) for x in present]
        lut = byte_lut(present, unk_id=None)
    vocab = Vocab(itos, unk=UNK if byte_level else None)

    def encode(part: np.ndarray, split: str) -> torch.Tensor:
        ids = lut[part]
        if (ids < 0).any():
            bad = int(part[np.argmax(ids < 0)])
            raise ConfigError(f"task {name!r}: the {split} part of {path.name} contains byte {bad:#04x}, absent "
                              "from the training part; not the standard file?")
        return _to_stream(ids, len(vocab))

    streams = {"train": encode(raw[:a], "train"), "val": encode(raw[a:b], "val"),
               "test": lambda: encode(raw[b:], "test")}
    spec = _lm_spec(name, "rru", len(vocab), bptt, bool(stateful), "bpc",
                    f"{name}: 90/5/5 split, vocabulary {len(vocab)}, bptt {bptt}")
    task = TokenStreamTask(spec, LanguageCE(), streams=streams, bptt=bptt, batch_size=batch_size,
                           eval_batch_size=eval_batch_size, seed=seed, device=device, allow_test=allow_test,
                           files=[path])
    task.vocab = vocab
    return task


@register_task("text8", paper="RRU (Zakovskis et al. 2021)")
def text8(*, data_dir, seed, device, allow_test, bptt: int = 256, batch_size: int = 64, eval_batch_size: int = 64,
          stateful: bool = True) -> Task:
    """text8 characters, 90/5/5 split (RRU: window 256, batch 64, stateful), BPC."""
    return _single_file_lm("text8", byte_level=False, data_dir=data_dir, seed=seed, device=device,
                           allow_test=allow_test, bptt=bptt, batch_size=batch_size, eval_batch_size=eval_batch_size,
                           stateful=stateful)


@register_task("enwik8", paper="RRU (Zakovskis et al. 2021)")
def enwik8(*, data_dir, seed, device, allow_test, bptt: int = 256, batch_size: int = 64, eval_batch_size: int = 64,
           stateful: bool = True) -> Task:
    """enwik8 bytes, 90/5/5 split (RRU: window 256, batch 64, stateful), BPC."""
    return _single_file_lm("enwik8", byte_level=True, data_dir=data_dir, seed=seed, device=device,
                           allow_test=allow_test, bptt=bptt, batch_size=batch_size, eval_batch_size=eval_batch_size,
                           stateful=stateful)


# ----------------------------------------------------------------------------------------------------------------
# IMDB

IMDB_VAL_SEED = 42  # the validation rows carved from train are the same for every trial seed
_IMDB: dict[tuple, list[tuple[str, int]]] = {}


IMDB_LAYOUTS = ["imdb/imdb_labeled.jsonl.gz", "imdb/aclImdb"]


def imdb_path(root: Path, task: str) -> Path:
    return root / files.first_present(root, task, IMDB_LAYOUTS)


def read_imdb(root: Path, task: str, split: str) -> list[tuple[str, int]]:
    """[(text, label 1=pos / 0=neg)] of a split in file order, from the jsonl.gz or an aclImdb folder."""
    rel = files.first_present(root, task, IMDB_LAYOUTS)
    p = files.require(root, task, rel)
    key = (str(p), split)
    if key not in _IMDB:
        rows = _read_imdb_jsonl(p, task, split) if rel.endswith(".gz") else _read_aclimdb(p, task, split)
        if not rows or len({lab for _, lab in rows}) != 2:
            raise files.corrupt(task, p, f"the {split} split does not hold reviews of both labels")
        _IMDB[key] = rows
    return _IMDB[key]


def _read_imdb_jsonl(path: Path, task: str, split: str) -> list[tuple[str, int]]:
    rows = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                d = json.loads(line)
                if d["split"] == split:
                    rows.append((d["text"], {"pos": 1, "neg": 0}[d["label"]]))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise files.corrupt(task, path, f"not a readable gzip of UTF-8 lines: {e}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise files.corrupt(task, path, f"line {i} is not a review record with split/label/text: {e!r}") from None
    return rows


def _read_aclimdb(path: Path, task: str, split: str) -> list[tuple[str, int]]:
    rows = []
    for label, y in (("pos", 1), ("neg", 0)):
        d = path / split / label
        if not d.is_dir():
            raise files.missing(task, f"imdb/aclImdb/{split}/{label}", path.parent.parent)
        names = sorted(d.glob("*.txt"), key=lambda q: (int(q.stem.split("_")[0]) if q.stem.split("_")[0].isdigit()
                                                       else 0, q.name))
        for q in names:
            try:
                rows.append((q.read_text(encoding="utf-8"), y))
            except UnicodeDecodeError as e:
                raise files.corrupt(task, q, f"not UTF-8 text ({e.reason})") from None
    return rows


def _imdb_split(root: Path, task: str, n_val: int):
    train = read_imdb(root, task, "train")
    if not 0 < n_val < len(train):
        raise ConfigError(f"task {task!r}: n_val must be in [1, {len(train) - 1}], got {n_val}")
    tr, va = carve_val(len(train), n_val, IMDB_VAL_SEED)
    return train, tr, va


def byte_rows(texts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(bytes (N, length) uint8, lengths (N,)): UTF-8 bytes truncated to ``length`` and zero padded at the end."""
    out = np.zeros((len(texts), length), dtype=np.uint8)
    lens = np.zeros(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        b = t.encode("utf-8")[:length]
        out[i, :len(b)] = np.frombuffer(b, dtype=np.uint8)
        lens[i] = len(b)
    return torch.from_numpy(out), torch.from_numpy(lens)


@register_task("imdb_bytes", paper="LRA Text (Tay et al. 2021) / LRU / Rescaled Glorot")
def imdb_bytes(*, data_dir, seed, device, allow_test, length: int = 4096, batch_size: int = 32,
               n_val: int = 2500) -> Task:
    """IMDB at byte level (LRA Text): ids byte+1 with 0 padding, length 4096, mean readout; val carved from train."""
    positive("imdb_bytes", length=length, batch_size=batch_size, n_val=n_val)
    root = files.need_root(data_dir, "imdb_bytes")
    train, tr, va = _imdb_split(root, "imdb_bytes", n_val)
    xb, lens = byte_rows([t for t, _ in train], length)
    y = torch.tensor([lab for _, lab in train], dtype=torch.long)
    tr_t, va_t = torch.from_numpy(tr), torch.from_numpy(va)

    def test():
        rows = read_imdb(root, "imdb_bytes", "test")
        xt, lt = byte_rows([t for t, _ in rows], length)
        return xt, lt, torch.tensor([lab for _, lab in rows], dtype=torch.long)

    def collate(rows):
        xr, lr, yr = rows
        mask = torch.arange(xr.shape[1], device=xr.device) < lr[:, None]  # (B, T) real bytes
        return Batch((xr.long() + 1) * mask, yr, mask)

    spec = TaskSpec("imdb_bytes", "lra", input_size=257, output_size=2, seq_len=length, readout="mean",
                    metric="accuracy", mode="max", input_kind="tokens",
                    description=f"IMDB bytes, length {length}, vocabulary 256 bytes + pad")
    data = {"train": (xb[tr_t], lens[tr_t], y[tr_t]), "val": (xb[va_t], lens[va_t], y[va_t]), "test": test}
    return ArrayTask(spec, ClassCE(), data=data, collate=collate, batch_size=batch_size,
                     eval_batch_size=max(batch_size, 64), seed=seed, device=device, allow_test=allow_test,
                     files=[imdb_path(root, "imdb_bytes")])


IMDB_SPECIALS = ("<pad>", "<start>", UNK)  # keras imdb: 0 padding, 1 start of review, 2 out of vocabulary


def word_rows(docs: list[list[str]], vocab: Vocab, length: int, truncate: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (N, length), lengths): <start> + words, cut to ``length`` keeping the end ("pre", keras' default) or the
    beginning ("post"), zero padded at the end."""
    out = np.zeros((len(docs), length), dtype=np.int32)
    lens = np.zeros(len(docs), dtype=np.int64)
    start = vocab.stoi["<start>"]
    for i, words in enumerate(docs):
        if len(words) + 1 <= length or truncate == "post":  # the start marker survives the cut
            kept, first = words[:length - 1], 1
            out[i, 0] = start
        else:
            kept, first = words[len(words) - length:], 0
        out[i, first:first + len(kept)] = vocab.encode(kept, task="imdb_words", what="a review")
        lens[i] = first + len(kept)
    return torch.from_numpy(out).to(storage_dtype(len(vocab))), torch.from_numpy(lens)


@register_task("imdb_words", paper="RRU (Zakovskis et al. 2021)")
def imdb_words(*, data_dir, seed, device, allow_test, length: int = 512, vocab_size: int = 24902,
               truncate: str = "pre", batch_size: int = 64, n_val: int = 2500,
               label_smoothing: float = 0.1) -> Task:
    """IMDB words (RRU / keras style): 24,902 most frequent training words, 512 per review, last-step readout.

    Reviews are padded at the end; label smoothing 0.1; validation carved from train."""
    positive("imdb_words", length=length, vocab_size=vocab_size, batch_size=batch_size, n_val=n_val)
    choice("imdb_words", "truncate", truncate, ("pre", "post"))
    if vocab_size <= len(IMDB_SPECIALS):
        raise ConfigError(f"task 'imdb_words': vocab_size must exceed {len(IMDB_SPECIALS)}, got {vocab_size}")
    root = files.need_root(data_dir, "imdb_words")
    train, tr, va = _imdb_split(root, "imdb_words", n_val)
    docs = [word_tokens(t) for t, _ in train]
    counts: Counter = Counter()
    for i in tr:
        counts.update(docs[i])
    vocab = Vocab.from_counts(counts, specials=IMDB_SPECIALS, max_size=vocab_size, unk=UNK)
    xw, lens = word_rows(docs, vocab, length, truncate)
    y = torch.tensor([lab for _, lab in train], dtype=torch.long)
    tr_t, va_t = torch.from_numpy(tr), torch.from_numpy(va)

    def test():
        rows = read_imdb(root, "imdb_words", "test")
        xt, lt = word_rows([word_tokens(t) for t, _ in rows], vocab, length, truncate)
        return xt, lt, torch.tensor([lab for _, lab in rows], dtype=torch.long)

    def collate(rows):
        xr, lr, yr = rows
        return Batch(xr.long(), yr, torch.arange(xr.shape[1], device=xr.device) < lr[:, None])

    spec = TaskSpec("imdb_words", "rru", input_size=len(vocab), output_size=2, seq_len=length, readout="last",
                    metric="accuracy", mode="max", input_kind="tokens",
                    description=f"IMDB words, vocabulary {len(vocab)}, length {length}, padded at the end")
    data = {"train": (xw[tr_t], lens[tr_t], y[tr_t]), "val": (xw[va_t], lens[va_t], y[va_t]), "test": test}
    task = ArrayTask(spec, ClassCE(label_smoothing), data=data, collate=collate, batch_size=batch_size,
                     eval_batch_size=max(batch_size, 128), seed=seed, device=device, allow_test=allow_test,
                     files=[imdb_path(root, "imdb_words")])
    task.vocab = vocab
    return task
