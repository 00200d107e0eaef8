"""Cluster-wide sweeps on a real 2-node Ray cluster and a real MLflow tracking server, loopback only.

The cluster is Ray's own multi-node test helper (``ray.cluster_utils.Cluster``) run in this process: a head and a
worker node, both on 127.0.0.1 (any other node address, even 127.0.0.2, makes Ray listen on every interface). Both
nodes then have one IP, so the node that ran a trial comes from the cluster's actor table (dead actors included):
Tune's result lines carry the trial process's pid, the actor table maps that pid to its node. The tracking server is ``run_search.py server`` on a free 127.0.0.1 port with an sqlite backend.
Sweeps run through the CLI as subprocesses that join the cluster with ``--address``.

Every process is stopped by its PID at the end: ``Cluster.shutdown()`` for Ray (then anything left under the
test's private Ray temp dir), SIGTERM to the server's process group. Never ``ray stop``.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import QUIET_ENV, ROOT, kill_pids, processes_under, run_cli

pytestmark = pytest.mark.timeout(300)

RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
LOOPBACK = "127.0.0.1"
TINY = ["--space", "demo/copy", "--samples", "4", "--max-budget", "2", "--confirm-top", "0", "--set", "updates=8",
        "--set", "delay=10", "--set", "n_val=100", "--concurrent", "2", "--quiet"]
TASK = "copy_nnrnn"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_dir():
    d = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    yield d
    kill_pids(processes_under(d))
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def server_proc(tmp_path_factory):
    """`run_search.py server` on a free loopback port, sqlite backend, started at once (it needs ~15-25 s to
    answer, which overlaps the cluster's start); stopped by SIGTERM to its process group."""
    work = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT)}
    log = open(work / "server.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), "server", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{work}/server.db", "--artifacts-destination",
                             str(work / "artifacts"), "--workers", "1"], cwd=work, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", proc, work
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        left = processes_under(str(work))
        kill_pids(left)
        assert proc.returncode == 0 and not left, (proc.returncode, left, (work / "server.log").read_text()[-2000:])


@pytest.fixture(scope="module")
def cluster(ray_dir, server_proc):
    """A head and one worker node, both on 127.0.0.1 (the tracking server boots meanwhile)."""
    saved = {k: os.environ.get(k) for k in [*RAY_ENV, "RAY_TMPDIR"]}
    os.environ.update({**RAY_ENV, "RAY_TMPDIR": ray_dir})
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": LOOPBACK})
    try:
        c.add_node(num_cpus=1, node_ip_address=LOOPBACK)
        c.wait_for_nodes()
        yield c
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        kill_pids(processes_under(ray_dir))
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def two_nodes(cluster) -> None:
    """Tests that remove the worker node leave one; the next test that needs two adds one back."""
    if not cluster.worker_nodes:
        cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
    cluster.wait_for_nodes()


