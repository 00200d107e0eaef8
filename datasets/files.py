"""Data catalogue: the files each task reads, their known checksums and standard public sources; integrity checks;
the caches derived from the files (decompressed MNIST).

Nothing here downloads anything: a source is only named in error messages and in ``run_search.py data``.

Checksum policy: a file is accepted when its sha256 equals the catalogue's checksum of the standard file, or the
checksum listed for the same relative path in ``<data root>/SHA256SUMS`` (``sha256sum`` format). The second lets a
user who keeps a differently packed copy of the standard data (for example MNIST re-gzipped, whose ``.gz`` bytes
differ) declare it. Files whose standard checksum is not known here (CIFAR-10, text8, enwik8, WikiText-103, LRA
ListOps) are checked by their format only. A missing file, a checksum mismatch or an unreadable format is a
:class:`~rnns.errors.ConfigError` of one line; a partial dataset is never returned.

| function                | used by                                                                    |
|-------------------------|----------------------------------------------------------------------------|
| ``list_files(root)``    | ``run_search.py data``: one row per catalogue file (tasks, file, present, checksum) |
| ``verify(root)``        | checksums and formats of every present file (ConfigError naming the bad ones) |
| ``prepare(root)``       | ``run_search.py data --prepare``: builds caches (decompressed MNIST)        |
| ``require(root, task, relpath)`` | loaders: path of a checked file                                   |
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from rnns.errors import ConfigError

CACHE_ENV = "RNNSWEEP_CACHE"  # cache root; default ~/.cache/rnnsweep


@dataclass(frozen=True)
class DataFile:
    path: str  # relative to the data root, "/" separated
    sha256: str | None = None  # checksum of the standard file, when known
    group: str = ""  # files of one group are alternatives (a task needs one of them)


@dataclass(frozen=True)
class DataSet:
    name: str
    tasks: tuple[str, ...]
    layout: str  # the expected layout under the data root, in words
    source: str  # standard public source (text only, never fetched)
    files: tuple[DataFile, ...]


_MNIST_GZ = {
    "train-images-idx3-ubyte.gz": "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    "train-labels-idx1-ubyte.gz": "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
    "t10k-images-idx3-ubyte.gz": "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    "t10k-labels-idx1-ubyte.gz": "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
}
# checksums and sizes of the uncompressed idx files (identical to the original MNIST files)
MNIST_RAW = {
    "train-images-idx3-ubyte": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47040016),
    "train-labels-idx1-ubyte": ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60008),
    "t10k-images-idx3-ubyte": ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7840016),
    "t10k-labels-idx1-ubyte": ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10008),
}

MUSIC_SETS = {  # task -> (.mat name in this layout, Boulanger-Lewandowski pickle name)
    "jsb": ("JSB_Chorales.mat", "JSB Chorales.pickle"),
    "nottingham": ("Nottingham.mat", "Nottingham.pickle"),
    "musedata": ("MuseData.mat", "MuseData.pickle"),
    "piano_midi": ("Piano_midi.mat", "Piano-midi.de.pickle"),
}
_MUSIC_MAT_SHA = {
    "JSB_Chorales.mat": "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4",
    "Nottingham.mat": "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea",
    "MuseData.mat": "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff",
    "Piano_midi.mat": "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34",
}
# The sha256 of the original Boulanger-Lewandowski pickles is not recorded here, so loading one always needs the
# task option allow_pickle=True. A checksum added to this dict (or to <root>/SHA256SUMS) lifts that requirement.
KNOWN_PICKLE_SHA256: dict[str, str] = {}

CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
               "batches.meta")

CATALOGUE: tuple[DataSet, ...] = (
    DataSet("mnist", ("smnist", "psmnist", "smnist_rru", "psmnist_rru"),
            "<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (torchvision layout; un-gzipped "
            "files in the same folder are read too)",
            "http://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)",
            tuple(DataFile(f"MNIST/raw/{n}", s, group=n[:-3]) for n, s in _MNIST_GZ.items())
            + tuple(DataFile(f"MNIST/raw/{n}", s, group=n) for n, (s, _) in MNIST_RAW.items())),
    DataSet("cifar10", ("scifar", "scifar_gray"),
            "<root>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} (python version; torchvision "
            "checks its md5 sums)",
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            tuple(DataFile(f"cifar-10-batches-py/{n}") for n in CIFAR_FILES)),
    DataSet("ptb_char", ("ptb_char",), "<root>/ptb/ptb.char.{train,valid,test}.txt (Mikolov's char-level PTB)",
            "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz (simple-examples/data/)",
            (DataFile("ptb/ptb.char.train.txt", "e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9"),
             DataFile("ptb/ptb.char.valid.txt", "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8"),
             DataFile("ptb/ptb.char.test.txt", "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe"))),
    DataSet("ptb_word", ("ptb_word",), "<root>/ptb/ptb.{train,valid,test}.txt (Mikolov's word-level PTB)",
            "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz (simple-examples/data/)",
            (DataFile("ptb/ptb.train.txt", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
             DataFile("ptb/ptb.valid.txt", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
             DataFile("ptb/ptb.test.txt", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"))),
    DataSet("text8", ("text8",), "<root>/text8/text8 (or the zip as downloaded, <root>/text8/text8.zip)",
            "http://mattmahoney.net/dc/text8.zip",
            (DataFile("text8/text8", group="text8"), DataFile("text8/text8.zip", group="text8"))),
    DataSet("enwik8", ("enwik8",), "<root>/enwik8/enwik8 (or the zip as downloaded, <root>/enwik8/enwik8.zip)",
            "http://mattmahoney.net/dc/enwik8.zip",
            (DataFile("enwik8/enwik8", group="enwik8"), DataFile("enwik8/enwik8.zip", group="enwik8"))),
    DataSet("wikitext103", ("wikitext103",), "<root>/wikitext-103/wiki.{train,valid,test}.tokens",
            "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip",
            tuple(DataFile(f"wikitext-103/wiki.{s}.tokens") for s in ("train", "valid", "test"))),
    DataSet("imdb", ("imdb_bytes", "imdb_words"),
            "<root>/imdb/imdb_labeled.jsonl.gz (keys split, label, id, rating, text), or the original "
            "<root>/imdb/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt",
            "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
            (DataFile("imdb/imdb_labeled.jsonl.gz", "6dd1efd2ef3102f44ef8c287be908f56281abb40357ce6c18b79a39cc7954de9",
                      group="imdb"),
             DataFile("imdb/aclImdb", group="imdb"))),
    DataSet("listops", ("listops",),
            "<root>/listops/basic_{train,val,test}.tsv (the LRA release's lra_release/listops-1000/ folder)",
            "https://storage.googleapis.com/long-range-arena/lra_release.gz",
            tuple(DataFile(f"listops/basic_{s}.tsv") for s in ("train", "val", "test"))),
) + tuple(
    DataSet(task, (task,), f"<root>/music/{mat} (MATLAB keys traindata/validdata/testdata) or "
                           f"<root>/music/{pkl} (Boulanger-Lewandowski pickle; needs allow_pickle=True)",
            "http://www-etud.iro.umontreal.ca/~boulanni/icml2012",
            (DataFile(f"music/{mat}", _MUSIC_MAT_SHA[mat], group=task),
             DataFile(f"music/{pkl}", KNOWN_PICKLE_SHA256.get(pkl), group=task)))
    for task, (mat, pkl) in MUSIC_SETS.items()
)


def dataset_of(task: str) -> DataSet:
    for ds in CATALOGUE:
        if task in ds.tasks:
            return ds
    raise KeyError(task)


def _catalogue_sha(relpath: str) -> str | None:
    for ds in CATALOGUE:
        for f in ds.files:
            if f.path == relpath:
                return f.sha256
    return None


# ----------------------------------------------------------------------------------------------------------------
# errors


def missing(task: str, relpath: str, root: Path) -> ConfigError:
    ds = dataset_of(task)
    return ConfigError(f"task {task!r}: data file {relpath!r} not found under {root}; expected layout: {ds.layout}; "
                       f"standard source: {ds.source}")


def corrupt(task: str, path: Path, reason: str) -> ConfigError:
    return ConfigError(f"task {task!r}: {path} is not a usable copy of the standard file ({reason}); "
                       f"replace it with a fresh copy from {dataset_of(task).source}")


def need_root(data_dir: Path | None, task: str) -> Path:
    if data_dir is None:
        raise ConfigError(f"task {task!r} reads data files: pass --data-dir or set $RNNSWEEP_DATA "
                          f"(expected layout: {dataset_of(task).layout})")
    root = Path(data_dir)
    if not root.is_dir():
        raise ConfigError(f"task {task!r}: data directory {root} does not exist")
    return root


# ----------------------------------------------------------------------------------------------------------------
# checksums

_HASHES: dict[tuple, str] = {}
MEMO_FILE = "file-checks.json"  # in the cache folder: checks already made, by file identity (below)
_MEMO_MIN = 1 << 20  # smaller files are checked again each time (cheaper than keeping a record of them)


def _identity(path: Path) -> tuple:
    """(path, size, mtime, ctime, inode): any write to the file, or another file in its place, changes it (ctime
    cannot be set back by hand)."""
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _memo_load() -> dict[str, str]:
    try:
        with open(cache_dir() / MEMO_FILE) as f:
            d = json.load(f)
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _memo_get(kind: str, ident: tuple) -> str | None:
    if ident[1] < _MEMO_MIN:
        return None
    return _memo_load().get(f"{kind}:{json.dumps(ident)}")


def _memo_put(kind: str, ident: tuple, value: str) -> None:
    """Recorded atomically (a temporary file and a rename: concurrent trials never see half a record); entries of
    files that no longer match are dropped. Failing to record is not an error (the check is just made again)."""
    if ident[1] < _MEMO_MIN:
        return
    try:
        d = _memo_load()
        d[f"{kind}:{json.dumps(ident)}"] = value
        live = {}
        for k, v in d.items():
            try:
                i = json.loads(k.split(":", 1)[1])
                if tuple(i) == _identity(Path(i[0])):
                    live[k] = v
            except (OSError, ValueError, IndexError, TypeError):
                pass
        dest = cache_dir() / MEMO_FILE
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(live, f)
        os.replace(tmp, dest)
    except OSError:
        pass


def sha256_of(path: Path, fresh: bool = False) -> str:
    """sha256 of a file, hashed once per file version: memoised in the process and, for files of 1 MiB or more, in
    the cache folder by (path, size, mtime, ctime, inode), so that each sweep start does not read WikiText-103's
    500 MB again. ``fresh``: read the file whatever the records say (``run_search.py data``)."""
    ident = _identity(path)
    if fresh or ident not in _HASHES:
        got = None if fresh else _memo_get("sha256", ident)
        if got is None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            got = h.hexdigest()
            _memo_put("sha256", ident, got)
        _HASHES[ident] = got
    return _HASHES[ident]


def local_sums(root: Path) -> dict[str, str]:
    """{relative path: sha256} from ``<root>/SHA256SUMS`` when present (``sha256sum`` output format)."""
    f = root / "SHA256SUMS"
    if not f.is_file():
        return {}
    sums = {}
    for line in f.read_text(errors="replace").splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and len(parts[0]) == 64:
            rel = parts[1].lstrip("*").strip()
            sums[rel[2:] if rel.startswith("./") else rel] = parts[0].lower()
    return sums


def expected_sha(root: Path, relpath: str) -> set[str]:
    """Accepted checksums for a file: the catalogue's standard one and the data root's SHA256SUMS entry."""
    out = {s for s in (_catalogue_sha(relpath), local_sums(root).get(relpath)) if s}
    return out


def check_sha(root: Path, relpath: str, task: str, fresh: bool = False) -> bool | None:
    """True when the checksum matches, None when no checksum is known; a mismatch raises ConfigError."""
    want = expected_sha(root, relpath)
    if not want:
        return None
    got = sha256_of(root / relpath, fresh=fresh)
    if got not in want:
        raise corrupt(task, root / relpath, f"sha256 {got[:16]}... differs from the standard "
                                            f"{sorted(want)[0][:16]}...; if it is a deliberate copy, list its sha256 "
                                            f"in {root / 'SHA256SUMS'}")
    return True


def require(root: Path, task: str, relpath: str) -> Path:
    """Path of ``<root>/<relpath>`` after checking that it exists and (when known) its checksum."""
    p = root / relpath
    if not p.exists():
        raise missing(task, relpath, root)
    if p.is_file():
        check_sha(root, relpath, task)
    return p


def first_present(root: Path, task: str, relpaths: list[str]) -> str:
    """The first of several accepted layouts that exists; ConfigError naming the preferred one otherwise."""
    for rel in relpaths:
        if (root / rel).exists():
            return rel
    raise missing(task, relpaths[0], root)


# ----------------------------------------------------------------------------------------------------------------
# caches


def cache_dir() -> Path:
    """$RNNSWEEP_CACHE, else ~/.cache/rnnsweep (created on demand)."""
    d = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "rnnsweep").expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


def _atomic_write_from(src_stream, dest: Path) -> None:
    """Copy a stream into ``dest`` through a temporary file and a rename, so concurrent trials never see half a file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for block in iter(lambda: src_stream.read(1 << 22), b""):
                out.write(block)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def gunzip_to(src: Path, dest: Path, task: str) -> None:
    try:
        with gzip.open(src, "rb") as f:
            _atomic_write_from(f, dest)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; truncation is an EOFError
        raise corrupt(task, src, f"not a valid gzip file: {e}") from None


