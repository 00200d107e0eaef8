"""Disk a sweep keeps and needs (search.resources): finished trials keep their checkpoints only while they may be the
best of their model, chosen by the rule the sweep tags its best runs with; the free space a sweep asks for comes from
its largest model and how many checkpoints it keeps at once (rru/ptb_word: 767 MB per checkpoint, issue 16)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from rnns.errors import ConfigError
from search import resources as R
from search import sweep as S

BUDGET = 3


def _trial(root: Path, tid: str, model: str, score: float | None, epoch: int = BUDGET, diverged: bool = False):
    d = root / tid
    (d / "checkpoint_000002").mkdir(parents=True)
    (d / "checkpoint_000002" / "trainer.pt").write_bytes(b"x" * 1000)
    res = {"epoch": epoch, **({"best_val_loss": score} if score is not None else {}), **({"diverged": 1} if diverged else {})}
    return SimpleNamespace(trial_id=tid, config={"model": model, "lr": 0.1}, last_result=res, path=str(d))


def _with_ckpt(root: Path) -> set[str]:
    return {d.name for d in root.iterdir() if any(d.glob("checkpoint_*"))}


def test_finished_trials_keep_checkpoints_only_while_they_can_be_the_best_of_their_model(tmp_path):
    pr = R.CheckpointPruner(metric_name="loss", mode="min", budget=BUDGET)
    story = [("a", "lstm", 0.5, BUDGET), ("b", "lstm", 0.7, BUDGET), ("c", "rnn", 0.9, BUDGET),
             ("d", "lstm", 0.3, BUDGET), ("e", "lstm", 0.1, 1), ("f", "rnn", None, BUDGET)]
    expect = [{"a"}, {"a"}, {"a", "c"}, {"d", "c"}, {"d", "c"}, {"d", "c"}]
    trials = []
    for (tid, m, score, ep), kept in zip(story, expect):
        t = _trial(tmp_path, tid, m, score, ep)
        trials.append(t)
        pr.on_trial_complete(0, [], t)
        running = {x.trial_id for x in trials} - set(pr.done)
        assert _with_ckpt(tmp_path) - running == kept, tid
    assert pr.freed == 4 * 1000  # b, a, e (stopped early), f (no score)
    # the same choice as the sweep's own (tag_without_confirmation takes the first of _ranked per model)
    rows = [{"config": t.config, "metrics": t.last_result, "error": False} for t in trials]
    ranked = S._ranked(rows, "loss", "min", BUDGET)
    picked = {next(r for r in ranked if r["config"]["model"] == m)["config"]["model"] for m in ("lstm", "rnn")}
    assert picked == {"lstm", "rnn"}
    assert {trials[rows.index(next(r for r in ranked if r["config"]["model"] == m))].trial_id
            for m in ("lstm", "rnn")} == _with_ckpt(tmp_path)


def test_running_trials_and_ties_keep_theirs(tmp_path):
    pr = R.CheckpointPruner(metric_name="acc", mode="max", budget=BUDGET)
    running = _trial(tmp_path, "run", "lstm", 0.99)
    for tid in ("x", "y"):
        t = _trial(tmp_path, tid, "lstm", 0.5)
        t.last_result = {"epoch": BUDGET, "best_val_acc": 0.8}
        pr.on_trial_complete(0, [], t)
    assert _with_ckpt(tmp_path) == {"run", "x", "y"}, "a running trial is never touched; a tie keeps both"
    assert running.trial_id not in pr.done


def test_the_free_space_asked_for_comes_from_the_largest_model():
    from spaces.registry import get_space

    sp = get_space("rru/ptb_word")
    models = tuple(sp.models)
    n = R.largest_params(sp, S.sweep_space(sp, sp.budget, {}, 0), models, None)
    assert n == 48_000_000  # its parameter budget
    assert 760e6 < R.state_bytes(n) < 775e6  # the 767 MB checkpoint the audit measured
    exp = S.Experiment(space="rru/ptb_word", num_samples=64, max_concurrent=4, confirm_top=1, confirm_seeds=3)
    alive = R.checkpoints_alive(scheduler="asha", num_samples=64, budget=sp.budget, concurrent=4, models=4,
                                confirm_top=1, confirm_seeds=3)
    assert alive == 8 + 4 + 12  # not 64: the pruned trials' checkpoints are gone
    need = S.sweep_disk_need(exp, sp, S.sweep_space(sp, sp.budget, {}, 0), models, sp.budget)
    assert need > 20 * 2**30 and need == R.needed_bytes(R.state_bytes(n), alive)
    pbt = R.checkpoints_alive(scheduler="pbt", num_samples=8, budget=5, concurrent=4, models=1, confirm_top=0,
                              confirm_seeds=1)
    assert pbt == 40
    # a model no machine can hold (the fault tests' 1 PB recurrent matrix) fails on allocation, before any checkpoint:
    # it does not make the sweep ask for a petabyte of disk
    demo = get_space("demo/copy")
    huge = S.sweep_space(demo, 3, {"hidden_size": 16_000_000}, 0)  # the published seed point keeps its own width
    assert R.largest_params(demo, huge, tuple(demo.models), None) < 10**6
    small = R.largest_params(demo, S.sweep_space(demo, 3, {}, 0), tuple(demo.models), None)
    assert 0 < small < 10**6 and R.needed_bytes(R.state_bytes(small), 10) < 128 * 2**20


def test_too_little_space_for_the_estimate_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv(R.MIN_FREE_ENV, raising=False)
    free = R.free_bytes(str(tmp_path))
    S.check_free_space(str(tmp_path / "new" / "res"), need=free // 2)
    with pytest.raises(ConfigError, match=r"MiB free under --storage .* need about \d+ MiB") as e:
        S.check_free_space(str(tmp_path / "new" / "res"), need=free * 2)
    assert "\n" not in str(e.value) and not (tmp_path / "new").exists()
    monkeypatch.setenv(R.MIN_FREE_ENV, "1")  # the user's amount replaces the estimate
    S.check_free_space(str(tmp_path), need=free * 2)
    monkeypatch.setenv(R.MIN_FREE_ENV, "lots")
    with pytest.raises(ConfigError, match="must be a number of MiB"):
        S.check_free_space(str(tmp_path))


@pytest.mark.parametrize("storage", [None, "a/b/res"])
def test_a_sweep_that_fails_after_claiming_its_folder_leaves_no_empty_folders(tmp_path, monkeypatch, storage):
    monkeypatch.chdir(tmp_path)

    def no_ray(*a, **k):
        assert (tmp_path / (storage or "rnnsweep_results")).is_dir(), "claimed before Ray starts"
        raise ConfigError("no Ray here")

    monkeypatch.setattr(S, "start_ray", no_ray)
    with pytest.raises(ConfigError, match="no Ray here"):
        S.run_sweep(S.Experiment(space="demo/copy", num_samples=1, mlflow_uri=f"sqlite:///{tmp_path}/m.db",
                                 storage=storage, max_budget=1, overrides={"updates": 2, "n_val": 10}))
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no results folder, no store"
