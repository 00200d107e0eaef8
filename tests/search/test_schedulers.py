"""Every scheduler runs a real sweep to the end on one local Ray: no trial fails, every trial is in MLflow.

PBT restarts trials from other trials' checkpoints with mutated learning rates: that it finishes without a failed
trial shows the checkpoint guard accepts exactly the mutated keys."""
from __future__ import annotations

import pytest

SMALL = {"updates": 6, "delay": 5, "n_val": 50}


@pytest.mark.parametrize("scheduler,searcher", [("hyperband", "tpe"), ("median", "random"), ("pbt", "random"),
                                                ("fifo", "grid")])
def test_scheduler_runs_a_sweep(scheduler, searcher, local_ray, tmp_path):
    from mlflow.tracking import MlflowClient

    from search.sweep import Experiment, run_sweep

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    s = run_sweep(Experiment(space="demo/copy", num_samples=4, scheduler=scheduler, searcher=searcher, max_budget=4,
                             confirm_top=0, storage=str(tmp_path / "res"), mlflow_uri=uri, name=scheduler,
                             overrides=SMALL, verbose=0, max_failures=0, max_concurrent=2))
    assert s["trials"] == 4
    c = MlflowClient(uri)
    runs = c.search_runs([s["experiment_id"]], filter_string="tags.`rnnsweep.kind` = 'trial'")
    assert len(runs) == 4
    statuses = {r.data.tags["rnnsweep.status"] for r in runs}
    assert "failed" not in statuses, [r.data.tags.get("rnnsweep.error", "")[-500:] for r in runs]
    assert statuses <= {"completed", "stopped_early", "diverged"}
    if searcher == "grid":
        lrs = [float(r.data.params["lr"]) for r in runs]
        assert 1e-3 in lrs  # the published seed point first, then grid corners of the space
    # checkpoints left: PBT keeps all; otherwise only the best finished trial of each model (search.resources), and
    # that one was read back to test the best configuration
    kept = [d for d in (tmp_path / "res" / scheduler).iterdir() if (d / "params.json").is_file()
            and any(d.glob("checkpoint_*"))]
    if scheduler == "pbt":
        assert len(kept) == 4
    else:
        assert len(kept) == len(s["best"]) and all(b["test_mean"] is not None for b in s["best"].values()), s["best"]


def test_reused_actors_give_identical_results(local_ray, tmp_path):
    """Trials run one after another in one reused worker process report exactly the metrics that fresh processes
    report for the same configurations (every trial seeds its generators when it builds its Trainer)."""
    from mlflow.tracking import MlflowClient

    from search.sweep import Experiment, run_sweep

    got = {}
    for reuse in (False, True):
        s = run_sweep(Experiment(space="demo/copy", num_samples=3, scheduler="fifo", searcher="random", max_budget=2,
                                 confirm_top=0, storage=str(tmp_path / f"res{reuse}"),
                                 mlflow_uri=f"sqlite:///{tmp_path}/m{reuse}.db", name=f"reuse{reuse}",
                                 overrides=SMALL, verbose=0, max_failures=0, max_concurrent=1, reuse_actors=reuse,
                                 seed=3))
        assert s["trials"] == 3
        c = MlflowClient(f"sqlite:///{tmp_path}/m{reuse}.db")
        runs = c.search_runs([s["experiment_id"]], filter_string="tags.`rnnsweep.kind` = 'trial'")
        got[reuse] = sorted((r.data.params["model"], r.data.params["lr"], r.data.metrics["val_loss"]) for r in runs)
        assert len(got[reuse]) == 3
    assert got[True] == got[False]


def test_optuna_study_exported_after_a_tpe_sweep(local_ray, tmp_path):
    """A TPE + ASHA sweep leaves its Optuna study in sqlite beside the sweep (study name = sweep name, URL tagged on
    the parent run): one Optuna trial per Tune trial, COMPLETE where the trial ran the full budget and PRUNED where
    ASHA stopped it or it diverged, with the parameters the trial ran with; optuna.importance reads it."""
    import math

    import optuna
    from mlflow.tracking import MlflowClient

    from search.sweep import Experiment, run_sweep

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    exp = Experiment(space="demo/copy", num_samples=6, scheduler="asha", searcher="tpe", max_budget=3,
                     confirm_top=0, storage=str(tmp_path / "res"), mlflow_uri=uri, name="tpe-study",
                     overrides=SMALL, verbose=0, max_failures=0, max_concurrent=2)
    s = run_sweep(exp)
    c = MlflowClient(uri)
    parent = c.get_run(s["parent_run_id"])
    url = parent.data.tags["rnnsweep.optuna_study"]
    assert url == s["optuna_study"] == f"sqlite:///{tmp_path / 'res' / 'tpe-study' / 'optuna.db'}"
    assert parent.data.tags["rnnsweep.optuna_study_name"] == "tpe-study"
    assert not list((tmp_path / "res" / "tpe-study").glob(".optuna-*")), "no temporary file left behind"
    study = optuna.load_study(study_name="tpe-study", storage=url)
    runs = c.search_runs([s["experiment_id"]], filter_string="tags.`rnnsweep.kind` = 'trial'")
    assert len(runs) == 6
    by_tid = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert len(study.trials) == len(by_tid) == 6
    assert set(by_tid) == {r.data.tags["rnnsweep.trial_id"] for r in runs}
    want = {"completed": "COMPLETE", "stopped_early": "PRUNED", "diverged": "PRUNED"}
    states = set()
    for r in runs:
        t = by_tid[r.data.tags["rnnsweep.trial_id"]]
        assert t.state.name == want[r.data.tags["rnnsweep.status"]], (r.data.tags["rnnsweep.status"], t.state)
        states.add(t.state.name)
        assert t.params, "the searched parameters are in the study"
        for k, v in t.params.items():
            logged = r.data.params[k]
            assert (math.isclose(float(logged), v, rel_tol=1e-12) if isinstance(v, float) else logged == str(v)), k
        if t.state.name == "COMPLETE":
            assert math.isclose(t.value, r.data.metrics["best_val_loss"], rel_tol=1e-9)
        else:
            assert t.intermediate_values, "a pruned trial keeps the values it reported"
    assert "COMPLETE" in states
    if states == {"COMPLETE", "PRUNED"}:
        assert optuna.importance.get_param_importances(study)
    # the resolved configuration is the parent run's artifact sweep.toml: `sweep --config` of it is this sweep
    import run_search

    f = c.download_artifacts(parent.info.run_id, "sweep.toml", str(tmp_path))
    argv = ["sweep", "--config", f, "--name", "tpe-study"]
    again = run_search.build_experiment(run_search.resolve_sweep_args(run_search.parser().parse_args(argv), argv))
    assert again == exp


