"""The tracking server stops in the middle of a sweep and never comes back: the sweep ends with one clear line and
exit status 1 (it used to crash with 135 lines of traceback once the queued writes were given up)."""
from __future__ import annotations

import signal

from reliability_helpers import TINY, Cli, Server, env_for, free_port, new_ray_tmp, seed_trial, stop_all, tree, wait_for


def test_a_server_that_never_comes_back_ends_the_sweep_in_one_line(tmp_path):
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
    assert rc == 1, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "stopped answering" in errors[0] and str(results / "lost") in errors[0], out[-3000:]