@pytest.fixture(scope="module")
def server(server_proc):
    url, proc, work = server_proc
    deadline = time.monotonic() + 90
    while not _healthy(url):
        assert proc.poll() is None, (work / "server.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the tracking server did not answer /health in 90 s"
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while f"ready: use --mlflow-uri {url}" not in (work / "server.log").read_text():
        assert time.monotonic() < deadline, (work / "server.log").read_text()[-3000:]
        time.sleep(0.2)
    return server_proc


def _env(ray_dir: str) -> dict[str, str]:
    env = {**os.environ, **QUIET_ENV, **RAY_ENV, "RAY_TMPDIR": ray_dir, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    return env


def _trial_results(storage: Path, name: str) -> dict[str, list[dict]]:
    """Tune's per-trial result.json lines (one per reported epoch), by trial directory."""
    out = {}
    for f in glob.glob(str(storage / name / "*" / "result.json")):
        lines = []
        for ln in Path(f).read_text().splitlines():
            try:
                lines.append(json.loads(ln))
            except json.JSONDecodeError:
                pass  # a line being written
        out[Path(f).parent.name] = lines
    return out


def _head(cluster) -> str:
    return cluster.head_node.node_id


def _worker(cluster) -> str:
    (node,) = cluster.worker_nodes
    return node.node_id


def _trial_nodes(cluster, results: dict[str, list[dict]]) -> dict[str, list[str | None]]:
    """The node id behind each reported epoch of each trial (pid in Tune's result -> actor table -> node)."""
    pid_node = {a["Pid"]: a["Address"]["NodeID"] for a in cluster.global_state.actor_table(None).values()
                if a.get("Pid")}
    return {tid: [pid_node.get(r.get("pid")) for r in lines] for tid, lines in results.items()}


def _runs(url: str, sweep: str):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=url)
    exp = c.get_experiment_by_name(TASK)
    assert exp is not None, "the task's experiment is in the tracking server"
    runs = c.search_runs([exp.experiment_id], filter_string=f"tags.`rnnsweep.sweep` = '{sweep}'", max_results=1000)
    by_kind: dict[str, list] = {}
    for r in runs:
        by_kind.setdefault(r.data.tags.get("rnnsweep.kind"), []).append(r)
    return c, by_kind


@pytest.mark.timeout(480)
def test_sweep_runs_on_both_nodes_and_records_every_trial(cluster, server, ray_dir, tmp_path):
    two_nodes(cluster)
    url, *_ = server
    storage = tmp_path / "storage"
    t0 = time.monotonic()
    p = run_cli(["sweep", *TINY, "--name", "multi", "--address", cluster.address, "--storage", str(storage),
                 "--mlflow-uri", url], cwd=tmp_path, env=_env(ray_dir), timeout=240)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "sweep multi: 4 trials on task copy_nnrnn" in p.stdout
    results = _trial_results(storage, "multi")
    assert len(results) == 4 and all(results.values()), results.keys()
    nodes = {n for ns in _trial_nodes(cluster, results).values() for n in ns}
    assert nodes == {_head(cluster), _worker(cluster)}, f"trials ran on {nodes}, not on both nodes"

    c, kinds = _runs(url, "multi")
    (parent,) = kinds["sweep"]
    assert parent.info.status == "FINISHED"
    trials = kinds["trial"]
    assert len(trials) == 4
    assert {t.data.tags["rnnsweep.trial_id"] for t in trials} == {ls[-1]["trial_id"] for ls in results.values()}
    for t in trials:
        assert t.info.status == "FINISHED" and t.data.tags["mlflow.parentRunId"] == parent.info.run_id
        steps = [m.step for m in c.get_metric_history(t.info.run_id, "val_loss")]
        assert steps == sorted(set(steps)) and len(steps) == int(t.data.metrics["budget_used"])
    print(f"multi-node sweep: {time.monotonic() - t0:.1f} s")


def test_preflight_refuses_a_sqlite_store_on_two_nodes(cluster, ray_dir, tmp_path):
    two_nodes(cluster)
    storage = tmp_path / "storage"
    p = run_cli(["sweep", *TINY, "--name", "sq", "--address", cluster.address, "--storage", str(storage),
                 "--mlflow-uri", f"sqlite:///{tmp_path}/mlruns.db"], cwd=tmp_path, env=_env(ray_dir), timeout=120)
    assert p.returncode == 2, (p.stdout + p.stderr)[-3000:]
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, p.stderr[-3000:]
    assert "2 nodes" in errors[0] and "run_search.py server" in errors[0], errors[0]
    assert not (storage / "sq").exists(), "nothing ran"
    db = tmp_path / "mlruns.db"
    if db.exists():  # the client may create an empty store; no sweep may be recorded in it
        from mlflow.tracking import MlflowClient

        c = MlflowClient(tracking_uri=f"sqlite:///{db}")
        exp = c.get_experiment_by_name(TASK)
        assert exp is None or not c.search_runs([exp.experiment_id])


def test_unreachable_tracking_server_fails_before_any_trial(cluster, ray_dir, tmp_path):
    two_nodes(cluster)
    storage = tmp_path / "storage"
    dead = f"http://127.0.0.1:{_free_port()}"
    p = run_cli(["sweep", *TINY, "--name", "dead", "--address", cluster.address, "--storage", str(storage),
                 "--mlflow-uri", dead], cwd=tmp_path, env=_env(ray_dir), timeout=120)
    assert p.returncode == 2, (p.stdout + p.stderr)[-3000:]
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and dead in errors[0] and "unreachable" in errors[0], p.stderr[-3000:]
    assert not (storage / "dead").exists(), "no trial ran"


@contextlib.contextmanager
def connected(cluster):
    """This process as a driver of the cluster (project importable on its workers), for direct preflight calls."""
    import ray

    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), **RAY_ENV, **QUIET_ENV}})
    try:
        yield ray
    finally:
        ray.shutdown()