def test_mlflow_view_names_marks_and_one_metric(local_ray, tmp_path):
    """What the MLflow runs table shows (issue 15 item 2), read back through MlflowClient: child runs named by model,
    searched values and number; the published seed point and the confirmation runs marked in the name and a tag;
    one metric name (best_val_loss) on trials, confirmation runs, best runs and the parent; the trivial baseline
    beside it."""
    import re

    from mlflow.tracking import MlflowClient

    from datasets.baselines import trivial_baseline
    from search.sweep import Experiment, run_sweep

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    s = run_sweep(Experiment(space="demo/copy", models=("lstm",), num_samples=2, scheduler="fifo", searcher="tpe",
                             max_budget=2, confirm_top=1, confirm_seeds=2, storage=str(tmp_path / "res"),
                             mlflow_uri=uri, name="view", overrides={**SMALL, "n_test": 50}, verbose=0,
                             max_failures=0, max_concurrent=2))
    c = MlflowClient(uri)
    runs = c.search_runs([s["experiment_id"]], max_results=100)
    by_kind = {}
    for r in runs:
        by_kind.setdefault(r.data.tags["rnnsweep.kind"], []).append(r)
    assert sorted((k, len(v)) for k, v in by_kind.items()) == [("best", 1), ("confirm", 2), ("sweep", 1),
                                                                ("trial", 2)]
    trials = sorted(by_kind["trial"], key=lambda r: int(r.info.run_name.split("#")[1].split()[0]))
    assert [int(r.info.run_name.split("#")[1].split()[0]) for r in trials] == [1, 2]
    for r in trials:
        name, p = r.info.run_name, r.data.params
        assert re.fullmatch(r"lstm lr=\S+ alpha=\S+ hidden_size=\d+ #\d( \[published nnrnn-lstm\])?", name), name
        assert f"lr={float(p['lr']):.3g} " in name and f"hidden_size={p['hidden_size']} " in name
    published = [r for r in trials if r.data.tags.get("rnnsweep.seed_point")]
    assert len(published) == 1 and published[0].data.tags["rnnsweep.seed_point"] == "nnrnn-lstm"
    assert published[0].info.run_name.endswith(" [published nnrnn-lstm]")
    assert float(published[0].data.params["lr"]) == 1e-3
    for r in by_kind["confirm"]:
        assert r.info.run_name.endswith("[confirm]") and " seed=" in r.info.run_name, r.info.run_name
    # one metric name ranks every kind of run
    (best,), (parent,) = by_kind["best"], by_kind["sweep"]
    for r in [*trials, *by_kind["confirm"], best, parent]:
        assert "best_val_loss" in r.data.metrics, (r.data.tags["rnnsweep.kind"], sorted(r.data.metrics))
    confirm_vals = [r.data.metrics["best_val_loss"] for r in by_kind["confirm"]]
    assert abs(best.data.metrics["best_val_loss"] - sum(confirm_vals) / 2) < 1e-12
    assert best.data.metrics["best_val_loss"] == best.data.metrics["val_loss_mean"]
    assert parent.data.metrics["best_val_loss"] == best.data.metrics["best_val_loss"]
    assert parent.data.tags["rnnsweep.best_model"] == "lstm"
    # the best weights as an MLflow PyTorch model: loadable, and it scores what the best run recorded
    import mlflow.pytorch
    import torch

    assert best.data.tags["rnnsweep.model_uri"] == f"runs:/{best.info.run_id}/model"
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pytorch.load_model(best.data.tags["rnnsweep.model_uri"])
    finally:
        mlflow.set_tracking_uri(None)
    weights = torch.load(c.download_artifacts(best.info.run_id, "weights.pt", str(tmp_path)), weights_only=True)
    got = model.state_dict()
    assert set(got) == set(weights) and all(torch.equal(got[k], weights[k]) for k in weights)
    base = trivial_baseline("copy_nnrnn", {"delay": SMALL["delay"]}).value
    assert parent.data.metrics["trivial_baseline_loss"] == best.data.metrics["trivial_baseline_loss"] == base
