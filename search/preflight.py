"""Checks every node of the Ray cluster once, before a sweep writes any record or starts any trial.

:func:`run_preflight` is called by :func:`search.sweep.run_sweep` right after Ray is started or joined. On each
alive node it runs one small task (pinned to the node, ``num_cpus=0``) that checks:

* the project (``rnns``, ``datasets``, ``spaces``, ``search``) and its dependencies import, from one project tree,
  with the driver's versions of torch, ray, mlflow and optuna;
* the Tune storage (``--storage``) is writable and, on several nodes, shared: the driver writes a marker file and
  every node must see it (a local path must be an NFS mount or similar; ``s3://``/``gs://`` URIs are opened with
  ``pyarrow.fs``, which is what Tune uses);
* the MLflow tracking server answers ``/health`` from the node (an ``sqlite``/file store is refused outright when
  the cluster has more than one node: it lives on one machine's disk);
* GPUs: ``--gpus-per-trial > 0`` needs a node with that many GPUs (or an autoscaler that can start one), and a node
  that advertises GPUs to Ray must show them to torch.

A problem is a :class:`~rnns.errors.ConfigError` of one line that names the node (IP and short id) and what it
lacks. On a single local node (the driver's own) the same checks run in the driver process, which takes well under
a second: no worker process has to start and import torch, and modules the driver has not loaded yet are only
located (it imports them itself moments later).
"""
from __future__ import annotations

import os
import uuid
from typing import Any

from rnns.errors import ConfigError

MODULES = ("rnns", "datasets", "spaces", "search.train", "search.trainable", "torch", "ray", "mlflow", "optuna")
PROJECT = ("rnns", "datasets", "spaces", "search")
VERSIONED = ("torch", "ray", "mlflow", "optuna")
TIMEOUT_ENV = "RNNSWEEP_PREFLIGHT_TIMEOUT"  # seconds to wait for every node's answer (default 120)
SETUP_HINT = "install the project and requirements.txt on every node (cluster.yaml setup_commands)"
SHARED_HINT = ("on a multi-node cluster --storage must be shared by every node: an NFS mount, or a URI such as "
               "s3://BUCKET/PATH or gs://BUCKET/PATH")


def is_uri(storage: str) -> bool:
    return "://" in storage and not storage.startswith("file://")


def _local_path(storage: str) -> str:
    return storage[len("file://"):] if storage.startswith("file://") else storage


def _label(node: dict) -> str:
    return f"node {node.get('NodeManagerAddress', '?')} ({str(node.get('NodeID', '?'))[:8]})"


