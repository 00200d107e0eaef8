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


# ----------------------------------------------------------------------------------------------------------------
# values: every --set value, every seed point and every value a space can sample, checked before Ray starts
#
# Two layers. (1) A domain per key (the table below, else the type of the consuming component's default): a value
# of the wrong type, not finite, or out of range is refused with the key, the value and the valid range. (2) A dry
# construction on the CPU of what consumes the value -- the task (with tiny split sizes), the model (at a small width)
# and the optimiser and schedule -- with nothing trained: names the components know (an init, a rho, an optimiser,
# a nonlinearity...) and constraints between values (an odd hidden size for nnRNN...) are refused by the component
# itself, and its message (which lists the valid names) is passed on in the same one line.

import math as _math  # noqa: E402
from dataclasses import dataclass  # noqa: E402


@dataclass(frozen=True)
class Domain:
    kind: str  # "int" | "float" | "bool" | "str" | "pair" (two numbers, e.g. Adam's betas)
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False
    none_ok: bool = False  # None (JSON null) allowed: "not set"

    def text(self) -> str:
        what = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a name",
                "pair": "two numbers [a, b]"}[self.kind]
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            rng = f" in {'(' if self.low_open else '['}{lo:g}, {hi:g}{')' if self.high_open else ']'}"
        elif lo is not None:
            rng = f" {'>' if self.low_open else '>='} {lo:g}"
        elif hi is not None:
            rng = f" {'<' if self.high_open else '<='} {hi:g}"
        else:
            rng = ""
        if self.kind == "pair" and rng:
            rng = " each" + rng
        return what + rng + (" (or null)" if self.none_ok else "")

    def problem(self, v: Any) -> str | None:
        """Why ``v`` is outside the domain, or None."""
        if v is None:
            return None if self.none_ok else "is not set"
        if self.kind == "bool":
            return None if isinstance(v, bool) else "is not true/false"
        if self.kind == "str":
            return None if isinstance(v, str) else "is not a name"
        if self.kind == "pair":
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                return "is not a pair of numbers"
            for x in v:
                why = Domain("float", self.low, self.high, self.low_open, self.high_open).problem(x)
                if why:
                    return why
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            if isinstance(v, str):
                try:
                    float(v)
                    return "is not a finite number"  # nan, inf, infinity written as text
                except ValueError:
                    return "is not a number"
            return "is not a number"
        if not _math.isfinite(v):
            return "is not a finite number"
        if self.kind == "int" and int(v) != v:
            return "is not a whole number"
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return "is out of range"
        if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
            return "is out of range"
        return None


_POS = Domain("float", 0, None, low_open=True)
_NONNEG = Domain("float", 0, None)
_UNIT_OPEN = Domain("float", 0, 1, low_open=True, high_open=True)
_PROB = Domain("float", 0, 1, high_open=True)
_COUNT = Domain("int", 1)
_COUNT0 = Domain("int", 0)

DOMAINS: dict[str, Domain] = {
    # optimiser and schedule (rnns.optim)
    "lr": _POS, "lr_orth": _POS, "alpha": _UNIT_OPEN, "eps": _POS, "momentum": _PROB, "weight_decay": _NONNEG,
    "Tdecay": _NONNEG, "lr_factor": _POS, "clip_multiplier": _POS, "betas": Domain("pair", 0, 1, high_open=True),
    "optimizer": Domain("str"), "schedule": Domain("str"), "warmup_epochs": _NONNEG, "lr_min": _NONNEG,
    # model (rnns.model) and cells
    "hidden_size": _COUNT, "num_layers": _COUNT, "embed_dim": Domain("int", 1, none_ok=True), "dropout": _PROB,
    "delta": _NONNEG, "r_min": _PROB, "r_max": Domain("float", 0, 1, low_open=True), "max_phase": _POS,
    "chrono": _COUNT0, "rank": _COUNT0, "rounds": _COUNT0, "relu_layers": _COUNT, "middle": _POS, "out_size": _COUNT0,
    "seq_len": Domain("int", 1, none_ok=True), "alpha_init": Domain("float", none_ok=True),
    "forget_bias": Domain("float"),
    # trainer
    "epochs": _COUNT, "grad_clip": _NONNEG, "max_loss": _POS, "param_budget": Domain("int", 1, none_ok=True),
    "max_batches": _COUNT0, "seed": _COUNT0,
    # tasks
    "batch_size": _COUNT, "eval_batch_size": _COUNT, "bptt": _COUNT, "length": _COUNT, "window": _COUNT,
    "stride": _COUNT, "updates": _COUNT, "n_train": _COUNT, "n_val": _COUNT, "n_test": _COUNT, "delay": _COUNT,
    "lag": _COUNT, "pattern": _COUNT, "max_len": _COUNT, "vocab_size": _COUNT, "data_seed": _COUNT0,
    "label_smoothing": _PROB, "val_fraction": _UNIT_OPEN,
}


