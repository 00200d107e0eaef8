"""search.study.export_study without Ray: what the sqlite copy holds, and a published seed point whose value lies
outside a range a sweep file narrowed (the study in memory took it; a database study checks every value)."""
from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from search.study import export_study


class _Searcher:  # what export_study reads from Tune's Optuna searcher (its pickled state has the same fields)
    def __init__(self, study, trials):
        self._ot_study, self._ot_trials = study, trials


def test_export_keeps_states_values_and_out_of_range_seed_points(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study()
    space = {"lr": FloatDistribution(0.002, 0.03, log=True), "h": CategoricalDistribution([64, 128])}
    study.enqueue_trial({"lr": 0.001, "h": 64})  # the paper's lr, below the narrowed range
    tune_ids = {}
    for i, state in enumerate([TrialState.COMPLETE, TrialState.PRUNED]):
        t = study.ask(space)
        t.report(1.0 - 0.1 * i, 1)
        study.tell(t, 0.5 if state == TrialState.COMPLETE else None, state=state)
        tune_ids[f"tune{i}"] = t
    study.enqueue_trial({"lr": 0.01, "h": 128})  # never started: left out of the export
    assert len(study.trials) == 3
    url = export_study(_Searcher(study, tune_ids), tmp_path, "s")
    assert url == f"sqlite:///{tmp_path / 'optuna.db'}"
    out = optuna.load_study(study_name="s", storage=url)
    assert [(t.state, t.user_attrs["tune_trial_id"]) for t in out.trials] == [(TrialState.COMPLETE, "tune0"),
                                                                               (TrialState.PRUNED, "tune1")]
    assert out.trials[0].params == {"lr": 0.001, "h": 64}
    assert out.trials[1].params == study.trials[1].params and 0.002 <= out.trials[1].params["lr"] <= 0.03
    assert out.trials[0].value == 0.5 and out.trials[1].intermediate_values == {1: 0.9}
    assert out.trials[0].distributions["lr"].low == 0.001  # widened for that trial only
    assert out.trials[1].distributions["lr"].low == 0.002
    # a second export (a resumed sweep's) replaces the first, never half-written
    export_study(_Searcher(study, tune_ids), tmp_path, "s")
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.db"]