def _http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _loopback_uri(uri: str) -> bool:
    from urllib.parse import urlparse

    host = (urlparse(uri).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def _make_check():
    """The per-node check, as a nested function so that Ray ships it by value: a node without the project still
    runs it and says which import fails. It uses only its argument and the standard library (imported inside)."""

    def check(spec: dict[str, Any]) -> list[str]:
        import importlib
        import importlib.util
        import os
        import sys
        import urllib.error
        import urllib.request

        node_id = spec.get("node_id") or "driver"
        problems: list[str] = []

        # 1. imports, one project tree, the driver's versions
        roots: dict[str, str] = {}
        for name in spec["modules"]:
            try:
                if spec.get("locate_only") and name not in sys.modules:
                    # the driver's own process: locate without importing (it imports what it needs itself)
                    found = importlib.util.find_spec(name)
                    if found is None:
                        raise ModuleNotFoundError(f"No module named {name!r}")
                    path, mod = found.origin, None
                else:
                    mod = importlib.import_module(name)
                    path = getattr(mod, "__file__", None)
            except Exception as e:  # noqa: BLE001 - any import failure is the node's problem to report
                first = (str(e).splitlines() or [""])[0][:160]
                problems.append(f"cannot import {name} ({type(e).__name__}: {first}): {spec['setup_hint']}")
                continue
            top = name.split(".")[0]
            if top in spec["project"] and path:
                roots[top] = os.path.dirname(os.path.dirname(os.path.abspath(path)))
            want = spec["versions"].get(name)
            have = str(getattr(mod, "__version__", "") or "")
            # compare release numbers only: a CPU build on the driver (+cpu) and CUDA builds on the nodes are fine
            if want and have and have.split("+")[0] != want.split("+")[0]:
                problems.append(f"has {name} {have} but the driver has {name} {want}: {spec['setup_hint']}")
        ref = roots.get("search")
        for top, root in sorted(roots.items()):
            if ref and root != ref:
                problems.append(f"imports {top!r} from {root}, not from the project at {ref} (another package of "
                                f"that name shadows it: uninstall it or fix PYTHONPATH)")

        # 2. storage: writable, and shared with the driver (the marker it wrote must be visible here)
        st, marker, probe = spec["storage"], spec.get("marker"), f".rnnsweep-probe-{node_id[:12]}-{spec['token']}"
        if spec["storage_is_uri"]:
            try:
                import pyarrow.fs as pafs

                fs, path = pafs.FileSystem.from_uri(st)
            except Exception as e:  # noqa: BLE001
                first = (str(e).splitlines() or [""])[0][:160]
                problems.append(f"cannot open the storage URI {st} ({type(e).__name__}: {first}): check the scheme "
                                f"(s3://, gs://, hdfs://, abfs://) and the node's credentials")
            else:
                path = path.rstrip("/")
                try:
                    if marker and fs.get_file_info(f"{path}/{marker}").type == pafs.FileType.NotFound:
                        problems.append(f"does not see the marker the driver wrote under {st}: check that every "
                                        f"node uses the same bucket, path and credentials")
                    else:
                        with fs.open_output_stream(f"{path}/{probe}") as f:
                            f.write(b"ok")
                        fs.delete_file(f"{path}/{probe}")
                except Exception as e:  # noqa: BLE001
                    first = (str(e).splitlines() or [""])[0][:160]
                    problems.append(f"cannot write to the storage {st} ({type(e).__name__}: {first}): check the "
                                    f"node's credentials (instance profile / service account) and the bucket policy")
        else:
            if marker and not os.path.exists(os.path.join(st, marker)):
                problems.append(f"does not see the storage folder {st} the driver wrote to: {spec['shared_hint']}")
            else:
                p = os.path.join(st, probe)
                try:
                    os.makedirs(st, exist_ok=True)
                    with open(p, "w") as f:
                        f.write("ok")
                    os.remove(p)
                except OSError as e:
                    problems.append(f"cannot write to the storage folder {st} ({e.strerror or e}): choose a "
                                    f"writable --storage")

        # 3. the tracking server
        uri = spec["mlflow_uri"]
        if spec["check_http"]:
            try:
                with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=spec["http_timeout"]) as r:
                    ok = r.status == 200
                    why = f"answered {r.status} on /health"
            except (urllib.error.URLError, OSError) as e:
                ok, why = False, str(getattr(e, "reason", e))[:160]
            if not ok:
                hint = "start it with `run_search.py server` (docs/cluster.md)"
                if spec["loopback_uri"] and not spec["driver_node"]:
                    hint = ("a loopback address reaches only the node itself: run the server with --host set to the "
                            "head's private address and pass that address in --mlflow-uri (docs/cluster.md)")
                problems.append(f"cannot reach the MLflow tracking server {uri} ({why}): {hint}")

        # 4. GPUs: what Ray advertises on this node must be visible to torch
        want_gpus = int(spec.get("node_gpus") or 0)
        if spec["gpus_per_trial"] > 0 and want_gpus > 0:
            try:
                import torch

                seen = torch.cuda.device_count()
            except Exception:  # noqa: BLE001 - reported above as an import problem
                seen = None
            if seen is not None and seen < want_gpus:
                problems.append(f"advertises {want_gpus} GPU(s) to Ray but torch sees {seen} (a CPU-only torch "
                                f"build, or no NVIDIA driver): {spec['setup_hint']}")
        return problems

    return check


