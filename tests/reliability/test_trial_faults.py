"""One real sweep against a real MLflow server, hit by three faults while it runs:

1. the worker process of a trial is killed with SIGKILL in the middle of an epoch: Tune restarts the trial from its
   last checkpoint (``--max-failures``) and MLflow keeps one child run for it;
2. the tracking server is stopped (SIGTERM to its process group) right after, and started again on the same port and
   database once the restarted trial has reported an epoch: every trial and every epoch still reaches MLflow
   (queued by the driver, written when the server answers);
3. every trial but the published seed point gets ``lr=1e4`` and diverges in its first epoch: each is recorded as
   ``diverged`` with its reason and the sweep goes on to complete the seed trial.

While the sweep runs, the listening sockets of every process it started (local Ray, its workers, the MLflow server
started with ``run_search.py server``) are read from /proc: all must be on loopback.
"""
from __future__ import annotations

import signal
import time
from types import SimpleNamespace

import pytest

from reliability_helpers import (TINY, Cli, Server, env_for, epoch_steps, free_port, is_loopback, listening,
                                 new_ray_tmp, runs_of, seed_trial, stop_all, tree, trials, wait_for)

SAMPLES = 3


@pytest.fixture(scope="module")
def faulted(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    ray_tmp = new_ray_tmp()
    env = env_for(ray_tmp)
    server = Server(work, free_port(), env)
    exp_dir = work / "results" / "faults"
    ns = SimpleNamespace(work=work, exp_dir=exp_dir, uri=server.uri)
    cli = None
    try:
        server.start()
        cli = Cli(["sweep", *TINY, "--samples", str(SAMPLES), "--name", "faults", "--storage", str(work / "results"),
                   "--mlflow-uri", server.uri, "--max-failures", "2", "--set", "lr=10000"], cwd=work, env=env,
                  log=work / "sweep.log")
        tid, rec = wait_for(lambda: seed_trial(exp_dir), 300, "the seed trial's first epoch", proc=cli.proc)
        victim = int(rec["rows"][-1]["pid"])
        assert victim in tree(cli.pid), "the trial's worker is not a process of this sweep"
        os_kill(victim)
        ns.seed_id, ns.victim = tid, victim
        ns.sockets = listening(tree(cli.pid) | tree(server.proc.pid))
        ns.server_pids = tree(server.proc.pid)

        server.stop(signal.SIGTERM)
        # down until the restarted trial has reported an epoch (so results arrived while the server was away)
        wait_for(lambda: any(r["pid"] != victim for r in trials(exp_dir)[tid]["rows"]), 300,
                 "the restarted seed trial's next epoch", proc=cli.proc)
        time.sleep(2.0)
        server.start()
        ns.rc = cli.wait(timeout=400)
        ns.out = cli.output()
        ns.trials = trials(exp_dir)
        ns.c, ns.parents, ns.trial_runs = runs_of(server.uri)
        yield ns
    finally:
        stop_all(tree(cli.pid) if cli else set(), ray_tmp)
        server.stop()


def os_kill(pid: int) -> None:
    import os

    os.kill(pid, signal.SIGKILL)


def test_sweep_completes_despite_the_faults(faulted):
    assert faulted.rc == 0, faulted.out[-4000:]
    assert f"sweep faults: {SAMPLES} trials" in faulted.out
    (parent,) = faulted.parents
    assert parent.info.status == "FINISHED" and parent.data.tags["rnnsweep.status"] == "completed"


def test_killed_worker_resumes_from_its_checkpoint(faulted):
    rows = faulted.trials[faulted.seed_id]["rows"]
    before = [r for r in rows if r["pid"] == faulted.victim]
    after = [r for r in rows if r["pid"] != faulted.victim]
    assert after, "the killed trial never ran again"
    # a restart from scratch would report epoch 1 again; a resume continues after the checkpointed epoch
    assert after[0]["iterations_since_restore"] == 1 and after[0]["epoch"] == before[-1]["epoch"] + 1, after[0]
    assert [r["epoch"] for r in rows] == [1, 2, 3], "each epoch reported once, none repeated or skipped"
    runs = [r for r in faulted.trial_runs if r.data.tags["rnnsweep.trial_id"] == faulted.seed_id]
    assert len(runs) == 1, "one MLflow child run for the trial, not one per attempt"
    (run,) = runs
    assert run.data.tags["rnnsweep.status"] == "completed" and run.info.status == "FINISHED"
    assert epoch_steps(faulted.c, run.info.run_id) == [1, 2, 3]


def test_tracking_outage_loses_nothing(faulted):
    assert "MLflow write failed" in faulted.out, "the outage did not hit a write: the test proved nothing"
    assert "MLflow reachable again" in faulted.out
    ids = [r.data.tags["rnnsweep.trial_id"] for r in faulted.trial_runs]
    assert sorted(ids) == sorted(faulted.trials), "one child run per Tune trial, none missing, none twice"
    parent_id = faulted.parents[0].info.run_id
    for run in faulted.trial_runs:
        t = faulted.trials[run.data.tags["rnnsweep.trial_id"]]
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert epoch_steps(faulted.c, run.info.run_id) == sorted({r["epoch"] for r in t["rows"]}), \
            "every epoch Tune saw is in MLflow, once"
        assert run.info.status == "FINISHED" and run.data.tags["rnnsweep.status"] in ("completed", "diverged")
        assert run.data.params["model"] == t["config"]["model"], "parameters written"


def test_diverging_trials_are_contained_and_recorded(faulted):
    diverged = [r for r in faulted.trial_runs if r.data.tags["rnnsweep.trial_id"] != faulted.seed_id]
    assert len(diverged) == SAMPLES - 1
    for run in diverged:
        assert run.data.tags["rnnsweep.status"] == "diverged"
        reason = run.data.tags["rnnsweep.diverged_reason"]
        assert "non-finite training loss" in reason or "exceeded max_loss" in reason, reason
        assert run.data.metrics["budget_used"] == 1.0
    assert "diverged" not in {r.data.tags["rnnsweep.status"] for r in faulted.trial_runs
                              if r.data.tags["rnnsweep.trial_id"] == faulted.seed_id}


def test_every_listening_socket_is_loopback(faulted):
    socks = faulted.sockets
    names = {name for _, name, _, _ in socks}
    assert any(n.startswith(("gcs_server", "raylet")) for n in names), f"Ray's head not seen: {socks}"
    assert any(pid in faulted.server_pids for pid, *_ in socks), f"the MLflow server not seen: {socks}"
    exposed = [s for s in socks if not is_loopback(s[2])]
    assert not exposed, f"listening beyond loopback: {exposed}"
