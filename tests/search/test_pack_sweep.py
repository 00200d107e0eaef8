"""A packed sweep end to end on one local Ray: each member is a trial in MLflow (its own child run, parameters and
per-epoch metrics, a ``rnnsweep.pack`` tag), ASHA stops members one by one, the best configuration is confirmed and
tested; and a packed grid sweep records what the same unpacked sweep records."""
from __future__ import annotations

import math

import pytest

SMALL = {"updates": 6, "delay": 5, "n_val": 50}


def _trial_runs(c, exp_id: str, sweep: str):
    return c.search_runs([exp_id], filter_string=f"tags.`rnnsweep.kind` = 'trial' and tags.`rnnsweep.sweep` = '{sweep}'",
                         max_results=1000)


def test_packed_tpe_asha_sweep_records_members_as_trials(local_ray, tmp_path):
    from mlflow.tracking import MlflowClient

    from search.sweep import Experiment, run_sweep

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    s = run_sweep(Experiment(space="demo/copy", models=("rnn",), num_samples=6, scheduler="asha", searcher="tpe",
                             max_budget=3, confirm_top=1, confirm_seeds=2, storage=str(tmp_path / "res"),
                             mlflow_uri=uri, name="packed", overrides=SMALL, verbose=0, max_failures=0,
                             max_concurrent=2, pack=3))
    assert s["trials"] == 6 and s["counts"]["finished"] + s["counts"]["diverged"] == 6, s["counts"]
    c = MlflowClient(uri)
    runs = _trial_runs(c, s["experiment_id"], "packed")
    assert len(runs) == 6
    packs = {r.data.tags["rnnsweep.pack"] for r in runs}
    assert 2 <= len(packs) <= 4  # members grouped: the published seed point may have its own shape
    for r in runs:
        assert r.info.status == "FINISHED"
        assert r.data.params["model"] == "rnn" and "lr" in r.data.params
        assert r.data.tags["rnnsweep.status"] in {"completed", "stopped_early", "diverged"}
        hist = [int(m.value) for m in c.get_metric_history(r.info.run_id, "epoch")]
        assert hist == list(range(1, len(hist) + 1))  # one step per epoch the member trained, no repeats
        if r.data.tags["rnnsweep.status"] == "stopped_early":
            assert len(hist) < 3
    assert any(r.data.tags["rnnsweep.status"] == "completed" for r in runs)
    assert "rnn" in s["best"] and math.isfinite(s["best"]["rnn"]["test_mean"])
    confirm = c.search_runs([s["experiment_id"]], filter_string="tags.`rnnsweep.kind` = 'confirm'")
    assert len(confirm) == 2 and len({r.data.tags["rnnsweep.pack"] for r in confirm}) == 1  # two seeds, one pack
    assert s["best"]["rnn"]["packed"] and len(s["best"]["rnn"]["seeds"]) == 2


def test_packed_grid_sweep_records_what_an_unpacked_one_does(local_ray, tmp_path):
    """The same grid points packed (2 per trial) and unpacked: the same member runs, the same parameters, the same
    metric names, and the same metrics up to float32 rounding (a pack runs the cells' reference step loops under
    vmap, a single trial their fast kernels)."""
    from mlflow.tracking import MlflowClient

    from search.sweep import Experiment, run_sweep

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    recs = {}
    for pack in (1, 2):
        name = f"grid{pack}"
        s = run_sweep(Experiment(space="demo/copy", models=("rnn",), num_samples=4, scheduler="fifo", searcher="grid",
                                 max_budget=2, confirm_top=0, storage=str(tmp_path / "res"), mlflow_uri=uri,
                                 name=name, overrides=SMALL, verbose=0, max_failures=0, max_concurrent=2, pack=pack))
        c = MlflowClient(uri)
        runs = _trial_runs(c, s["experiment_id"], name)
        assert len(runs) == 4
        recs[pack] = {tuple(sorted(r.data.params.items())): r for r in runs}
        assert len(recs[pack]) == 4  # four distinct configurations
        if pack == 2:  # the best member reproduced from its record, exactly (it is trained as a pack of one)
            from search.results import reproduce

            text, ok = reproduce(c, "copy_nnrnn", "rnn", 1, 0.0, None, sweep=name)
            assert ok, text
    assert set(recs[1]) == set(recs[2])
    for key, a in recs[1].items():
        b = recs[2][key]
        assert a.data.params == b.data.params
        assert set(a.data.metrics) == set(b.data.metrics)
        assert set(b.data.tags) - set(a.data.tags) == {"rnnsweep.pack"}
        for k, v in a.data.metrics.items():
            if k in ("epoch_seconds",):
                continue
            assert b.data.metrics[k] == pytest.approx(v, rel=1e-3, abs=1e-4), (key, k)