def _default_of(key: str, task: str, model: str) -> Any:
    from datasets.base import get_task
    from rnns.registry import get_cell

    for d in (get_task(task).defaults, get_cell(model).options()):
        if key in d:
            return d[key]
    return None


def domain_of(key: str, task: str, model: str) -> Domain | None:
    """The valid values of ``key``: the table above, else the type of the consuming component's default."""
    if key in DOMAINS:
        return DOMAINS[key]
    d = _default_of(key, task, model)
    if isinstance(d, bool):
        return Domain("bool")
    if isinstance(d, int):
        return Domain("int")
    if isinstance(d, float):
        return Domain("float")
    if isinstance(d, str):
        return Domain("str")
    return None  # no default to judge by: left to the dry construction


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return repr(v) if _math.isfinite(v) or _math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, bool) or v is None:
        return {True: "true", False: "false", None: "null"}[v]
    return str(v)


def check_domain(where: str, key: str, value: Any, task: str, model: str) -> None:
    dom = domain_of(key, task, model)
    why = dom.problem(value) if dom else None
    if why:
        raise ConfigError(f"{where}{key}={fmt_value(value)} {why}; valid: {dom.text()}")


_DRY_WIDTH = 256  # widest model of the dry construction (a real one may be thousands wide; some inits need >= 164)
_TINY_SPLITS = {"n_val": 2, "n_test": 2, "n_train": 2, "updates": 1}


_SPECS: dict[str, Any] = {}  # task specs built in this process, by task, options, data root and its files' versions


def _files_version(task: str, data_dir: str | None) -> tuple:
    """(file, size, mtime) of the task's present data files: a changed file is built again."""
    try:
        from datasets import files as F
        from datasets.base import resolve_data_dir

        ds, root = F.dataset_of(task), resolve_data_dir(data_dir)
    except (ImportError, KeyError):
        return ()
    if root is None:
        return ()
    out = []
    for f in ds.files:
        try:
            st = (root / f.path).stat()
            out.append((f.path, st.st_size, st.st_mtime_ns))
        except OSError:
            pass
    return tuple(out)


def built_spec(task: str, data_dir: str | None) -> Any:
    """The spec of a build of ``task`` this process already made (any options; its files unchanged), else None: the
    sweep reads its metric and mode from the preflight's build instead of building the task again."""
    version = _files_version(task, data_dir)
    for key, spec in reversed(list(_SPECS.items())):
        t, d, v = key[:3]
        if t == task and d == str(data_dir) and v == version:
            return spec
    return None


