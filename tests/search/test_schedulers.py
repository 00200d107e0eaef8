"""Every scheduler runs a real sweep to the end on one local Ray: no trial fails, every trial is in MLflow.

PBT restarts trials from other trials' checkpoints with mutated learning rates: that it finishes without a failed
trial shows the checkpoint guard accepts exactly the mutated keys."""
from __future__ import annotations

import pytest

from conftest import kill_pids, processes_under

SMALL = {"updates": 6, "delay": 5, "n_val": 50}


@pytest.fixture(scope="module")
def local_ray():
    import os
    import shutil
    import tempfile

    import ray

    from search.sweep import start_ray

    d = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = d
    start_ray(None)
    yield
    ray.shutdown()
    kill_pids(processes_under(d))
    os.environ.pop("RAY_TMPDIR", None)
    shutil.rmtree(d, ignore_errors=True)


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
