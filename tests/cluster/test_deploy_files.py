"""Fast checks without a cluster: cluster.yaml against Ray's own launcher schema, the KubeRay manifest's structure,
the per-node preflight check on this machine, and the tracking-server command line."""
from __future__ import annotations

import argparse

import pytest
import yaml

from conftest import ROOT


@pytest.fixture(scope="module")
def launcher():
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


@pytest.fixture(scope="module")
def kuberay():
    return list(yaml.safe_load_all((ROOT / "deploy" / "kuberay.yaml").read_text()))


def test_cluster_yaml_passes_rays_schema(launcher):
    from ray.autoscaler._private.util import validate_config

    validate_config(launcher)  # jsonschema of `ray up`, no unknown keys; head_node_type among the node types


def test_cluster_yaml_structure(launcher):
    types = launcher["available_node_types"]
    assert launcher["head_node_type"] in types
    head = types[launcher["head_node_type"]]
    workers = {k: v for k, v in types.items() if k != launcher["head_node_type"]}
    assert workers and all(0 <= w["min_workers"] <= w["max_workers"] <= launcher["max_workers"]
                           for w in workers.values())
    assert any(w["node_config"]["InstanceType"].startswith(("g", "p")) for w in workers.values()), "a GPU type"
    assert head["resources"] == {"CPU": 0}, "no trials on the head"
    start = " ".join(launcher["head_start_ray_commands"])
    assert "--disable-usage-stats" in start and "--dashboard-host=127.0.0.1" in start and "--head" in start
    assert "--disable-usage-stats" in " ".join(launcher["worker_start_ray_commands"])
    assert any("requirements.txt" in c for c in launcher["setup_commands"])
    assert launcher["file_mounts"].get("~/rnnsweep") == "."
    assert launcher["provider"]["type"] == "aws"
    # the pinned Ray of requirements.txt is the Ray of the image and of `ray up`
    pin = next(ln.split("==")[1].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
               if ln.startswith("ray"))
    assert launcher["docker"]["image"].split(":")[1].startswith(pin + "-")


def test_no_credentials_in_deploy_files():
    import re

    for f in (ROOT / "cluster.yaml", ROOT / "deploy" / "kuberay.yaml"):
        text = f.read_text()
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), f"an AWS key id in {f.name}"
        for line in text.splitlines():
            code = line.split("#", 1)[0].lower()
            assert not re.search(r"(secret_access_key|aws_secret|password|auth_token\s*:)\s*\S", code), (f.name, line)