def _versions() -> dict[str, str]:
    """The driver's installed versions, read from package metadata (no import: mlflow alone takes a second)."""
    from importlib import metadata

    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _autoscaler_max(resource: str) -> float:
    """Most of ``resource`` one node of the autoscaler's node types has (0 when there is no autoscaler config)."""
    try:
        import ray._private.state as state

        cfg = state.state.get_cluster_config()
    except Exception:  # noqa: BLE001 - private API; without it, only alive nodes count
        return 0.0
    if cfg is None:
        return 0.0
    return max((float(g.resources.get(resource, 0)) for g in cfg.node_group_configs if g.max_count != 0), default=0.0)


def _check_resources(nodes: list[dict], gpus_per_trial: float, cpus_per_trial: float) -> None:
    listing = ", ".join(f"{n.get('NodeManagerAddress')} ({n['Resources'].get('CPU', 0):g} CPU, "
                        f"{n['Resources'].get('GPU', 0):g} GPU)" for n in nodes)
    if gpus_per_trial > 0:
        most = max(float(n["Resources"].get("GPU", 0)) for n in nodes)
        scaled = _autoscaler_max("GPU")
        if most <= 0 and scaled <= 0:
            raise ConfigError(f"--gpus-per-trial {gpus_per_trial:g} needs a GPU but no node of the Ray cluster has "
                              f"one (nodes: {listing}): add GPU workers (docs/cluster.md) or use --gpus-per-trial 0")
        if max(most, scaled) < gpus_per_trial:
            raise ConfigError(f"--gpus-per-trial {gpus_per_trial:g} is more than any one node has (the most is "
                              f"{max(most, scaled):g}; nodes: {listing}): a trial runs on one node, lower it")
    most_cpu = max(max(float(n["Resources"].get("CPU", 0)) for n in nodes), _autoscaler_max("CPU"))
    if cpus_per_trial > most_cpu:
        raise ConfigError(f"--cpus-per-trial {cpus_per_trial:g} is more than any one node has (the most is "
                          f"{most_cpu:g}; nodes: {listing}): a trial runs on one node, lower it")


def _write_marker(storage: str, name: str) -> None:
    try:
        if is_uri(storage):
            import pyarrow.fs as pafs

            fs, path = pafs.FileSystem.from_uri(storage)
            path = path.rstrip("/")
            fs.create_dir(path, recursive=True)
            with fs.open_output_stream(f"{path}/{name}") as f:
                f.write(b"rnnsweep preflight marker\n")
        else:
            d = _local_path(storage)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, name), "w") as f:
                f.write("rnnsweep preflight marker\n")
    except Exception as e:  # noqa: BLE001
        first = (str(e).splitlines() or [""])[0][:160]
        raise ConfigError(f"the driver cannot write to the storage {storage} ({type(e).__name__}: {first}): "
                          "choose a writable --storage") from None


def _remove_marker(storage: str, name: str) -> None:
    try:
        if is_uri(storage):
            import pyarrow.fs as pafs

            fs, path = pafs.FileSystem.from_uri(storage)
            fs.delete_file(f"{path.rstrip('/')}/{name}")
        else:
            os.remove(os.path.join(_local_path(storage), name))
    except Exception:  # noqa: BLE001 - a leftover marker file is harmless
        pass


def _summary(found: list[tuple[str, str]]) -> str:
    """One line: each distinct problem once, with the nodes that have it."""
    grouped: dict[str, list[str]] = {}
    for label, problem in found:
        grouped.setdefault(problem, []).append(label)
    parts = []
    for problem, labels in grouped.items():
        who = labels[0] if len(labels) == 1 else "nodes " + ", ".join(lb.removeprefix("node ") for lb in labels)
        parts.append(f"{who} {problem}")
    line = parts[0]
    if len(parts) > 1:
        line += f"; and {len(parts) - 1} more: " + "; ".join(parts[1:3]) + ("; ..." if len(parts) > 3 else "")
    return "preflight: " + " ".join(line.split())