def _idx_ok(path: Path, size: int) -> bool:
    if not path.is_file() or path.stat().st_size != size:
        return False
    with open(path, "rb") as f:
        head = f.read(4)
    return head[:2] == b"\x00\x00" and head[2] == 0x08  # idx magic: two zero bytes, then type 0x08 (uint8)


def mnist_root(root: Path, task: str = "psmnist") -> Path:
    """A root that ``torchvision.datasets.MNIST(root, download=False)`` reads (``<root>/MNIST/raw/`` un-gzipped).

    When the data root already holds the four un-gzipped idx files they are checked and used in place; otherwise the
    ``.gz`` files are checked (sha256, gzip integrity) and decompressed once into the cache, in a folder named by
    their checksums so that different copies never mix.
    """
    raw = root / "MNIST" / "raw"
    if all((raw / n).is_file() for n in MNIST_RAW):
        for n, (_, size) in MNIST_RAW.items():
            check_sha(root, f"MNIST/raw/{n}", task)
            if not _idx_ok(raw / n, size):
                raise corrupt(task, raw / n, f"expected an idx file of {size} bytes")
        return root
    shas = []
    for g in _MNIST_GZ:
        require(root, task, f"MNIST/raw/{g}")
        shas.append(sha256_of(raw / g))
    tag = hashlib.sha256("".join(shas).encode()).hexdigest()[:16]
    croot = cache_dir() / f"mnist-{tag}"
    if _mnist_cache_ok(croot):
        return croot
    # built whole in a temporary folder and renamed into place: a damaged file (found by gunzip, or by the size of
    # what it holds) leaves nothing behind (it used to leave the 45 MB of files decompressed before it)
    tmp = Path(tempfile.mkdtemp(dir=croot.parent, prefix=f".{croot.name}.", suffix=".tmp"))
    try:
        for g in _MNIST_GZ:
            n = g[:-3]
            dest = tmp / "MNIST" / "raw" / n
            size = MNIST_RAW[n][1]
            gunzip_to(raw / g, dest, task)
            if not _idx_ok(dest, size):
                raise corrupt(task, raw / g, f"its content is not the {size}-byte idx file {n}")
        if croot.exists() and not _mnist_cache_ok(croot):  # left partial by an earlier version: replaced
            shutil.rmtree(croot, ignore_errors=True)
        try:
            os.rename(tmp, croot)
        except OSError:
            if not _mnist_cache_ok(croot):  # another process put a complete cache there first: use it
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return croot