class _Dry:
    """Builds a task (tiny splits), a model (small width), an optimiser and a schedule from a configuration, with
    caches so that a space's many values cost few constructions."""

    def __init__(self, data_dir: str | None):
        self.data_dir = data_dir
        self.specs: dict[str, Any] = {}
        self.models: dict[str, Any] = {}

    def spec(self, task: str, task_opts: dict) -> Any:
        from datasets.base import build_task, get_task

        defaults = get_task(task).defaults
        # batch sizes are range-checked above and shape no spec: one build of a file-backed task, not one per size
        task_opts = {k: v for k, v in task_opts.items() if k not in ("batch_size", "eval_batch_size")}
        opts = {**{k: v for k, v in _TINY_SPLITS.items() if k in defaults}, **task_opts}
        for k in _TINY_SPLITS:  # a user's split size was range-checked; a tiny one builds the same way
            if k in task_opts and k in defaults:
                opts[k] = _TINY_SPLITS[k]
        key = repr((task, sorted(opts.items())))
        if key not in self.specs:
            gkey = (task, str(self.data_dir), _files_version(task, self.data_dir), key)
            if gkey not in _SPECS:
                _SPECS[gkey] = build_task(task, data_dir=self.data_dir, **opts).spec
            self.specs[key] = _SPECS[gkey]
        return self.specs[key]

    def model(self, cfg: dict) -> Any:
        from rnns.model import SequenceModel

        from .config import split_config

        sc = split_config(cfg)
        spec = self.spec(sc.task, sc.task_opts)
        opts = dict(sc.model_opts)
        h = opts.get("hidden_size")
        # small, with the parity of the real width (some cells need an even one)
        opts["hidden_size"] = _DRY_WIDTH + (int(h) % 2) if isinstance(h, int) and h > _DRY_WIDTH else (h or _DRY_WIDTH)
        opts.pop("param_budget", None)
        if opts.get("embed_dim") and opts["embed_dim"] > _DRY_WIDTH:
            opts["embed_dim"] = _DRY_WIDTH
        key = repr((sc.model, sorted(opts.items(), key=lambda kv: kv[0])))
        if key not in self.models:
            self.models[key] = SequenceModel(sc.model, spec.input_size, spec.output_size, spec.readout,
                                             token_input=spec.input_kind == "tokens", **opts)
        return self.models[key], sc

    def build(self, cfg: dict, keys: set[str] | None = None) -> None:
        """Construct what consumes ``keys`` (everything when None): the task for task options, the model for
        model and cell options, the optimiser and schedule for theirs."""
        from datasets.base import get_task
        from rnns.model import MODEL_OPTIONS
        from rnns.optim import OPTIM_OPTIONS, SCHEDULE_OPTIONS, build_optimizer, build_schedule
        from rnns.registry import get_cell

        from .config import split_config

        sc = split_config(cfg)
        tdefaults = get_task(sc.task).defaults
        copts = get_cell(sc.model).options()
        keys = set(cfg) if keys is None else keys
        if keys & set(tdefaults):
            self.spec(sc.task, sc.task_opts)
        if keys & (set(MODEL_OPTIONS) | set(copts) | set(OPTIM_OPTIONS) | set(SCHEDULE_OPTIONS) | {"model", "task"}):
            model, _ = self.model(cfg)
            if keys & (set(OPTIM_OPTIONS) | set(SCHEDULE_OPTIONS) | {"model", "task"}):
                opt = build_optimizer(model, **sc.optim_opts)
                epochs = int(sc.train_opts.get("epochs", 10))
                steps = 10
                build_schedule(opt, schedule=sc.sched_opts.get("schedule", "none"), total_steps=epochs * steps,
                               warmup_steps=int(round(float(sc.sched_opts.get("warmup_epochs", 0.0)) * steps)),
                               lr_min=float(sc.sched_opts.get("lr_min", 1e-7)))


def _first_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg[:300]


def _component(key: str, task: str, model: str) -> str:
    from datasets.base import get_task
    from rnns.optim import OPTIM_OPTIONS, SCHEDULE_OPTIONS

    if key in get_task(task).defaults:
        return f"task {task!r}"
    if key in OPTIM_OPTIONS:
        return "the optimiser"
    if key in SCHEDULE_OPTIONS:
        return "the schedule"
    return f"model {model!r}"


def _refused(where: str, key: str, value: Any, cfg: dict, e: BaseException) -> ConfigError:
    # the component's own message says what it accepts (its valid names, or the constraint: "needs an even ...")
    comp = _component(key, cfg["task"], cfg["model"])
    return ConfigError(f"{where}{key}={fmt_value(value)} is refused by {comp}: {_first_line(e)}")


_BUILD_ERRORS = (ConfigError, ValueError, TypeError, KeyError, RuntimeError, AssertionError, IndexError,
                 ZeroDivisionError, OverflowError)


def _values(p) -> list:
    """What a searcher can give parameter ``p``: every choice, the ends of a range, its grid values."""
    if p.kind == "choice":
        return list(p.choices)
    vals = [p.low, p.high] + [g for g in p.grid]
    if p.kind == "int":
        vals = [int(v) for v in vals]
    out = []
    for v in vals:
        if all(repr(v) != repr(o) for o in out):
            out.append(v)
    return out


