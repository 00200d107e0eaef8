"""ASHA + TPE without mixing fidelities: a trial stopped before the full budget reaches Optuna as PRUNED."""
from __future__ import annotations

from optuna.trial import TrialState

from search.algorithms import build_searcher
from search.sweep import load_space, sweep_space


def _searcher(budget=4):
    space = sweep_space(load_space("demo/copy"), budget, {}, 0)
    alg, _, n_seeds = build_searcher("tpe", space, ("lstm", "rnn"), metric="val_loss", mode="min", seed=0,
                                     full_budget=budget, max_concurrent=4)
    return alg.searcher, n_seeds


def _states(s):
    return {t.number: t.state for t in s._ot_study.get_trials(deepcopy=False)}


def test_seed_point_first_then_sampled():
    s, n_seeds = _searcher()
    assert n_seeds == 1
    first = s.suggest("t0")
    assert first["model"] == "lstm" and first["lr"] == 1e-3 and first["hidden_size"] == 64
    assert first["forget_bias"] == 1.0 and "nonlin" not in first
    second = s.suggest("t1")
    assert ("nonlin" in second) == (second["model"] == "rnn")
    assert ("forget_bias" in second) == (second["model"] == "lstm")


def test_stopped_early_is_pruned_full_budget_is_complete_diverged_is_pruned():
    s, _ = _searcher(budget=4)
    for tid in ("a", "b", "c"):
        s.suggest(tid)
    for step in (1, 2):
        s.on_trial_result("a", {"val_loss": 0.9 - 0.1 * step, "epoch": step, "training_iteration": step})
    s.on_trial_complete("a", {"val_loss": 0.7, "epoch": 2, "diverged": 0})  # ASHA stopped it at epoch 2 of 4
    for step in range(1, 5):
        s.on_trial_result("b", {"val_loss": 1.0 - 0.1 * step, "epoch": step, "training_iteration": step})
    s.on_trial_complete("b", {"val_loss": 0.6, "epoch": 4, "diverged": 0})
    s.on_trial_result("c", {"val_loss": 0.8, "epoch": 1, "training_iteration": 1})
    s.on_trial_complete("c", {"val_loss": float("inf"), "epoch": 2, "diverged": 1})
    states = _states(s)
    assert states == {0: TrialState.PRUNED, 1: TrialState.COMPLETE, 2: TrialState.PRUNED}
    complete = [t for t in s._ot_study.get_trials() if t.state == TrialState.COMPLETE]
    assert [t.value for t in complete] == [0.6]
    # the pruned trial keeps its intermediate values (what TPE ranks pruned trials by)
    pruned = s._ot_study.get_trials()[0]
    assert pruned.intermediate_values == {1: 0.8, 2: 0.7}
