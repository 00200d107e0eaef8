"""Data files are hashed and format-checked once per file version, not at each sweep start (WikiText-103: 500 MB
read each time): the result is kept in the cache folder by (path, size, mtime, ctime, inode), and any change to the
file makes the check run again. ``run_search.py data`` reads every byte whatever the record says."""
from __future__ import annotations

import hashlib

import pytest

from datasets import files
from rnns.errors import ConfigError

BIG = 2 << 20  # above the size from which checks are recorded


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(files.CACHE_ENV, str(tmp_path / "cache"))
    r = tmp_path / "data"
    (r / "ptb").mkdir(parents=True)
    data = ("the cat sat on the mat\n" * (BIG // 23 + 1)).encode()
    (r / "ptb" / "ptb.train.txt").write_bytes(data)
    (r / "SHA256SUMS").write_text(f"{hashlib.sha256(data).hexdigest()}  ./ptb/ptb.train.txt\n")
    files._HASHES.clear()
    return r


def _no_hashing(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the file was hashed again")
    monkeypatch.setattr(files.hashlib, "sha256", refuse)


def test_a_file_is_hashed_once_across_processes_and_again_when_it_changes(root, monkeypatch):
    assert files.check_sha(root, "ptb/ptb.train.txt", "ptb_word") is True
    assert (files.cache_dir() / files.MEMO_FILE).is_file()
    files._HASHES.clear()  # a new process: only the record in the cache folder is left
    with monkeypatch.context() as m:
        _no_hashing(m)
        assert files.check_sha(root, "ptb/ptb.train.txt", "ptb_word") is True
        with pytest.raises(AssertionError, match="hashed again"):  # data checks read every byte
            files.check_sha(root, "ptb/ptb.train.txt", "ptb_word", fresh=True)
    p = root / "ptb" / "ptb.train.txt"
    b = bytearray(p.read_bytes())
    b[100] ^= 1  # same size, one bit: a new version of the file
    p.write_bytes(bytes(b))
    with pytest.raises(ConfigError, match="sha256 .* differs"):
        files.check_sha(root, "ptb/ptb.train.txt", "ptb_word")


def test_a_format_check_is_made_once_per_file_version(root, monkeypatch):
    p = root / "ptb" / "ptb.train.txt"
    files.format_check(p, "ptb_word")
    calls = []
    monkeypatch.setattr(files, "_format_check", lambda path, task: calls.append(path))
    files.format_check(p, "ptb_word")
    assert calls == []
    p.write_bytes(p.read_bytes() + b"\xff\xfe\n")  # changed: checked again, and refused
    monkeypatch.undo()
    monkeypatch.setenv(files.CACHE_ENV, str(root.parent / "cache"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        files.format_check(p, "ptb_word")


def test_a_damaged_record_is_ignored(root):
    files.check_sha(root, "ptb/ptb.train.txt", "ptb_word")
    (files.cache_dir() / files.MEMO_FILE).write_text("{not json")
    files._HASHES.clear()
    assert files.check_sha(root, "ptb/ptb.train.txt", "ptb_word") is True
