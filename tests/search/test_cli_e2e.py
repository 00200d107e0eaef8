"""End to end through the CLI: a tiny real sweep on local Ray with a temporary sqlite MLflow store, then the
record is checked through the MLflow client, and `best` and `reproduce` read it back."""
from __future__ import annotations

import json

import pytest

from conftest import processes_under, run_cli

SWEEP = ["sweep", "--space", "demo/copy", "--samples", "5", "--max-budget", "3", "--concurrent", "2",
         "--confirm-top", "1", "--confirm-seeds", "2", "--name", "e2e", "--quiet",
         "--set", "updates=8", "--set", "delay=10", "--set", "n_val=100"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    import os
    import tempfile

    from conftest import QUIET_ENV, ROOT, kill_pids

    work = tmp_path_factory.mktemp("e2e")
    ray_tmp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    env = {**os.environ, **QUIET_ENV, "RAY_TMPDIR": ray_tmp, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = run_cli(SWEEP, cwd=work, env=env)
    left = processes_under(ray_tmp)
    kill_pids(left)
    yield work, env, proc, left


def test_sweep_exits_cleanly_and_stops_ray(swept):
    work, env, proc, left = swept
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert left == [], f"Ray processes left running after the CLI ended: {left}"
    assert "sweep e2e: 5 trials on task copy_nnrnn" in proc.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in proc.stdout and "127.0.0.1" in proc.stdout


def test_mlflow_layout(swept):
    from mlflow.tracking import MlflowClient

    work, *_ = swept
    c = MlflowClient(tracking_uri=f"sqlite:///{work}/mlruns.db")
    exp = c.get_experiment_by_name("copy_nnrnn")
    assert exp is not None, "one experiment per task"
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    kinds = {}
    for r in runs:
        kinds.setdefault(r.data.tags.get("rnnsweep.kind"), []).append(r)
    (parent,) = kinds["sweep"]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["rnnsweep.searcher"] == "tpe" and parent.data.tags["rnnsweep.scheduler"] == "asha"
    assert parent.data.tags["rnnsweep.code_version"] != ""
    trials = kinds["trial"]
    assert len(trials) == 5
    for t in trials:
        assert t.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert t.data.tags["rnnsweep.status"] in ("completed", "stopped_early", "diverged")
        assert t.info.status == "FINISHED"
        assert {"lr", "model", "alpha", "hidden_size", "seed", "epochs"} <= set(t.data.params)
        hist = c.get_metric_history(t.info.run_id, "val_loss")
        steps = [m.step for m in hist]
        assert steps == sorted(set(steps)) and steps[0] == 1, "one validation value per epoch, no duplicates"
        assert len(steps) == int(t.data.metrics["budget_used"])
        if t.data.tags["rnnsweep.status"] == "completed":
            assert len(steps) == 3
    # the published seed point is evaluated first and carries its values
    seed_runs = [t for t in trials if t.data.params.get("lr") == "0.001" and t.data.params["model"] == "lstm"]
    assert seed_runs, "the demo space's published configuration was not evaluated"
    # confirmation runs: top-1 per model x 2 seeds, under the same parent
    confirm = kinds.get("confirm", [])
    assert confirm and len(confirm) % 2 == 0
    assert {r.data.params["seed"] for r in confirm} == {"1", "2"}
    best = kinds["best"]
    assert best, "a best run is tagged"
    for b in best:
        assert b.data.tags["rnnsweep.best"] == "true"
        assert b.data.tags["rnnsweep.model"] in ("lstm", "rnn")
        assert "val_loss_mean" in b.data.metrics and "test_loss_mean" in b.data.metrics
        arts = {a.path for a in c.list_artifacts(b.info.run_id)}
        assert {"best_config.json", "weights.pt"} <= arts
        rec = json.loads(open(c.download_artifacts(b.info.run_id, "best_config.json", str(work))).read())
        assert rec["config"]["model"] == b.data.tags["rnnsweep.model"] and len(rec["seeds"]) == 2
    assert {a.path for a in c.list_artifacts(parent.info.run_id)} >= {"learning_curves.png"}


def test_best_prints_table(swept):
    work, env, *_ = swept
    p = run_cli(["best", "--task", "copy_nnrnn"], cwd=work, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "validation" in p.stdout and "val_loss" in p.stdout


def test_reproduce_matches_record(swept):
    work, env, *_ = swept
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=f"sqlite:///{work}/mlruns.db")
    exp = c.get_experiment_by_name("copy_nnrnn")
    model = c.search_runs([exp.experiment_id], filter_string="tags.`rnnsweep.best` = 'true'")[0].data.tags[
        "rnnsweep.model"]
    p = run_cli(["reproduce", "--task", "copy_nnrnn", "--model", model, "--seeds", "2"], cwd=work, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.rstrip().endswith(("ok", "DIFFERS"))]
    assert len(lines) == 2 and all(ln.rstrip().endswith("ok") for ln in lines), p.stdout


def test_reproduce_detects_a_difference(swept, tmp_path):
    """Tamper with the record: reproduce must exit non-zero when the metric differs beyond the tolerance."""
    import shutil

    work, env, *_ = swept
    from mlflow.tracking import MlflowClient

    w2 = tmp_path / "copy"
    shutil.copytree(work, w2, ignore=shutil.ignore_patterns("rnnsweep_results"))
    c = MlflowClient(tracking_uri=f"sqlite:///{w2}/mlruns.db")
    exp = c.get_experiment_by_name("copy_nnrnn")
    b = c.search_runs([exp.experiment_id], filter_string="tags.`rnnsweep.best` = 'true'")[0]
    rec_path = c.download_artifacts(b.info.run_id, "best_config.json", str(tmp_path))
    rec = json.loads(open(rec_path).read())
    rec["seeds"][0]["val_loss"] += 0.05
    # write the tampered record as a new best run for the same model, better than every other
    run = c.create_run(exp.experiment_id, tags={"rnnsweep.best": "true", "rnnsweep.model": rec["model"],
                                                "rnnsweep.metric": "val_loss", "rnnsweep.mode": "min",
                                                "rnnsweep.kind": "best"})
    c.log_metric(run.info.run_id, "val_loss_mean", -1.0)
    tampered = tmp_path / "t" / "best_config.json"
    tampered.parent.mkdir()
    tampered.write_text(json.dumps(rec))
    c.log_artifact(run.info.run_id, str(tampered))
    p = run_cli(["reproduce", "--task", "copy_nnrnn", "--model", rec["model"]], cwd=w2, env=env, timeout=300)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "DIFFERS" in p.stdout


def test_quiet_prints_only_the_summary(swept):
    _, _, proc, _ = swept
    out = proc.stdout
    assert "progress:" not in out and " started" not in out and "Checkpoint" not in out + proc.stderr
    assert "Trial status" not in out and "╭" not in out and "View detailed results" not in out
    assert out.lstrip().startswith("sweep e2e: 5 trials") and len(out.splitlines()) <= 15, out


def test_default_view_is_one_line_per_event(tmp_path, cli_env):
    """A tiny sweep in the default view: trial events, progress lines and the summary; none of Ray's tables,
    boxes or worker checkpoint lines."""
    p = run_cli(["sweep", "--space", "demo/copy", "--samples", "2", "--max-budget", "2", "--concurrent", "2",
                 "--confirm-top", "0", "--name", "view", "--set", "updates=4", "--set", "delay=5", "--set", "n_val=50"],
                cwd=tmp_path, env=cli_env, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    events = [ln for ln in lines if ln.startswith("[")]
    assert sum(" started" in ln for ln in events) == 2
    assert sum(" finished 2 epochs" in ln or " stopped by ASHA" in ln for ln in events) == 2
    assert events[-1].split("] ", 1)[1].startswith("progress: 2/2 done, 0 running, 0 pending | best val_loss")
    assert "sweep view: 2 trials" in p.stdout and "ranked: sweep view" in p.stdout
    both = p.stdout + p.stderr
    for noise in ("Checkpoint successfully created", "Trial status", "╭", "View detailed results", "repeated"):
        assert noise not in both, noise
    assert len(lines) <= 25 and len(p.stderr.splitlines()) <= 5, both  # measured: 17 and 3