def run_preflight(*, storage: str, mlflow_uri: str, gpus_per_trial: float, cpus_per_trial: float) -> None:
    """Check every alive node of the connected Ray cluster; raise ConfigError (one line naming the node) on the
    first problems found. Ray must be initialised."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if not nodes:
        raise ConfigError("preflight: the Ray cluster has no alive node")
    if len(nodes) > 1 and not _http(mlflow_uri):
        raise ConfigError(f"preflight: the MLflow store {mlflow_uri} is a file on one machine but the Ray cluster has "
                          f"{len(nodes)} nodes: start a tracking server with `run_search.py server` (docs/cluster.md) "
                          "and pass --mlflow-uri http://HOST:PORT")
    _check_resources(nodes, gpus_per_trial, cpus_per_trial)

    token = uuid.uuid4().hex[:12]
    spec: dict[str, Any] = {
        "modules": MODULES, "project": PROJECT, "versions": _versions(), "setup_hint": SETUP_HINT,
        "shared_hint": SHARED_HINT, "storage": storage if is_uri(storage) else _local_path(storage),
        "storage_is_uri": is_uri(storage), "marker": None, "token": token, "mlflow_uri": mlflow_uri,
        "check_http": _http(mlflow_uri), "loopback_uri": _http(mlflow_uri) and _loopback_uri(mlflow_uri),
        "http_timeout": 5.0, "gpus_per_trial": float(gpus_per_trial)}
    check = _make_check()
    try:
        here = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - e.g. Ray Client: treat the driver as remote
        here = None

    found: list[tuple[str, str]] = []
    if len(nodes) == 1 and nodes[0]["NodeID"] == here:
        # one local node: the driver's process sees what the node's workers see
        n = nodes[0]
        problems = check({**spec, "node_id": n["NodeID"], "driver_node": True, "locate_only": True,
                          "node_gpus": n["Resources"].get("GPU", 0)})
        found += [(_label(n), p) for p in problems]
    else:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        marker = f".rnnsweep-preflight-{token}"
        _write_marker(storage, marker)
        spec["marker"] = marker
        remote = ray.remote(check)
        timeout = float(os.environ.get(TIMEOUT_ENV, "120"))
        try:
            refs = {}
            for n in nodes:
                ref = remote.options(
                    num_cpus=0, max_retries=0, name="rnnsweep_preflight",
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                ).remote({**spec, "node_id": n["NodeID"], "driver_node": n["NodeID"] == here,
                          "node_gpus": n["Resources"].get("GPU", 0)})
                refs[ref] = n
            ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
            for ref in ready:
                n = refs[ref]
                try:
                    found += [(_label(n), p) for p in ray.get(ref)]
                except Exception as e:  # noqa: BLE001 - runtime env setup, node death, a crash in the check
                    msg = " ".join(str(e).split())
                    kind = type(e).__name__
                    if "RuntimeEnv" in kind or "runtime_env" in msg:
                        found.append((_label(n), f"cannot set up the job's runtime environment ({kind}: "
                                                  f"{msg[:200]}): {SETUP_HINT}"))
                    else:
                        found.append((_label(n), f"could not run the preflight check ({kind}: {msg[:200]})"))
            for ref in pending:
                found.append((_label(refs[ref]), f"did not answer the preflight check within {timeout:g} s (a slow "
                                                 f"runtime environment setup or a hung import; set {TIMEOUT_ENV} to "
                                                 "wait longer)"))
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001
                    pass
        finally:
            _remove_marker(storage, marker)
    if found:
        raise ConfigError(_summary(found))