def _where_applies(p, cfg: dict) -> dict | None:
    """``cfg`` with the parameters ``p`` depends on set so that ``p`` applies; None where it cannot (another model)."""
    if "model" in p.when and cfg["model"] not in p.when["model"]:
        return None
    out = dict(cfg)
    for k, vals in p.when.items():
        if out.get(k) not in vals:
            out[k] = vals[0]
    return out


def check_values(space, run_space, models: tuple[str, ...], overrides: dict[str, Any],
                 data_dir: str | None = None) -> None:
    """Refuse, before Ray starts and before anything is written, any value a trial of this sweep could get that its
    component would reject: the ``--set`` values, every seed point and every value the space can sample. A problem
    is one ConfigError line naming where the value comes from, the key, the value and the valid range.

    ``space`` is the registry's space; ``run_space`` the same with the sweep's budget, seed and overrides fixed
    (:func:`search.sweep.sweep_space`)."""
    from .config import known_keys, split_config
    from .space_adapter import seed_configs

    dry = _Dry(data_dir)
    task = space.task
    # 1. domains: overrides, seed points, every value the space can sample
    for m in models:
        for k, v in overrides.items():
            check_domain("--set ", k, v, task, m)
    for cfg, _src, name in seed_configs(run_space, models):
        for k, v in cfg.items():
            if k not in ("task", "model") and v is not None:  # None: a setting the seed point removes
                check_domain(f"published configuration {name or '?'!r} of space {space.name!r}: ", k, v, task,
                             cfg["model"])
    for p in run_space.params:
        for m in models:
            if p.config_key in known_keys(task, m) and ("model" not in p.when or m in p.when["model"]):
                for v in _values(p):
                    check_domain(f"space {space.name!r} parameter {p.name!r} ({p.span()}): ", p.config_key, v,
                                 task, m)
                break
    # 2. dry construction: the space's own settings, then each --set value, each seed point, each sampleable value
    for m in models:
        base = {k: v for k, v in space.base_config(m).items() if v is not None}
        for p in space.params:  # a complete configuration: each applicable parameter at its default or first value
            if p.config_key not in base and p.applies(base):
                base[p.config_key] = p.default if p.default is not None else _values(p)[0]
        # the task first, unwrapped: a missing or corrupt data file is the loader's own one-line message
        dry.spec(task, split_config(base).task_opts)
        try:
            dry.build(base)
        except _BUILD_ERRORS as e:
            raise ConfigError(f"space {space.name!r} model {m!r} cannot be built with its own settings: "
                              f"{_first_line(e)}") from None
        for k, v in overrides.items():
            try:
                dry.build({**base, k: v}, {k})
            except _BUILD_ERRORS as e:
                raise _refused("--set ", k, v, {**base, k: v}, e) from None
        if overrides:
            cfg = {**base, **overrides}
            try:
                dry.build(cfg, set(overrides))
            except _BUILD_ERRORS as e:
                given = " ".join(f"{k}={fmt_value(v)}" for k, v in overrides.items())
                raise ConfigError(f"--set {given}: together refused by model {m!r}: {_first_line(e)}") from None
        with_over = {k: v for k, v in run_space.base_config(m).items() if v is not None}
        for p in run_space.params:
            cfg0 = _where_applies(p, {**base, **with_over})
            if cfg0 is None or p.config_key not in known_keys(task, m):
                continue
            for v in _values(p):
                cfg = {**cfg0, p.config_key: v}
                try:
                    dry.build(cfg, {p.config_key})
                except _BUILD_ERRORS as e:
                    raise _refused(f"space {space.name!r} parameter {p.name!r} ({p.span()}): ", p.config_key, v,
                                   cfg, e) from None
    for cfg, _src, name in seed_configs(run_space, models):
        cfg = {k: v for k, v in cfg.items() if v is not None}
        try:
            dry.build(cfg)
        except _BUILD_ERRORS as e:
            raise ConfigError(f"published configuration {name or '?'!r} of space {space.name!r} (model "
                              f"{cfg['model']!r}) is refused: {_first_line(e)}") from None