def test_kuberay_manifest_structure(kuberay):
    kinds = {d["kind"]: d for d in kuberay}
    rc = kinds["RayCluster"]
    assert rc["apiVersion"] == "ray.io/v1"
    pin = next(ln.split("==")[1].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()
               if ln.startswith("ray"))
    spec = rc["spec"]
    assert spec["rayVersion"] == pin
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    containers = {c["name"]: c for c in head["template"]["spec"]["containers"]}
    assert list(containers)[0] == "ray-head" and "mlflow" in containers
    assert containers["mlflow"]["command"][1:3] == ["run_search.py", "server"]
    (gpu,) = spec["workerGroupSpecs"]
    assert 0 <= gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]
    worker = gpu["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for c in [*containers.values(), worker]:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert env.get("MLFLOW_DISABLE_TELEMETRY") == "true"
    svc = kinds["Service"]
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["selector"]["ray.io/cluster"] == rc["metadata"]["name"]
    claim = head["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert kinds["PersistentVolumeClaim"]["metadata"]["name"] == claim


# ---- the per-node check, run here (no Ray) ------------------------------------------------------------------
def _spec(tmp_path, **kw):
    from search import preflight as P

    spec = {"modules": P.MODULES, "project": P.PROJECT, "versions": P._versions(), "setup_hint": P.SETUP_HINT,
            "shared_hint": P.SHARED_HINT, "storage": str(tmp_path), "storage_is_uri": False, "marker": None,
            "token": "t", "mlflow_uri": "sqlite:///x.db", "check_http": False, "loopback_uri": False,
            "http_timeout": 1.0, "gpus_per_trial": 0.0, "node_id": "abc", "driver_node": True, "node_gpus": 0}
    spec.update(kw)
    return spec


def test_node_check_passes_here(tmp_path):
    from search.preflight import _make_check

    assert _make_check()(_spec(tmp_path)) == []
    assert _make_check()(_spec(tmp_path, locate_only=True)) == []
    assert list(tmp_path.iterdir()) == []


def test_node_check_names_what_is_missing(tmp_path):
    from search.preflight import _make_check

    check = _make_check()
    for locate in (False, True):
        (p,) = check(_spec(tmp_path, modules=("rnns", "no_such_module_xyz"), locate_only=locate))
        assert p.startswith("cannot import no_such_module_xyz (ModuleNotFoundError") and "requirements.txt" in p
    (p,) = check(_spec(tmp_path, versions={"torch": "0.0.1"}, modules=("torch",)))
    assert "but the driver has torch 0.0.1" in p
    (p,) = check(_spec(tmp_path, marker=".rnnsweep-preflight-missing"))
    assert "does not see the storage folder" in p and "s3://" in p
    (p,) = check(_spec(tmp_path, storage_is_uri=True, storage="nosuchscheme://bucket/x"))
    assert p.startswith("cannot open the storage URI nosuchscheme://bucket/x")
    (p,) = check(_spec(tmp_path, check_http=True, mlflow_uri="http://127.0.0.1:9", loopback_uri=True,
                       driver_node=False))
    assert "cannot reach the MLflow tracking server http://127.0.0.1:9" in p and "loopback" in p
    (p,) = check(_spec(tmp_path, gpus_per_trial=1.0, node_gpus=2))
    assert "advertises 2 GPU(s) to Ray but torch sees 0" in p


def test_node_check_uses_pyarrow_for_uris(tmp_path):
    """A URI goes through pyarrow.fs (what Tune uses): file:// is the one reachable here."""
    from search.preflight import _make_check

    d = tmp_path / "bucket"
    d.mkdir()
    (d / ".m").write_text("x")
    assert _make_check()(_spec(tmp_path, storage_is_uri=True, storage=d.as_uri(), marker=".m")) == []
    (p,) = _make_check()(_spec(tmp_path, storage_is_uri=True, storage=d.as_uri(), marker=".absent"))
    assert "does not see the marker" in p


def test_summary_is_one_line_per_sweep():
    from search.preflight import _summary

    line = _summary([("node 10.0.0.1 (aaaa)", "cannot import torch (x)"),
                     ("node 10.0.0.2 (bbbb)", "cannot import torch (x)"),
                     ("node 10.0.0.3 (cccc)", "does not see the storage folder /s")])
    assert "\n" not in line
    assert line.startswith("preflight: nodes 10.0.0.1 (aaaa), 10.0.0.2 (bbbb) cannot import torch (x)")
    assert "and 1 more: node 10.0.0.3 (cccc) does not see" in line


# ---- `run_search.py server` ------------------------------------------------------------------------------------
def test_server_arguments_and_command(tmp_path, monkeypatch):
    from search import mlflow_server as M

    monkeypatch.chdir(tmp_path)
    p = argparse.ArgumentParser()
    M.add_arguments(p)
    a = p.parse_args([])
    assert a.host == "127.0.0.1" and a.port == 5000 and a.workers is None
    assert a.backend_store_uri == f"sqlite:///{tmp_path}/mlflow-server.db"
    assert a.artifacts_destination == str(tmp_path / "mlartifacts")
    cmd = M.command(p.parse_args(["--port", "5100", "--workers", "2"]))
    assert cmd[1:4] == ["-m", "mlflow", "server"] and "--serve-artifacts" in cmd
    assert cmd[cmd.index("--port") + 1] == "5100" and cmd[cmd.index("--workers") + 1] == "2"
    assert M._is_loopback("127.0.0.1") and M._is_loopback("localhost") and M._is_loopback("::1")
    assert not M._is_loopback("0.0.0.0") and not M._is_loopback("10.0.0.5")


def test_server_refuses_a_busy_port(tmp_path, monkeypatch, capsys):
    import socket

    from rnns.errors import ConfigError
    from search import mlflow_server as M

    monkeypatch.chdir(tmp_path)
    p = argparse.ArgumentParser()
    M.add_arguments(p)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            M.serve(p.parse_args(["--port", str(port)]))
