"""Storage faults: an unwritable --storage is refused before Ray or MLflow start; a checkpoint that is truncated,
damaged, or was cut short by a full disk is never taken as valid (resuming from it fails with a clear error)."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from conftest import processes_under, run_cli
from search.trainable import CKPT_FILE, DIGEST_FILE, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from search.train import Trainer

CFG = {"task": "copy_nnrnn", "model": "lstm", "delay": 5, "updates": 6, "n_val": 40, "hidden_size": 16, "epochs": 3,
       "lr": 3e-3, "seed": 7, "optimizer": "rmsprop"}


# ---- unwritable storage (tests run as root, for whom permission bits do not stop writes) ---------------------------
@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_unwritable_storage_is_one_line_before_anything_starts(where, tmp_path, cli_env, ray_tmp):
    (tmp_path / "afile").write_text("a regular file, not a folder\n")
    storage = str(tmp_path / "afile" / "results") if where == "under-a-file" else f"/proc/rnnsweep-{uuid.uuid4().hex}"
    p = run_cli(["sweep", "--storage", storage, "--name", "s", "--quiet"], cwd=tmp_path, env=cli_env, timeout=180)
    assert p.returncode == 2, (p.stdout[-500:], p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--storage" in lines[0], p.stderr[-2000:]
    assert {x.name for x in tmp_path.iterdir()} == {"afile"}, "no MLflow store, no results folder"
    assert processes_under(ray_tmp) == [], "Ray was started for a sweep that cannot run"


# ---- checkpoints -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained():
    tr = Trainer(CFG, device="cpu")
    tr.run_epoch()
    return tr


def _saved(trained, d):
    d.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(trained, d)


def test_intact_checkpoint_resumes(trained, tmp_path):
    _saved(trained, tmp_path)
    assert (tmp_path / DIGEST_FILE).is_file()
    tr = Trainer(CFG, device="cpu")
    load_checkpoint(tr, tmp_path)
    assert tr.epoch == 1 and tr.best["val"] == trained.best["val"]


@pytest.mark.parametrize("damage", ["truncated-half", "emptied", "bytes-flipped"])
@pytest.mark.parametrize("with_digest", [True, False], ids=["with-digest", "without-digest"])
def test_damaged_checkpoint_is_refused(trained, tmp_path, damage, with_digest):
    path = _saved(trained, tmp_path)
    if not with_digest:  # a checkpoint written before digests existed: torch's own checks are all there is
        (tmp_path / DIGEST_FILE).unlink()
        if damage == "bytes-flipped":
            pytest.skip("torch.load accepts bytes changed in place; only the digest catches that")
    data = path.read_bytes()
    if damage == "truncated-half":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "emptied":
        path.write_bytes(b"")
    else:
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 64]) + data[mid + 64:])
    tr = Trainer(CFG, device="cpu")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tr, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and "refusing to resume" in msg
    assert tr.epoch == 0, "nothing of the damaged checkpoint was loaded"


def test_missing_checkpoint_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        read_checkpoint(tmp_path)


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 1 MiB filesystem (tmpfs). Needs the right to mount (root here); skipped where it is missing."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip()[:100]})")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)  # busy: detach it all the same


def test_disk_full_while_saving_leaves_no_valid_looking_checkpoint(trained, tiny_fs, tmp_path):
    size = _saved(trained, tmp_path / "probe").stat().st_size
    st = os.statvfs(tiny_fs)
    filler = st.f_bavail * st.f_frsize - size // 2  # room for half a checkpoint
    assert filler > 0
    (tiny_fs / "filler").write_bytes(b"\0" * filler)
    d = tiny_fs / "ckpt"
    d.mkdir()
    with pytest.raises(CheckpointError, match="could not write the checkpoint .*disk full") as e:
        save_checkpoint(trained, d)
    assert "\n" not in str(e.value)
    assert not (d / CKPT_FILE).exists(), "a partial checkpoint was put in place"
    assert list(d.iterdir()) == [], "the partial file is removed"
    with pytest.raises(CheckpointError):
        read_checkpoint(d)


def test_too_little_free_space_is_refused_before_anything_starts(tiny_fs, tmp_path, monkeypatch, capsys):
    """--storage on a 1 MiB filesystem: one line, exit 2, before Ray or MLflow start (the default minimum is
    512 MiB, $RNNSWEEP_MIN_FREE_MB)."""
    import ray

    import run_search

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RNNSWEEP_MIN_FREE_MB", raising=False)
    rc = run_search.main(["sweep", "--storage", str(tiny_fs / "results"), "--samples", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "MiB free under --storage" in err[0], err
    assert list(tiny_fs.iterdir()) == [] and not (tmp_path / "mlruns.db").exists()
    assert not ray.is_initialized()
