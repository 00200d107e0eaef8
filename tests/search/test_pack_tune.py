"""Trial packs on the Tune side: the per-member rung table is Tune's ASHA, members reach Optuna as their own
trials (pruned when stopped early), preset points are grouped by shape."""
from __future__ import annotations

import random

import pytest

from search.pack_tune import Rungs, check_pack_options, group_points, members_of, pack_config
from rnns.errors import ConfigError


class _T:
    def __init__(self, tid):
        self.trial_id = tid


@pytest.mark.parametrize("mode,max_t,grace,rf", [("max", 9, 1, 3), ("min", 20, 2, 2), ("min", 10, 1, 2.5),
                                                 ("max", 27, 1, 3)])
def test_rungs_decide_as_tune_asha(mode, max_t, grace, rf):
    """The same stream of asynchronous results gives the same stop decisions from Tune's ASHAScheduler (one
    bracket) and from the rung table, trial by trial."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    rng = random.Random(7)
    asha = ASHAScheduler(metric="m", mode=mode, max_t=max_t, grace_period=grace, reduction_factor=rf,
                         time_attr="epoch")
    table = Rungs(mode=mode, max_t=max_t, grace_period=grace, reduction_factor=rf)
    trials = {f"t{i}": _T(f"t{i}") for i in range(40)}
    for t in trials.values():
        asha.on_trial_add(None, t)
    epoch = {k: 0 for k in trials}
    alive = set(trials)
    stops = 0
    while alive:
        k = rng.choice(sorted(alive))
        epoch[k] += 1
        value = rng.gauss(0, 1) + 0.05 * epoch[k] * (1 if mode == "max" else -1)
        if rng.random() < 0.03:
            value = float("nan")
        want = asha.on_trial_result(None, trials[k], {"epoch": epoch[k], "m": value})
        got = table.report({k: (epoch[k], value)})
        if epoch[k] >= max_t:
            assert want == TrialScheduler.STOP and got == []  # the member has reached its budget and ends
            alive.discard(k)
            continue
        assert (k in got) == (want == TrialScheduler.STOP), (k, epoch[k], value)
        if got:
            stops += 1
            alive.discard(k)
    assert stops > 5  # the stream exercised the cutoff


def test_pack_config_round_trip():
    cfg = pack_config([("a_m0", {"model": "rnn", "lr": 0.1}), ("a_m1", {"model": "rnn", "lr": 0.2})])
    assert cfg["model"] == "rnn" and isinstance(cfg["pack"], str)
    assert members_of(cfg) == [("a_m0", {"model": "rnn", "lr": 0.1}), ("a_m1", {"model": "rnn", "lr": 0.2})]
    assert members_of({"model": "rnn", "lr": 0.1}) is None


def test_group_points_by_shape():
    pts = [{"model": "rnn", "hidden_size": h, "lr": lr, "x": None} for h in (8, 16) for lr in (0.1, 0.2, 0.3)]
    packs = group_points(pts, 2)
    got = [[c for _, c in members_of(p)] for p in packs]
    assert sorted(len(g) for g in got) == [1, 1, 2, 2]
    for g in got:
        assert len({c["hidden_size"] for c in g}) == 1  # a pack holds one shape
        assert all("x" not in c for c in g)  # None = not applicable, never a member's value
    assert sorted(c["lr"] for g in got for c in g) == sorted(p["lr"] for p in pts)


def test_pack_options_refused_in_one_line():
    check_pack_options(1, "hyperband", "tpe")
    check_pack_options(4, "asha", "tpe")
    with pytest.raises(ConfigError, match="--pack 4 works with the schedulers asha, fifo"):
        check_pack_options(4, "pbt", "tpe")
    with pytest.raises(ConfigError, match="--pack must be >= 1"):
        check_pack_options(0, "asha", "tpe")


def test_members_are_optuna_trials_with_the_fidelity_rule():
    """Each member is its own Optuna trial: complete at the full budget, PRUNED when stopped early or diverged,
    intermediate values per member; the searcher ends after --samples members."""
    from optuna.trial import TrialState

    from search.algorithms import build_searcher
    from search.sweep import sweep_space
    from spaces.registry import get_space

    space = get_space("demo/copy")
    run_space = sweep_space(space, 3, {}, 0)
    limiter, _, _ = build_searcher("tpe", run_space, ("rnn",), metric="val_loss", mode="min", seed=0, full_budget=3,
                                   max_concurrent=4, num_samples=5, pack=3)
    limiter.set_search_properties("val_loss", "min", {})
    packer = limiter.searcher
    c1 = limiter.suggest("p1")
    c2 = limiter.suggest("p2")
    m1, m2 = members_of(c1), members_of(c2)
    assert 1 <= len(m1) <= 3 and 1 <= len(m2) <= 3 and len(m1) + len(m2) <= 5
    ids = [m for m, _ in m1 + m2]
    assert len(set(ids)) == len(ids)
    res = {}
    for i, (mid, _) in enumerate(m1):
        res[mid] = {"epoch": 1, "val_loss": 1.0 + i, "diverged": 0}
    limiter.on_trial_result("p1", {"epoch": 1, "val_loss": 1.0, "members": res})
    final = {}
    for i, (mid, _) in enumerate(m1):
        final[mid] = ({"epoch": 1, "val_loss": 1.0 + i, "diverged": 0, "ended": 1} if i == 0
                      else {"epoch": 3, "val_loss": 0.5 + i, "diverged": 0})
    limiter.on_trial_complete("p1", {"epoch": 3, "val_loss": 0.5, "members": final})
    inner = packer.inner
    study = inner._ot_study
    states = {mid: study.trials[inner._ot_trials[mid].number].state for mid, _ in m1}
    assert states[m1[0][0]] == TrialState.PRUNED
    assert all(states[mid] == TrialState.COMPLETE for mid, _ in m1[1:])
    assert study.trials[inner._ot_trials[m1[0][0]].number].intermediate_values == {1: 1.0}
    # after 5 members, no more packs
    limiter.on_trial_complete("p2", {"epoch": 3, "val_loss": 0.5, "members": {
        mid: {"epoch": 3, "val_loss": 0.7, "diverged": 0} for mid, _ in m2}})
    rest = []
    for i in range(3):
        c = limiter.suggest(f"p{3 + i}")
        if c == "FINISHED" or c is None:
            break
        rest.append(c)
    assert sum(len(members_of(c)) for c in rest) + len(m1) + len(m2) == 5


def test_pack_searcher_state_survives_a_restore(tmp_path):
    """Tune saves the searcher beside the experiment and restores it on --resume: members drawn but not yet
    packed, the packs handed out and the wrapped Optuna study all come back."""
    from search.algorithms import build_searcher
    from search.sweep import sweep_space
    from spaces.registry import get_space

    run_space = sweep_space(get_space("demo/copy"), 3, {}, 0)

    def make():
        lim, _, _ = build_searcher("tpe", run_space, ("rnn", "lstm"), metric="val_loss", mode="min", seed=0,
                                   full_budget=3, max_concurrent=4, num_samples=8, pack=3)
        lim.set_search_properties("val_loss", "min", {})
        return lim

    a = make()
    first = [a.suggest(f"p{i}") for i in range(2)]
    a.searcher.save(str(tmp_path / "searcher.pkl"))
    cont_a = [a.searcher.suggest(f"p{i}") for i in range(2, 5)]
    b = make()
    b.searcher.restore(str(tmp_path / "searcher.pkl"))
    cont_b = [b.searcher.suggest(f"p{i}") for i in range(2, 5)]
    assert cont_a == cont_b  # the same members, ids and parameters after the restore
    assert cont_a[-1] == "FINISHED"
    ids = [m for c in first + cont_a if isinstance(c, dict) for m, _ in members_of(c)]
    assert len(ids) == len(set(ids)) == 8
