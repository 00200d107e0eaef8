"""Bad input found by the second audit (issue 16, item 7): each is one line on stderr, exit status 2, and nothing
written (no results folder, no new MLflow store, no Ray process); a password in a tracking URI is never echoed."""
from __future__ import annotations

import sqlite3

import pytest

from conftest import processes_under, run_cli


def _truncated_db(work):
    db = work / "mlruns.db"
    con = sqlite3.connect(db)
    con.execute("create table t(x text)")
    con.executemany("insert into t values (?)", [("x" * 500,)] * 2000)
    con.commit()
    con.close()
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)


def _foreign_db(work):
    con = sqlite3.connect(work / "mlruns.db")
    con.execute("create table experiments(x text)")
    con.execute("create table runs(y int)")
    con.commit()
    con.close()


SWEEP = ["sweep", "--samples", "1", "--max-budget", "1", "--quiet"]
CASES = {
    "max-failures-negative": (SWEEP + ["--max-failures", "-3"], None, ["--max-failures must be >= 0"]),
    "name-dotdot": (SWEEP + ["--name", ".."], None, ["'..' is not a sweep name"]),
    "name-dot": (SWEEP + ["--name", "."], None, ["'.' is not a sweep name"]),
    "name-slashes": (SWEEP + ["--name", "///"], None, ["'///' is not a sweep name"]),
    "name-path": (SWEEP + ["--name", "../../x"], None, ["is not a sweep name"]),
    "name-empty": (SWEEP + ["--name", ""], None, ["is not a sweep name"]),
    "file-store": (SWEEP + ["--mlflow-uri", "file:///tmp/rnnsweep-file-store"], None, ["file store", "sqlite:///"]),
    "path-store": (SWEEP + ["--mlflow-uri", "mlruns"], None, ["file store"]),
    "db-is-a-folder": (SWEEP, lambda w: (w / "mlruns.db").mkdir(), ["mlruns.db is a folder"]),
    "db-truncated": (SWEEP, _truncated_db, ["not a readable SQLite database", "malformed"]),
    "db-other-format": (SWEEP, lambda w: (w / "mlruns.db").write_text("name,value\na,1\n" * 100),
                        ["not a readable SQLite database"]),
    "db-of-another-program": (SWEEP, _foreign_db, ["SQLite database of something else", "experiments"]),
    "best-on-a-folder-db": (["best", "--task", "copy_nnrnn"], lambda w: (w / "mlruns.db").mkdir(), ["is a folder"]),
    "reproduce-seeds-negative": (["reproduce", "--task", "copy_nnrnn", "--seeds", "-1"], None, ["--seeds must be >= 1"]),
    "reproduce-seeds-zero": (["reproduce", "--published", "demo/copy:nnrnn-lstm", "--seeds", "0"], None,
                             ["--seeds must be >= 1"]),
    "password-in-uri": (SWEEP + ["--mlflow-uri", "http://alice:" + "s3cr3t-pw@127.0.0.1:9"], None,
                        ["alice:***@127.0.0.1:9", "unreachable"]),
}


CLI_CASES = ("db-truncated", "db-of-another-program", "password-in-uri", "name-dotdot")  # also through a real process; the rest in-process


def _check(rc, out, err, expected, before, work):
    assert rc == 2, (rc, out[-500:], err[-2000:])
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    for e in expected:
        assert e in lines[0], lines[0]
    assert "s3cr3t" not in out + err
    after = sorted((p.name, p.is_dir(), p.stat().st_size) for p in work.iterdir())
    assert after == before, f"written: {after} (before: {before})"


def _setup(case, tmp_path):
    args, setup, expected = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    if setup:
        setup(work)
    return args, expected, work, sorted((p.name, p.is_dir(), p.stat().st_size) for p in work.iterdir())


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_line_exit_2_nothing_written(case, tmp_path, monkeypatch, capsys):
    import ray

    import run_search

    args, expected, work, before = _setup(case, tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    rc = run_search.main(args)
    out, err = capsys.readouterr()
    _check(rc, out, err, expected, before, work)
    assert not ray.is_initialized()


@pytest.mark.parametrize("case", CLI_CASES)
def test_through_the_cli(case, tmp_path, cli_env, ray_tmp):
    args, expected, work, before = _setup(case, tmp_path)
    p = run_cli(args, cwd=work, env=cli_env, timeout=300)
    _check(p.returncode, p.stdout, p.stderr, expected, before, work)
    assert processes_under(ray_tmp) == []


def test_a_broken_test_split_is_found_before_training(tmp_path, cli_env, ray_tmp):
    """PTB's test file in Latin-1 (train and valid fine): refused before Ray starts, not after the sweep trained."""
    root = tmp_path / "data"
    (root / "ptb").mkdir(parents=True)
    words = " ".join(["the", "cat", "sat", "on", "a", "mat", "<unk>", "N"] * 40)
    sums = []
    for split in ("train", "valid", "test"):
        text = (words + "\n") * 20
        data = text.encode("utf-8")
        if split == "test":
            data = text.encode("latin-1") + "caf\u00e9 na\u00efve\n".encode("latin-1")  # not UTF-8
        (root / "ptb" / f"ptb.{split}.txt").write_bytes(data)
        import hashlib

        sums.append(f"{hashlib.sha256(data).hexdigest()}  ./ptb/ptb.{split}.txt\n")
    (root / "SHA256SUMS").write_text("".join(sums))  # deliberate copies: only the format check can refuse them
    work = tmp_path / "work"
    work.mkdir()
    env = {**cli_env, "RNNSWEEP_CACHE": str(tmp_path / "cache")}
    env.pop("RNNSWEEP_DATA", None)
    p = run_cli(["sweep", "--space", "rru/ptb_word", "--data-dir", str(root), "--samples", "1", "--max-budget", "1",
                 "--quiet"], cwd=work, env=env, timeout=300)
    assert p.returncode == 2, (p.stdout[-500:], p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "ptb.test.txt" in lines[0] and "not UTF-8" in lines[0], p.stderr[-2000:]
    assert list(work.iterdir()) == [] and processes_under(ray_tmp) == []
