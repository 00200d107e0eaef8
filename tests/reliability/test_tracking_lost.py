"""The tracking server stops in the middle of a sweep and never comes back: the sweep finishes its trials, keeps
the writes the server did not take in a journal in its folder, and ends with one line naming the journal and the
command that replays it, exit status 75 (it used to crash with 135 lines of traceback, and then to lose the queued
writes with exit 1). Replayed into the server once it is back (twice: no change), the record is the Tune record."""
from __future__ import annotations

import signal
import subprocess

from reliability_helpers import (CLI, PY, TINY, Cli, Server, env_for, free_port, new_ray_tmp, runs_of, seed_trial,
                                 stop_all, tree, trials, wait_for)


def _record(c, runs):
    out = {}
    for r in runs:
        hist = {k: sorted((m.step, m.value, m.timestamp) for m in c.get_metric_history(r.info.run_id, k))
                for k in r.data.metrics}
        out[r.data.tags.get("rnnsweep.trial_id") or r.info.run_name] = (
            r.info.status, r.info.end_time, dict(r.data.tags), dict(r.data.params), hist)
    return out


def test_a_server_that_never_comes_back_spools_the_writes_and_the_replay_completes_the_record(tmp_path):
    ray_tmp = new_ray_tmp()
    env = env_for(ray_tmp)
    server = Server(tmp_path, free_port(), env)
    # short waits: the queue's end-of-sweep wait and the MLflow client's own retries
    env = {**env, "RNNSWEEP_MLFLOW_RETRY_S": "3", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}
    results = tmp_path / "results"
    cli = None
    try:
        server.start()
        cli = Cli(["sweep", *TINY, "--samples", "1", "--name", "lost", "--storage", str(results), "--mlflow-uri",
                   server.uri], cwd=tmp_path, env=env, log=tmp_path / "sweep.log")
        wait_for(lambda: seed_trial(results / "lost"), 300, "the trial's first epoch", proc=cli.proc)
        server.stop(signal.SIGTERM)
        rc = cli.wait(timeout=300)
    finally:
        stop_all((tree(cli.pid) | {cli.pid}) if cli else set(), ray_tmp)
        server.stop()
    out = cli.output()
    journal = results / "lost" / "mlflow_spool.jsonl"
    assert rc == 75, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "stopped answering" in errors[0] and "spooled" in errors[0], out[-3000:]
    assert f"replay {journal}" in errors[0] and journal.is_file(), out[-3000:]

    tune = trials(results / "lost")
    assert len(tune) == 1 and [r["epoch"] for r in next(iter(tune.values()))["rows"]] == [1, 2, 3]
    try:
        server.start()  # the same store, back
        snapshots = []
        for src in (journal, journal.with_name(journal.name + ".replayed")):  # the second replay changes nothing
            p = subprocess.run([PY, CLI, "replay", str(src), "--mlflow-uri", server.uri], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=180)
            assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
            c, parents, trial_runs = runs_of(server.uri)
            snapshots.append((_record(c, parents), _record(c, trial_runs)))
    finally:
        server.stop()
    assert snapshots[0] == snapshots[1]
    parents, runs = snapshots[0]
    assert len(parents) == 1 and len(runs) == 1
    status, _, tags, _, metrics = parents["lost"]
    assert status == "FINISHED" and tags["rnnsweep.status"] == "completed", tags
    assert metrics["trials_finished"][0][1] == 1.0
    (tid, t), = tune.items()
    status, _, tags, params, metrics = runs[tid]
    assert status == "FINISHED" and tags["rnnsweep.status"] == "completed" and float(params["lr"]) == t["config"]["lr"]
    for row in t["rows"]:  # every epoch Tune recorded is in MLflow, with its values
        for k, v in row.items():
            if k in metrics and isinstance(v, float):
                assert (row["epoch"], v) in [(s, x) for s, x, _ in metrics[k]], (k, row["epoch"])
    assert [s for s, _, _ in metrics["epoch"]] == [1, 2, 3]