def test_preflight_checks_every_node(cluster, server, tmp_path):
    from rnns.errors import ConfigError
    from search.preflight import run_preflight

    two_nodes(cluster)
    url, *_ = server
    storage = tmp_path / "ok"
    with connected(cluster):
        t0 = time.monotonic()
        run_preflight(storage=str(storage), mlflow_uri=url, gpus_per_trial=0, cpus_per_trial=1)
        took = time.monotonic() - t0
        assert storage.is_dir() and list(storage.iterdir()) == [], "probe and marker files are removed"

        # the tracking server as seen from each node (the CLI's driver-side check does not run here)
        dead = f"http://127.0.0.1:{_free_port()}"
        with pytest.raises(ConfigError) as e:
            run_preflight(storage=str(storage), mlflow_uri=dead, gpus_per_trial=0, cpus_per_trial=1)
        msg = str(e.value)
        assert "\n" not in msg and dead in msg, msg
        assert f"{LOOPBACK} ({_head(cluster)[:8]})" in msg and f"{LOOPBACK} ({_worker(cluster)[:8]})" in msg, msg

        # resources no node has
        with pytest.raises(ConfigError) as e:
            run_preflight(storage=str(storage), mlflow_uri=url, gpus_per_trial=1, cpus_per_trial=1)
        assert "no node of the Ray cluster has" in str(e.value) and LOOPBACK in str(e.value), str(e.value)
        with pytest.raises(ConfigError) as e:
            run_preflight(storage=str(storage), mlflow_uri=url, gpus_per_trial=0, cpus_per_trial=4)
        assert "--cpus-per-trial 4" in str(e.value), str(e.value)

        # a storage path that cannot be a folder (under a file; root cannot write there either)
        (tmp_path / "file").write_text("x")
        with pytest.raises(ConfigError) as e:
            run_preflight(storage=str(tmp_path / "file" / "st"), mlflow_uri=url, gpus_per_trial=0, cpus_per_trial=1)
        assert str(tmp_path / "file" / "st") in str(e.value), str(e.value)
    print(f"preflight on 2 nodes: {took:.1f} s")


@pytest.mark.timeout(480)
def test_sweep_survives_losing_a_node(cluster, server, ray_dir, tmp_path):
    """The worker node dies mid-sweep: its trial fails, Tune retries it from its checkpoint on the head node
    (FailureConfig max_failures), and the sweep finishes with every trial recorded once. Epochs of 2000 updates
    (about 2 s each on one core): with short epochs the trial finished all of them before the node was gone."""
    two_nodes(cluster)
    worker = _worker(cluster)
    url, *_ = server
    storage = tmp_path / "storage"
    args = ["sweep", "--space", "demo/copy", "--samples", "2", "--max-budget", "4", "--scheduler", "fifo",
            "--confirm-top", "0", "--set", "updates=2000", "--set", "delay=10", "--set", "n_val=100",
            "--concurrent", "2", "--quiet", "--name", "failover", "--address", cluster.address,
            "--storage", str(storage), "--mlflow-uri", url]
    out = open(tmp_path / "sweep.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_search.py"), *args], cwd=tmp_path, env=_env(ray_dir),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        on_worker = None
        while on_worker is None:
            assert proc.poll() is None, (tmp_path / "sweep.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "no trial reported from the worker node"
            ran = _trial_nodes(cluster, _trial_results(storage, "failover"))
            on_worker = next((tid for tid, ns in ran.items() if worker in ns), None)
            time.sleep(0.2)
        (node,) = cluster.worker_nodes
        cluster.remove_node(node)
        rc = proc.wait(timeout=200)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        out.close()
    log = (tmp_path / "sweep.log").read_text()
    assert rc == 0, log[-4000:]
    assert "sweep failover: 2 trials" in log
    results = _trial_results(storage, "failover")
    moved = _trial_nodes(cluster, results)[on_worker]
    assert moved[0] == worker and moved[-1] == _head(cluster), f"the lost trial did not move to the head: {moved}"
    assert results[on_worker][-1]["epoch"] == 4

    c, kinds = _runs(url, "failover")
    trials = kinds["trial"]
    assert len(trials) == 2, "one MLflow run per trial, no second run for the retried one"
    for t in trials:
        assert t.info.status == "FINISHED" and t.data.tags["rnnsweep.status"] == "completed", t.data.tags
        steps = [m.step for m in c.get_metric_history(t.info.run_id, "val_loss")]
        assert steps == [1, 2, 3, 4], (t.data.tags["rnnsweep.trial_id"], steps)


def test_preflight_is_fast_on_one_node(cluster, tmp_path):
    """One node, the driver's own (as with the default local Ray): the checks run in the driver, well under 2 s.
    Runs last: it removes the worker node if a test left one."""
    from rnns.errors import ConfigError
    from search.preflight import run_preflight

    for node in list(cluster.worker_nodes):
        cluster.remove_node(node)
    cluster.wait_for_nodes()
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    with connected(cluster) as ray:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 1
        t0 = time.monotonic()
        run_preflight(storage=str(tmp_path / "st"), mlflow_uri=uri, gpus_per_trial=0, cpus_per_trial=1)
        took = time.monotonic() - t0
        with pytest.raises(ConfigError) as e:
            run_preflight(storage=str(tmp_path / "st"), mlflow_uri=uri, gpus_per_trial=0.5, cpus_per_trial=1)
    assert took < 2.0, f"preflight on one local node took {took:.2f} s"
    assert "needs a GPU" in str(e.value) and LOOPBACK in str(e.value), str(e.value)
    assert list((tmp_path / "st").iterdir()) == [], "the probe file is removed"
