"""A pack's checkpoint on disk: every member's trainer state is an ordinary trial checkpoint (read, digest-checked
and loaded as one: the confirmation stage and `reproduce` use it unchanged), and a pack resumed from the files
trains on exactly as the uninterrupted pack."""
from __future__ import annotations

import pytest

from search.pack import PackTrainer
from search.pack_tune import load_pack, member_checkpoint_dir, save_pack
from search.train import Trainer
from search.trainable import CheckpointError, read_checkpoint

CFG = dict(task="copy_nnrnn", model="rnn", hidden_size=16, lr=1e-3, optimizer="rmsprop", alpha=0.9, epochs=3,
           batch_size=8, delay=5, onehot=True, updates=4, n_val=16, grad_clip=1.0, seed=0)
MEMBERS = [CFG, {**CFG, "lr": 3e-3}, {**CFG, "lr": 1e-2, "alpha": 0.99}]


def test_resume_from_files_equals_uninterrupted(tmp_path):
    a = PackTrainer(MEMBERS, ids=["a", "b", "c"])
    a.run_epoch()
    save_pack(a, tmp_path)
    want = a.run_epoch()
    b = PackTrainer(MEMBERS, ids=["a", "b", "c"])
    load_pack(b, tmp_path)
    got = b.run_epoch()
    for mid in want:
        for k, v in want[mid].items():
            if k != "epoch_seconds":
                assert got[mid][k] == v, (mid, k)


def test_member_checkpoint_is_a_trial_checkpoint(tmp_path):
    p = PackTrainer(MEMBERS, ids=["a", "b", "c"])
    got = p.run_epoch()
    save_pack(p, tmp_path)
    for mid, cfg in zip("abc", MEMBERS):
        st = read_checkpoint(member_checkpoint_dir(tmp_path, mid))
        tr = Trainer(cfg)
        tr.load_state_dict(st)
        assert tr.epoch == 1
        assert tr.evaluate("val")["loss"] == pytest.approx(got[mid]["val_loss"], rel=1e-6)
    f = member_checkpoint_dir(tmp_path, "b") / "trainer.pt"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_pack(PackTrainer(MEMBERS, ids=["a", "b", "c"]), tmp_path)


def test_memory_check_refuses_a_pack_too_big(monkeypatch):
    from rnns.errors import ConfigError
    from search import pack_tune

    p = PackTrainer(MEMBERS, ids=["a", "b", "c"])
    need = pack_tune.pack_bytes(p)
    assert need > 3 * 4 * sum(t.numel() for t in p.members["a"].model.parameters())
    pack_tune.check_pack_memory(p)  # a few MB: fits
    monkeypatch.setattr(pack_tune, "free_bytes", lambda device: int(need * 0.9))
    with pytest.raises(ConfigError, match=r"a pack of 3 members needs about .* GiB free on cpu: use --pack 2 or fewer"):
        pack_tune.check_pack_memory(p)