def _mnist_cache_ok(croot: Path) -> bool:
    return all(_idx_ok(croot / "MNIST" / "raw" / n, size) for n, (_, size) in MNIST_RAW.items())


# ----------------------------------------------------------------------------------------------------------------
# CLI helpers


class FileRow(NamedTuple):
    tasks: str  # comma-separated task names that read the file
    file: str  # path relative to the data root
    present: bool
    checksum_ok: bool | None  # None: not present, or no checksum known


def _cli_root(data_dir) -> Path:
    from .base import DATA_ENV, resolve_data_dir

    root = resolve_data_dir(data_dir)
    if root is None:
        raise ConfigError(f"no data directory: pass --data-dir or set ${DATA_ENV}")
    if not root.is_dir():
        raise ConfigError(f"data directory {root} does not exist")
    return root


def list_files(data_dir: str | os.PathLike | None) -> list[FileRow]:
    """One row per catalogue file: which tasks read it, whether it is present, whether its checksum matches.

    ``data_dir`` None means $RNNSWEEP_DATA (as for tasks)."""
    root = _cli_root(data_dir)
    rows = []
    for ds in CATALOGUE:
        for f in ds.files:
            p = root / f.path
            ok = None
            if p.is_file() and expected_sha(root, f.path):
                ok = sha256_of(p) in expected_sha(root, f.path)
            rows.append(FileRow(",".join(ds.tasks), f.path, p.exists(), ok))
    return rows


