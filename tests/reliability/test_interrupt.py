"""SIGINT (Ctrl-C) and SIGTERM in the middle of a real sweep: the sweep ends as interrupted, not as a success.

Expected: exit status 130 / 143, one line saying how to ``--resume``, the parent run KILLED with the status tag
``interrupted``, no child run left RUNNING, and nothing after the interrupted stage: no confirmation trials (whose
end would open the test split), no best run.
"""
from __future__ import annotations

import os
import signal

import pytest

from reliability_helpers import TINY, Cli, env_for, new_ray_tmp, runs_of, seed_trial, stop_all, tree, wait_for


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_the_sweep_as_interrupted(tmp_path, sig, status):
    ray_tmp = new_ray_tmp()
    results = tmp_path / "results"
    # confirmation on (as by default): an interrupted sweep must not go on to it
    cli = Cli(["sweep", *TINY, "--samples", "2", "--name", "int", "--storage", str(results), "--confirm-top", "1",
               "--confirm-seeds", "1"], cwd=tmp_path, env=env_for(ray_tmp), log=tmp_path / "sweep.log")
    try:
        wait_for(lambda: seed_trial(results / "int"), 300, "the seed trial's first epoch", proc=cli.proc)
        os.kill(cli.pid, sig)
        rc = cli.wait(timeout=180)
    finally:
        stop_all(tree(cli.pid) | {cli.pid}, ray_tmp)
    out = cli.output()
    assert rc == status, out[-3000:]
    assert "--resume --name int" in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert not (results / "int-confirm").exists(), "the confirmation stage ran after the interruption"
    c, parents, trial_runs = runs_of(f"sqlite:///{tmp_path / 'mlruns.db'}")
    (parent,) = parents
    assert parent.info.status == "KILLED" and parent.data.tags["rnnsweep.status"] == "interrupted"
    # the Optuna study (tpe) is exported when the interrupted sweep is closed, and can be read
    assert parent.data.tags["rnnsweep.optuna_study"] == f"sqlite:///{(results / 'int' / 'optuna.db').resolve()}"
    import optuna

    study = optuna.load_study(study_name="int", storage=parent.data.tags["rnnsweep.optuna_study"])
    assert study.trials and all("tune_trial_id" in t.user_attrs for t in study.trials)
    exp = c.get_experiment_by_name("copy_nnrnn")
    every = c.search_runs([exp.experiment_id], max_results=1000)
    assert not [r for r in every if r.data.tags.get("rnnsweep.kind") in ("best", "confirm")], "confirmed or tagged"
    assert trial_runs, "no trial recorded before the signal"
    left = [(r.info.run_id, r.info.status) for r in every if r.info.status == "RUNNING"]
    assert not left, f"runs left RUNNING: {left}"
