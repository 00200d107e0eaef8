"""Small files in the standard formats of the datasets not shipped in shared/data, and a memo of built tasks.

Imported by the test modules of this folder (pytest puts the folder on sys.path). The real data root is
``$RNNSWEEP_TEST_DATA`` (else ``$RNNSWEEP_DATA``, else ``shared/data`` beside the checkout); tests that need it skip
when it is absent.
"""
from __future__ import annotations

import atexit
import gzip
import hashlib
import json
import os
import pickle
import random
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from datasets.base import build_task

# the real data root: as tests/conftest.py finds it ($RNNSWEEP_TEST_DATA, else ../shared/data beside the checkout)
REAL = Path(os.environ.get("RNNSWEEP_TEST_DATA") or os.environ.get("RNNSWEEP_DATA")
            or Path(__file__).resolve().parents[3] / "shared" / "data")
HAVE_REAL = (REAL / "SHA256SUMS").is_file() or (REAL / "ptb").is_dir()
REAL_DIRS = ("MNIST", "ptb", "music")  # linked into tiny roots; IMDB there is a small generated aclImdb folder

if not os.environ.get("RNNSWEEP_CACHE"):  # one cache (decompressed MNIST, generated ListOps) for the session
    _cache = tempfile.mkdtemp(prefix="rnnsweep-test-cache-")
    os.environ["RNNSWEEP_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

_BUILT: dict = {}


def built(name: str, data_dir, **opts):
    """build_task memoised for the whole test session (real datasets are loaded once)."""
    key = (name, str(data_dir), tuple(sorted(opts.items())))
    if key not in _BUILT:
        _BUILT[key] = build_task(name, data_dir=data_dir, seed=0, **opts)
    return _BUILT[key]


def write_cifar(root: Path, per_batch: int = 20, n_test: int = 20, seed: int = 0) -> None:
    """cifar-10-batches-py with the python pickles' keys (data: (N, 3072) uint8 channel-major, labels)."""
    rng = np.random.RandomState(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    names = [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]
    for name, n in names:
        entry = {"batch_label": name, "data": rng.randint(0, 256, (n, 3072)).astype(np.uint8),
                 "labels": rng.randint(0, 10, n).tolist(), "filenames": [f"{i}.png" for i in range(n)]}
        with open(d / name, "wb") as f:
            pickle.dump(entry, f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": per_batch}, f)


def write_text8(root: Path, n: int = 20000, zipped: bool = False, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 8))) for _ in range(300)]
    text = " ".join(rng.choice(words) for _ in range(n // 4))[:n]
    text = " " + "abcdefghijklmnopqrstuvwxyz " + text[28:]  # every letter occurs in the training part
    data = text.encode()
    d = root / "text8"
    d.mkdir(parents=True, exist_ok=True)
    if zipped:
        with zipfile.ZipFile(d / "text8.zip", "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("text8", data)
    else:
        (d / "text8").write_bytes(data)
    return data


def write_enwik8(root: Path, n: int = 20000, zipped: bool = False, seed: int = 0) -> bytes:
    rng = np.random.RandomState(seed)
    data = ("<page><title>Ä ö</title>" * 10).encode() + bytes(rng.randint(32, 127, n).astype(np.uint8))
    d = root / "enwik8"
    d.mkdir(parents=True, exist_ok=True)
    if zipped:
        with zipfile.ZipFile(d / "enwik8.zip", "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("enwik8", data)
    else:
        (d / "enwik8").write_bytes(data)
    return data


def write_wikitext(root: Path, seed: int = 0) -> dict[str, int]:
    """wiki.{train,valid,test}.tokens in the WikiText layout; returns the token counts incl. <eos> per split."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(50)] + ["<unk>", "@-@", ",", "."]
    d = root / "wikitext-103"
    d.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, n_lines in (("train", 200), ("valid", 30), ("test", 30)):
        lines, n = [], 0
        for i in range(n_lines):
            if i % 10 == 0:
                toks = ["=", f"w{i % 50}", "="]
            elif i % 10 == 1:
                toks = []
            else:
                toks = [rng.choice(vocab) for _ in range(rng.randint(3, 20))]
            lines.append(" " + " ".join(toks) + " \n" if toks else " \n")
            n += len(toks) + 1
        (d / f"wiki.{split}.tokens").write_text("".join(lines), encoding="utf-8")
        counts[split] = n
    return counts


def write_listops(root: Path, n: tuple[int, int, int] = (40, 10, 10), seed: int = 0) -> None:
    """basic_{train,val,test}.tsv with the release's header and parenthesised sources."""
    from datasets.listops import generate, to_source

    rng, seen = random.Random(seed), set()
    d = root / "listops"
    d.mkdir(parents=True, exist_ok=True)
    for split, k in zip(("train", "val", "test"), n):
        xs, ys = generate(k, rng, seen)
        lines = ["Source\tTarget\n"] + [f"{to_source(x)}\t{y}\n" for x, y in zip(xs, ys)]
        (d / f"basic_{split}.tsv").write_text("".join(lines), encoding="utf-8")


def music_songs(n: int, seed: int, tuples: bool = False) -> list[list]:
    rng = random.Random(seed)
    songs = []
    for _ in range(n):
        steps = []
        for _ in range(rng.randint(3, 250)):
            notes = sorted(rng.sample(range(21, 109), rng.randint(0, 4)))
            steps.append(tuple(notes) if tuples else notes)
        songs.append(steps)
    return songs


def write_music_pickle(root: Path, name: str = "JSB Chorales.pickle", seed: int = 0) -> dict:
    d = {"train": music_songs(12, seed, tuples=True), "valid": music_songs(4, seed + 1),
         "test": music_songs(5, seed + 2)}
    (root / "music").mkdir(parents=True, exist_ok=True)
    with open(root / "music" / name, "wb") as f:
        pickle.dump(d, f, protocol=2)
    return d


def write_aclimdb(root: Path, per_label: int = 30, seed: int = 0) -> None:
    rng = random.Random(seed)
    words = ["good", "bad", "film", "movie", "great", "awful", "plot", "actor", "it's", "the", "a"]
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            d = root / "imdb" / "aclImdb" / split / label
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_label):
                text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) + "<br /><br />The end."
                (d / f"{i}_{rng.randint(1, 10)}.txt").write_text(text, encoding="utf-8")


def declare(root: Path, rel: str) -> None:
    """List a generated file's sha256 in <root>/SHA256SUMS, the way a user declares a non-standard copy."""
    sha = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    with open(root / "SHA256SUMS", "a") as f:
        f.write(f"{sha}  ./{rel}\n")


def write_imdb_jsonl(root: Path, per_label: int = 30, seed: int = 0) -> None:
    """imdb_labeled.jsonl.gz (declared in SHA256SUMS: its checksum is not the shipped file's)."""
    rng = random.Random(seed)
    (root / "imdb").mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "imdb" / "imdb_labeled.jsonl.gz", "wt", encoding="utf-8") as f:
        for split in ("train", "test"):
            for label in ("pos", "neg"):
                for i in range(per_label):
                    text = " ".join(rng.choice(["fine", "poor", "ok", "wow"]) for _ in range(rng.randint(3, 40)))
                    f.write(json.dumps({"split": split, "label": label, "id": i, "rating": 5, "text": text}) + "\n")
    declare(root, "imdb/imdb_labeled.jsonl.gz")


def tiny_root(root: Path) -> Path:
    """A data root: the real datasets linked in (when present) plus small generated files for the others."""
    root.mkdir(parents=True, exist_ok=True)
    if HAVE_REAL:
        for name in REAL_DIRS:
            if (REAL / name).exists() and not (root / name).exists():
                (root / name).symlink_to(REAL / name)
    write_cifar(root)
    write_text8(root)
    write_enwik8(root)
    write_wikitext(root)
    write_listops(root)
    write_aclimdb(root)
    return root