def format_check(path: Path, task: str) -> None:
    """:func:`_format_check`, made once per file version (memoised like :func:`sha256_of`; only a file that passed)."""
    if path.is_dir():
        return
    ident = _identity(path)
    if _memo_get("format", ident) == "ok":
        return
    _format_check(path, task)
    _memo_put("format", ident, "ok")


def _format_check(path: Path, task: str) -> None:
    """Cheap structural check of a present file by its kind; ConfigError when unreadable."""
    name = path.name
    if path.is_dir():
        return
    if name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as f:
                while f.read(1 << 22):
                    pass
        except (OSError, EOFError, zlib.error) as e:
            raise corrupt(task, path, f"not a valid gzip file: {e}") from None
    elif name.endswith(".mat"):
        from .music import read_mat  # local: scipy is only needed here

        read_mat(path, task)
    elif name.endswith((".txt", ".tokens")):
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise corrupt(task, path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    elif name.endswith(".tsv"):
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.readline().rstrip("\n").split("\t")
        if head[:2] != ["Source", "Target"]:
            raise corrupt(task, path, "the first line is not the header 'Source<TAB>Target'")


def verify(data_dir: str | os.PathLike | None) -> list[FileRow]:
    """Check checksum and format of every present catalogue file; ConfigError listing the bad ones, else the rows."""
    root = _cli_root(data_dir)
    rows = list_files(root)
    bad = []
    for ds in CATALOGUE:
        for f in ds.files:
            p = root / f.path
            if not p.exists():
                continue
            try:
                if p.is_file():
                    check_sha(root, f.path, ds.tasks[0], fresh=True)  # an explicit check reads every byte
                _format_check(p, ds.tasks[0])
            except ConfigError as e:
                bad.append(f"{f.path}: {e}")
    if bad:
        raise ConfigError(f"{len(bad)} bad data file(s): " + " | ".join(bad))
    return rows


def prepare(data_dir: str | os.PathLike | None) -> list[str]:
    """Build the caches the loaders need (decompressed MNIST) for the datasets present; one message per action."""
    root = _cli_root(data_dir)
    done = []
    raw = root / "MNIST" / "raw"
    if any((raw / g).is_file() for g in _MNIST_GZ) or any((raw / n).is_file() for n in MNIST_RAW):
        done.append(f"MNIST: idx files ready in {mnist_root(root) / 'MNIST' / 'raw'}")
    return done
