"""Catalogue and integrity: a missing file or a corrupt one is one ConfigError line, never a partial dataset."""
import gzip
import shutil

import numpy as np
import pytest
import scipy.io

from datasets import files
from datasets.base import build_task, tasks
from rnns.errors import ConfigError
from tiny_data import HAVE_REAL, REAL, declare

needs_real = pytest.mark.skipif(not HAVE_REAL, reason=f"real data not found at {REAL}")

FILE_TASKS = sorted({t for ds in files.CATALOGUE for t in ds.tasks})


def test_catalogue_covers_every_file_task():
    reg = tasks()
    synthetic = {"copy_nnrnn", "copy_lru", "copy_urlstm", "copy_exprnn", "adding"}
    assert set(FILE_TASKS) == set(reg) - synthetic
    for ds in files.CATALOGUE:
        assert ds.source.startswith("http") and ds.layout.startswith("<root>/")
        for f in ds.files:
            assert f.sha256 is None or len(f.sha256) == 64


@needs_real
def test_catalogue_checksums_match_shared_sums():
    shipped = files.local_sums(REAL)
    for ds in files.CATALOGUE:
        for f in ds.files:
            if f.path in shipped:
                assert f.sha256 == shipped[f.path], f.path


@pytest.mark.parametrize("task", [t for t in FILE_TASKS if t != "listops"] + ["listops"])
def test_missing_files_name_file_layout_and_source(tmp_path, task):
    with pytest.raises(ConfigError) as e:
        build_task(task, data_dir=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "not found" in msg and "expected layout" in msg and "http" in msg


def test_no_data_dir(monkeypatch):
    monkeypatch.delenv("RNNSWEEP_DATA", raising=False)
    with pytest.raises(ConfigError, match="--data-dir"):
        build_task("ptb_char")


def _copy(rel: str, dst):
    (dst / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REAL / rel, dst / rel)


@needs_real
def test_checksum_mismatch(tmp_path):
    for s in ("train", "valid", "test"):
        _copy(f"ptb/ptb.char.{s}.txt", tmp_path)
    p = tmp_path / "ptb" / "ptb.char.train.txt"
    p.write_bytes(p.read_bytes()[:-1000])  # truncated
    with pytest.raises(ConfigError, match="sha256.*differs.*SHA256SUMS"):
        build_task("ptb_char", data_dir=tmp_path)


@needs_real
def test_ptb_not_utf8(tmp_path):
    for s in ("train", "valid", "test"):
        _copy(f"ptb/ptb.{s}.txt", tmp_path)
    p = tmp_path / "ptb" / "ptb.valid.txt"
    p.write_bytes(p.read_bytes() + b"\xff\xfe bad\n")
    declare(tmp_path, "ptb/ptb.valid.txt")  # the checksum is accepted: the format check must catch it
    with pytest.raises(ConfigError, match="not UTF-8"):
        build_task("ptb_word", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="not UTF-8"):
        files.verify(tmp_path)


@needs_real
def test_bad_and_truncated_gzip(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(files.CACHE_ENV, str(cache))
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        _copy(f"MNIST/raw/{name}", tmp_path)
    p = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:50000])
    declare(tmp_path, "MNIST/raw/t10k-images-idx3-ubyte.gz")
    with pytest.raises(ConfigError, match="gzip"):
        build_task("psmnist", data_dir=tmp_path)
    # the 45 MB decompressed before the damaged file was found are not left in the cache
    left = [p for p in cache.iterdir() if p.name != files.MEMO_FILE]  # the record of checks made is kept
    assert left == [], list(cache.rglob("*"))
    p.write_bytes(b"this is not gzip at all")
    (tmp_path / "SHA256SUMS").unlink()
    declare(tmp_path, "MNIST/raw/t10k-images-idx3-ubyte.gz")
    with pytest.raises(ConfigError, match="gzip"):
        build_task("smnist_rru", data_dir=tmp_path)


def test_gzip_of_the_wrong_content(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(raw / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03" + bytes(100))
        declare(tmp_path, f"MNIST/raw/{name}")
    with pytest.raises(ConfigError, match="idx file"):
        build_task("smnist", data_dir=tmp_path)
    assert not any(files.cache_dir().glob("*mnist-*")), "nothing of a refused copy is cached"


def test_mat_missing_keys(tmp_path):
    (tmp_path / "music").mkdir()
    roll = np.zeros((10, 88), np.uint8)
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = roll, roll
    scipy.io.savemat(tmp_path / "music" / "JSB_Chorales.mat", {"traindata": cell, "validdata": cell})
    declare(tmp_path, "music/JSB_Chorales.mat")
    with pytest.raises(ConfigError, match="no key 'testdata'"):
        build_task("jsb", data_dir=tmp_path)
    scipy.io.savemat(tmp_path / "music" / "JSB_Chorales.mat",
                     {"traindata": cell, "validdata": cell, "testdata": np.zeros((3, 5))})
    (tmp_path / "SHA256SUMS").unlink()
    declare(tmp_path, "music/JSB_Chorales.mat")
    with pytest.raises(ConfigError, match="testdata"):
        build_task("jsb", data_dir=tmp_path)
    (tmp_path / "music" / "JSB_Chorales.mat").write_bytes(b"MATLAB 5.0 garbage" * 3)
    (tmp_path / "SHA256SUMS").unlink()
    declare(tmp_path, "music/JSB_Chorales.mat")
    with pytest.raises(ConfigError, match="MATLAB"):
        build_task("jsb", data_dir=tmp_path)


@needs_real
def test_list_verify_prepare_on_shared_data():
    rows = files.list_files(REAL)
    byfile = {r.file: r for r in rows}
    assert byfile["ptb/ptb.train.txt"].present and byfile["ptb/ptb.train.txt"].checksum_ok
    assert byfile["music/JSB_Chorales.mat"].checksum_ok
    assert not byfile["cifar-10-batches-py/data_batch_1"].present
    assert byfile["cifar-10-batches-py/data_batch_1"].checksum_ok is None
    assert files.verify(REAL) == rows
    msgs = files.prepare(REAL)
    assert any("MNIST" in m for m in msgs)
    cached = files.mnist_root(REAL) / "MNIST" / "raw"
    assert sorted(p.name for p in cached.iterdir()) == sorted(files.MNIST_RAW)
    assert files.sha256_of(cached / "t10k-labels-idx1-ubyte") == files.MNIST_RAW["t10k-labels-idx1-ubyte"][0]


def test_verify_reports_bad_files(tmp_path):
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.test.txt").write_text("not the real file\n")
    with pytest.raises(ConfigError, match="1 bad data file.*ptb/ptb.test.txt"):
        files.verify(tmp_path)
    rows = files.list_files(tmp_path)
    assert [r for r in rows if r.present] == [files.FileRow("ptb_word", "ptb/ptb.test.txt", True, False)]


@needs_real
def test_uncompressed_mnist_in_the_data_root_is_used_in_place(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in files.MNIST_RAW:
        with gzip.open(REAL / "MNIST" / "raw" / f"{name}.gz") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    assert files.mnist_root(tmp_path, "psmnist") == tmp_path
    assert build_task("psmnist_rru", data_dir=tmp_path).size("val") == 10000
