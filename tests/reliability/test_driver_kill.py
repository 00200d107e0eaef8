"""The driver (the CLI process) is killed with SIGKILL in the middle of a sweep; its Ray processes are stopped by
PID; ``sweep --resume --name NAME`` then finishes the sweep.

The same sweep carries an out-of-memory trial: every trial but the published seed point gets a hidden size whose
recurrent matrix needs 1 PB, which the allocator refuses for real (``RuntimeError: ... can't allocate memory``; on
a GPU, ``torch.OutOfMemoryError``). Those trials end failed with the reason ``oom`` recorded, before and after the
resume, and the sweep goes on: the seed trial resumes from its checkpoint and completes.
"""
from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

from reliability_helpers import (HUGE_HIDDEN, TINY, Cli, env_for, epoch_steps, new_ray_tmp, runs_of, seed_trial,
                                 stop_all, tree, trials, wait_for)

SAMPLES = 3


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    work = tmp_path_factory.mktemp("driver")
    ray_tmp = new_ray_tmp()
    env = env_for(ray_tmp)
    exp_dir = work / "results" / "dk"
    args = ["sweep", *TINY, "--samples", str(SAMPLES), "--name", "dk", "--storage", str(work / "results"),
            "--max-failures", "0", "--set", f"hidden_size={HUGE_HIDDEN}"]
    first = second = None
    ns = SimpleNamespace(work=work, exp_dir=exp_dir, uri=f"sqlite:///{work / 'mlruns.db'}")
    try:
        first = Cli(args, cwd=work, env=env, log=work / "first.log")
        tid, _ = wait_for(lambda: seed_trial(exp_dir), 300, "the seed trial's first epoch", proc=first.proc)
        ns.seed_id = tid
        left = tree(first.pid)  # the driver's Ray (GCS, raylet, workers) outlives it: stop it by PID
        os.kill(first.pid, signal.SIGKILL)
        ns.first_rc = first.wait(timeout=30)
        ns.before = trials(exp_dir)
        stop_all(left - {first.pid}, ray_tmp)
        ns.c, ns.parents_before, ns.runs_before = runs_of(ns.uri)

        second = Cli([*args, "--resume"], cwd=work, env=env, log=work / "second.log")
        ns.rc = second.wait(timeout=400)
        ns.out = second.output()
        ns.trials = trials(exp_dir)
        ns.c, ns.parents, ns.trial_runs = runs_of(ns.uri)
        yield ns
    finally:
        stop_all(tree(first.pid) if first else set(), ray_tmp)
        if second:
            stop_all(tree(second.pid), ray_tmp)


def test_the_driver_was_killed_mid_sweep(resumed):
    assert resumed.first_rc == -signal.SIGKILL
    (parent,) = resumed.parents_before
    assert parent.info.status == "RUNNING", "a killed driver cannot close its parent run"
    seed_rows = resumed.before[resumed.seed_id]["rows"]
    assert seed_rows and seed_rows[-1]["epoch"] < 3, "killed before the seed trial finished"


def test_resume_finishes_without_losing_or_duplicating_trials(resumed):
    assert resumed.rc == 0, resumed.out[-4000:]
    assert f"sweep dk: {SAMPLES} trials" in resumed.out
    (parent,) = resumed.parents
    assert parent.info.run_id == resumed.parents_before[0].info.run_id, "the same parent run, continued"
    assert parent.info.status == "FINISHED" and parent.data.tags["rnnsweep.status"] == "completed"
    ids = [r.data.tags["rnnsweep.trial_id"] for r in resumed.trial_runs]
    assert len(ids) == len(set(ids)) == SAMPLES, f"one child run per Tune trial id: {ids}"
    assert set(ids) == set(resumed.trials), "the MLflow trials are Tune's trials"
    for run in resumed.trial_runs:
        assert run.info.status in ("FINISHED", "FAILED"), f"{run.info.run_id} left {run.info.status}"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_seed_trial_resumed_from_its_checkpoint(resumed):
    rows = resumed.trials[resumed.seed_id]["rows"]
    restarts = [r for r in rows if r["iterations_since_restore"] == 1 and r["epoch"] > 1]
    assert restarts, "the resumed sweep started the trial from scratch instead of its checkpoint"
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    (run,) = [r for r in resumed.trial_runs if r.data.tags["rnnsweep.trial_id"] == resumed.seed_id]
    assert run.data.tags["rnnsweep.status"] == "completed" and run.info.status == "FINISHED"
    assert epoch_steps(resumed.c, run.info.run_id) == [1, 2, 3], "each epoch once in MLflow"


def test_out_of_memory_trials_fail_with_the_reason_and_the_sweep_goes_on(resumed):
    oom = [r for r in resumed.trial_runs if r.data.tags["rnnsweep.trial_id"] != resumed.seed_id]
    assert len(oom) == SAMPLES - 1
    for run in oom:
        assert run.data.params["hidden_size"] == str(HUGE_HIDDEN)
        assert run.info.status == "FAILED" and run.data.tags["rnnsweep.status"] == "failed"
        assert run.data.tags["rnnsweep.failure"] == "oom"
        assert "allocate memory" in run.data.tags["rnnsweep.failure_reason"], run.data.tags["rnnsweep.failure_reason"]
