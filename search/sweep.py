"""One sweep, end to end: validate, start (or join) Ray, run the Tuner, record in MLflow, confirm and tag the best.

Flow (docs/architecture.md):
 1. validate the experiment (space, models, searcher, scheduler, budget, overrides) before anything starts;
 2. check the tracking store, create the task's experiment and the sweep's parent run;
 3. start a local Ray on 127.0.0.1 (or join ``--address``);
 4. run the Tuner: seed points first, then the searcher; ASHA stops the weak trials; every trial and epoch is
    written to MLflow by the driver-side callback as it happens;
 5. confirmation: the top ``confirm_top`` configurations per model are re-run with ``confirm_seeds`` seeds; the
    best by mean validation metric is tagged best for (task, model); its test metric is computed, and only its.
"""
from __future__ import annotations

import json
import math
import os
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rnns.errors import ConfigError

from . import tracking as T
from .algorithms import SCHEDULERS, SEARCHERS, build_scheduler, build_searcher, pbt_mutable, preset_space
from .config import known_keys
from .space_adapter import rename_map, seed_configs
from .train import DIVERGED, val_key

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_ENV = {
    # Ray binds to the primary interface unless told otherwise; keep a local Ray on loopback (ENVIRONMENT.md)
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


@dataclass
class Experiment:
    space: str
    models: tuple[str, ...] = ()  # subset of the space's models; empty = all
    num_samples: int = 8  # trials, seed points included
    scheduler: str = "asha"
    searcher: str = "tpe"
    grace_period: int = 1
    reduction_factor: float = 3.0
    max_budget: int | None = None  # epochs of a full trial; default the space's budget
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    gpu_memory_fraction: float | None = None  # cap per trial when trials share a GPU
    storage: str | None = None
    name: str | None = None
    mlflow_uri: str | None = None
    address: str | None = None
    data_dir: str | None = None
    seed: int = 0
    confirm_top: int = 3
    confirm_seeds: int = 3
    published_only: bool = False
    resume: bool = False
    max_failures: int = 2
    overrides: dict[str, Any] = field(default_factory=dict)
    verbose: int = 1


def load_space(name: str):
    from spaces.registry import get_space

    return get_space(name)


def validate(exp: Experiment):
    """Everything that can be checked before Ray or MLflow start; returns (space, models, budget)."""
    space = load_space(exp.space)
    models = tuple(exp.models) or tuple(space.models)
    for m in models:
        if m not in space.models:
            from rnns.errors import unknown

            raise unknown(f"model for space {space.name!r}", m, space.models)
    if exp.num_samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {exp.num_samples}")
    if exp.scheduler not in SCHEDULERS:
        from rnns.errors import unknown

        raise unknown("scheduler", exp.scheduler, SCHEDULERS)
    if exp.searcher not in SEARCHERS:
        from rnns.errors import unknown

        raise unknown("searcher", exp.searcher, SEARCHERS)
    budget = int(next(b for b in (exp.max_budget, exp.overrides.get("epochs"), space.budget) if b is not None))
    if budget < 1:
        raise ConfigError(f"the budget (epochs) must be >= 1, got {budget}")
    if exp.scheduler in ("asha", "median", "pbt") and not 1 <= exp.grace_period <= budget:
        raise ConfigError(f"--grace-period must be between 1 and the budget ({budget} epochs), got {exp.grace_period}")
    if exp.scheduler in ("asha", "hyperband") and exp.reduction_factor <= 1:
        raise ConfigError(f"--reduction-factor must be > 1, got {exp.reduction_factor}")
    if exp.max_concurrent < 1 or exp.cpus_per_trial <= 0 or exp.gpus_per_trial < 0:
        raise ConfigError("--concurrent must be >= 1, --cpus-per-trial > 0 and --gpus-per-trial >= 0")
    if exp.gpu_memory_fraction is not None and not 0 < exp.gpu_memory_fraction <= 1:
        raise ConfigError(f"--gpu-memory-fraction must be in (0, 1], got {exp.gpu_memory_fraction}")
    if exp.confirm_top < 0 or exp.confirm_seeds < 1:
        raise ConfigError("--confirm-top must be >= 0 and --confirm-seeds >= 1")
    for m in models:
        keys = known_keys(space.task, m)
        for k in exp.overrides:
            if k not in keys:
                from rnns.errors import suggest

                raise ConfigError(f"--set {k}: not a parameter of task {space.task!r} / model {m!r}{suggest(k, keys)}")
    if exp.published_only and not any(sp.config.get("model", models[0]) in models for sp in space.seeds):
        raise ConfigError(f"space {space.name!r} has no published configuration for models {', '.join(models)}")
    from .preflight import check_values  # every value a trial could get, by a dry build on the CPU (no Ray yet)

    check_values(space, sweep_space(space, budget, exp.overrides, exp.seed), models, exp.overrides, exp.data_dir)
    return space, models, budget


def sweep_space(space, budget: int, overrides: dict[str, Any], seed: int):
    """The space as this sweep runs it: full budget as epochs, the sweep seed and the user's overrides fixed."""
    import copy

    s = copy.deepcopy(space)
    s.fixed = {**s.fixed, "epochs": budget, "seed": seed, **overrides}
    over = set(overrides)
    s.params = tuple(p for p in s.params if p.name not in over)  # an override fixes a parameter
    for m in s.model_fixed:
        s.model_fixed[m] = {k: v for k, v in s.model_fixed[m].items() if k not in over}
    s.task_options = {k: v for k, v in s.task_options.items() if k not in over}
    return s


def resolve_storage(storage: str | None) -> str:
    """A local path (made absolute: Tune refuses relative ones) or an object-store URI such as s3://bucket/path."""
    raw = storage or "rnnsweep_results"
    if "://" in raw and not raw.startswith("file://"):
        return raw.rstrip("/")
    return str(Path(raw.removeprefix("file://")).expanduser().resolve())


def _sweep_exists(storage: str, name: str) -> bool:
    if "://" not in storage:
        return Path(storage, name).exists()
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(f"{storage}/{name}")
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at a Ray address (``ray.init`` retries for long)."""
    import socket

    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379 or ray://HOST:10001)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(f"no Ray cluster answers at {address!r} ({e.strerror or e}); start one with `ray start "
                          "--head` or `ray up cluster.yaml`, or drop --address for a local Ray") from None


def start_ray(address: str | None, num_cpus: int | None = None, num_gpus: int | None = None,
              log_to_driver: bool = True) -> bool:
    """Start a local Ray on 127.0.0.1, or join ``address``. Returns True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    for k, v in LOOPBACK_ENV.items():
        if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER":
            env[k] = os.environ.get(k, v)
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_address(address)
        runtime_env = {"working_dir": str(REPO_ROOT), "env_vars": {k: v for k, v in env.items() if k != "PYTHONPATH"},
                       "excludes": [".venv", ".git", "mlruns.db", "mlartifacts", "rnnsweep_results", "*.db",
                                    "__pycache__", "bench/results"]}
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING", log_to_driver=log_to_driver)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot join the Ray cluster at {address!r} ({str(e).splitlines()[0][:160]}); "
                              "check the address printed by `ray start --head` or drop --address") from None
        return True
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    for k, v in LOOPBACK_ENV.items():
        os.environ.setdefault(k, v)
    # ERROR: keeps Ray's start-up notices (token authentication is on, which is right) off a one-line error path
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": env}, _node_ip_address="127.0.0.1", log_to_driver=log_to_driver)
    return True


def check_local_storage(storage: str) -> None:
    """Refuse, before Ray starts, a local --storage that cannot be created or written (URIs: the preflight's job).

    Probes the nearest existing folder with a temporary file, so nothing is left behind; works for root too, for
    whom permission bits do not stop writes (a path under a regular file, /proc, a read-only mount)."""
    if "://" in storage and not storage.startswith("file://"):
        return
    p = Path(storage[len("file://"):] if storage.startswith("file://") else storage)
    probe = p
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"cannot use --storage {storage}: {probe} is not a folder; choose a writable --storage")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise ConfigError(f"cannot write to --storage {storage} ({probe}: {e.strerror or e}); choose a writable "
                          "--storage") from None


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")


def _result_rows(results, rename: dict[str, str] | None = None) -> list[dict[str, Any]]:
    from .space_adapter import to_config

    rows = []
    for r in results:
        if r.config is None:
            continue
        rows.append({"config": to_config(dict(r.config), rename), "metrics": dict(r.metrics or {}), "error": r.error is not None,
                     "checkpoint": r.checkpoint, "trial_id": (r.metrics or {}).get("trial_id"),
                     "history": r.metrics_dataframe})
    return rows


def _score(row, metric: str) -> float | None:
    v = row["metrics"].get(f"best_val_{metric}")
    return None if v is None or not math.isfinite(v) else float(v)


def _ranked(rows, metric: str, mode: str, budget: int) -> list[dict]:
    """Trials that used the full budget without diverging, best first (others cannot be compared fairly)."""
    full = [r for r in rows if not r["error"] and not r["metrics"].get(DIVERGED)
            and int(r["metrics"].get("epoch", 0)) >= budget and _score(r, metric) is not None]
    return sorted(full, key=lambda r: _score(r, metric), reverse=(mode == "max"))


def _config_key(cfg: dict) -> str:
    # None means "not applicable" (a conditional parameter, or a preset placeholder), so it is not part of identity
    return json.dumps({k: v for k, v in sorted(cfg.items()) if k != "seed" and v is not None}, sort_keys=True,
                      default=str)


def run_tuner(*, trainable_kw, param_space, search_alg, scheduler, num_samples, exp: Experiment, name: str,
              storage: str, callbacks, metric: str, mode: str):
    from ray import tune

    from .trainable import train_trial

    trainable = tune.with_resources(tune.with_parameters(train_trial, **trainable_kw),
                                    {"cpu": exp.cpus_per_trial, "gpu": exp.gpus_per_trial})
    path = os.path.join(storage, name)
    if exp.verbose < 2:  # Tune's newer reporter prints an experiment box and paths even at verbose=0
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    if exp.resume and tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True, param_space=param_space or None)
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space,
            tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                                        num_samples=num_samples,
                                        reuse_actors=False, trial_dirname_creator=lambda t: t.trial_id,
                                        trial_name_creator=lambda t: f"{t.config.get('model', 'trial')}_{t.trial_id}"),
            run_config=tune.RunConfig(
                # Tune's own status tables only with --verbose (2); the default view is search.progress's lines
                name=name, storage_path=storage, callbacks=callbacks, verbose=1 if exp.verbose >= 2 else 0,
                failure_config=tune.FailureConfig(max_failures=exp.max_failures),
                # PBT restarts trials from other trials' older checkpoints: keep them all under PBT, else the last
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None if exp.scheduler == "pbt" else 1)))
    return tuner.fit()


def run_sweep(exp: Experiment) -> dict[str, Any]:
    space, models, budget = validate(exp)
    spec_metric, spec_mode = _task_metric(space, exp.data_dir)
    metric = val_key(spec_metric)
    uri = T.resolve_uri(exp.mlflow_uri)
    T.check_reachable(uri)
    storage = resolve_storage(exp.storage)
    name = _safe_name(exp.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_space = sweep_space(space, budget, exp.overrides, exp.seed)

    if exp.resume and not _sweep_exists(storage, name):
        raise ConfigError(f"no Tune results for sweep {name!r} under {storage}; give the same --storage and --name")
    if exp.resume:
        from ray.tune import Tuner

        if not Tuner.can_restore(os.path.join(storage, name)):
            # run_tuner would start the sweep afresh in the same folder instead: every trial twice in MLflow
            raise ConfigError(f"sweep {name!r} under {storage} has no Tune experiment state to resume from (it was "
                              "stopped before Tune started it); start it again under another --name")
    if not exp.resume and _sweep_exists(storage, name):
        raise ConfigError(f"sweep {name!r} already exists under {storage}: use --resume, or another --name")
    check_local_storage(storage)
    # before any record is written: a bad --address leaves nothing behind. The workers' own log lines (Tune's
    # "Checkpoint successfully created ...") reach the terminal only with --verbose; a failed trial's reason comes
    # from its error file either way
    started = start_ray(exp.address, log_to_driver=exp.verbose >= 2)
    parent = None
    try:
        from .preflight import run_preflight

        # every node: imports, storage, tracking server and GPUs checked before the first trial
        run_preflight(storage=storage, mlflow_uri=uri, gpus_per_trial=exp.gpus_per_trial,
                      cpus_per_trial=exp.cpus_per_trial)
        c = T.client(uri)  # after the preflight: a refused sweep leaves no new sqlite store behind
        exp_id = T.ensure_experiment(c, space.task, uri)
        parent = _find_sweep_run(c, exp_id, name) if exp.resume else None
        if exp.resume and parent is None:
            raise ConfigError(f"no sweep named {name!r} to resume in the MLflow experiment {space.task!r}")
        if parent is None:
            parent = c.create_run(exp_id, run_name=name, tags={
                T.KIND: "sweep", T.SWEEP: name, T.TASK: space.task, T.TAG + "space": space.name,
                T.TAG + "paper": space.paper, T.TAG + "models": ",".join(models), T.TAG + "scheduler": exp.scheduler,
                T.TAG + "searcher": exp.searcher, T.TAG + "code_version": T.git_commit(REPO_ROOT),
                T.TAG + "metric": metric, T.TAG + "mode": spec_mode, T.STATUS: "running"}).info.run_id
            settings = {k: v for k, v in asdict(exp).items() if k not in ("overrides",)}
            settings.update({f"set.{k}": v for k, v in exp.overrides.items()})
            T.log_params(c, parent, {f"sweep.{k}": v for k, v in settings.items()})
        else:
            c.update_run(parent, status="RUNNING")

        _tag_data_checksums(c, parent, space, exp)
        rename = rename_map(run_space)
        trainable_kw = dict(data_dir=exp.data_dir, cpus_per_trial=int(max(1, exp.cpus_per_trial)),
                            gpu_memory_fraction=exp.gpu_memory_fraction, rename=rename,
                            mutable=pbt_mutable(run_space) if exp.scheduler == "pbt" else ())
        # --published-only: exactly the seed points, which every searcher runs first
        num_samples = len(seed_configs(run_space, models)) if exp.published_only else exp.num_samples
        search_alg, param_space, n_known = build_searcher(
            exp.searcher, run_space, models, metric=metric, mode=spec_mode, seed=exp.seed, full_budget=budget,
            max_concurrent=exp.max_concurrent, num_samples=num_samples)
        if exp.searcher == "grid":
            num_samples = min(num_samples, n_known)
        scheduler = build_scheduler(exp.scheduler, metric=metric, mode=spec_mode, max_t=budget,
                                    grace_period=exp.grace_period, reduction_factor=exp.reduction_factor,
                                    space=run_space, seed=exp.seed)
        cb = T.MlflowTrialCallback(uri=uri, experiment_id=exp_id, parent_run_id=parent, sweep=name, task=space.task,
                                   full_budget=budget, rename=rename)
        from .progress import callbacks as progress_callbacks

        shown = progress_callbacks(exp.verbose, metric=metric, mode=spec_mode, num_samples=num_samples, budget=budget,
                                   space=run_space, scheduler=exp.scheduler, grace_period=exp.grace_period,
                                   reduction_factor=exp.reduction_factor)
        results = run_tuner(trainable_kw=trainable_kw, param_space=param_space, search_alg=search_alg,
                            scheduler=scheduler, num_samples=num_samples, exp=exp, name=name, storage=storage,
                            callbacks=[cb, *shown], metric=metric, mode=spec_mode)
        rows = _result_rows(results, rename)
        summary = {"sweep": name, "task": space.task, "metric": metric, "mode": spec_mode, "uri": uri,
                   "parent_run_id": parent, "experiment_id": exp_id, "trials": len(rows), "best": {}}
        _plots(c, parent, rows, metric)
        if exp.confirm_top > 0:
            summary["best"] = confirm_and_tag(
                c, uri=uri, exp_id=exp_id, parent=parent, name=name, storage=storage, space=run_space, rows=rows,
                models=models, metric_name=spec_metric, mode=spec_mode, budget=budget, exp=exp,
                trainable_kw=trainable_kw)
        else:
            summary["best"] = tag_without_confirmation(c, exp_id=exp_id, parent=parent, name=name, space=run_space,
                                                       rows=rows, models=models, metric_name=spec_metric,
                                                       mode=spec_mode, budget=budget, exp=exp)
        c.set_tag(parent, T.STATUS, "completed")
        c.log_metric(parent, "trials", float(len(rows)))
        c.set_terminated(parent, "FINISHED")
        return summary
    except BaseException:
        if parent is None:
            raise
        try:
            c.set_tag(parent, T.STATUS, "interrupted")
            c.set_terminated(parent, "KILLED")
        except Exception:  # noqa: BLE001 - the store itself may be the problem; the error below says what failed
            pass
        raise
    finally:
        if started:
            import ray

            ray.shutdown()


def _task_metric(space, data_dir: str | None = None) -> tuple[str, str]:
    """(metric, mode) of the space's task, from a cheap build (small synthetic sizes where the task has them)."""
    from datasets.base import build_task, get_task

    entry = get_task(space.task)
    small = {k: v for k, v in {"n_val": 2, "n_test": 2, "n_train": 2, "updates": 1}.items() if k in entry.defaults}
    t = build_task(space.task, data_dir=data_dir, **{**space.task_options, **small})
    return t.spec.metric, t.spec.mode


def _find_sweep_run(c, exp_id: str, name: str) -> str | None:
    runs = c.search_runs([exp_id], filter_string=f"tags.`{T.SWEEP}` = '{name}' and tags.`{T.KIND}` = 'sweep'",
                         max_results=1)
    return runs[0].info.run_id if runs else None


def _tag_data_checksums(c, parent: str, space, exp: Experiment) -> None:
    try:
        from datasets.files import task_checksums
    except ImportError:
        return
    try:
        sums = task_checksums(space.task, exp.data_dir)
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - checksums are a record, not a gate
        return
    if sums:
        c.set_tag(parent, T.TAG + "data_checksums", json.dumps(sums, sort_keys=True)[:4900])


# ---- confirmation and the best tag ---------------------------------------------------------------------------------
def _mean_se(xs: list[float]) -> tuple[float, float]:
    m = statistics.fmean(xs)
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")
    return m, se


def confirm_and_tag(c, *, uri, exp_id, parent, name, storage, space, rows, models, metric_name, mode, budget,
                    exp: Experiment, trainable_kw) -> dict[str, Any]:
    from ray.tune.search import BasicVariantGenerator

    metric = val_key(metric_name)
    candidates: dict[str, list[dict]] = {}
    for m in models:
        ranked = [r for r in _ranked(rows, metric_name, mode, budget) if r["config"].get("model") == m]
        seen, top = set(), []
        for r in ranked:
            k = _config_key(r["config"])
            if k not in seen:
                seen.add(k)
                top.append(r["config"])
            if len(top) >= exp.confirm_top:
                break
        if top:
            candidates[m] = top
    if not candidates:
        print("[rnnsweep] no trial reached the full budget without diverging: nothing to confirm or tag")
        return {}
    seeds = [exp.seed + 1 + i for i in range(exp.confirm_seeds)]
    points = [{**cfg, "seed": s} for m in candidates for cfg in candidates[m] for s in seeds]
    cb = T.MlflowTrialCallback(uri=uri, experiment_id=exp_id, parent_run_id=parent, sweep=name, task=space.task,
                               full_budget=budget, kind="confirm")
    from ray.tune.schedulers import FIFOScheduler

    from .progress import callbacks as progress_callbacks

    shown = progress_callbacks(exp.verbose, metric=metric, mode=mode, num_samples=len(points), budget=budget,
                               space=space, scheduler="fifo", phase="confirm")
    results = run_tuner(trainable_kw=trainable_kw, param_space=preset_space(points),
                        search_alg=BasicVariantGenerator(points_to_evaluate=points, max_concurrent=exp.max_concurrent),
                        scheduler=FIFOScheduler(), num_samples=len(points), exp=exp, name=name + "-confirm",
                        storage=storage, callbacks=[cb, *shown], metric=metric, mode=mode)
    crow = _result_rows(results)
    best: dict[str, Any] = {}
    for m, cfgs in candidates.items():
        scored = []
        for cfg in cfgs:
            k = _config_key(cfg)
            runs = [r for r in crow if _config_key(r["config"]) == k and not r["error"]
                    and not r["metrics"].get(DIVERGED) and _score(r, metric_name) is not None]
            if len(runs) == len(seeds):
                scored.append((_mean_se([_score(r, metric_name) for r in runs]), cfg, runs))
        if not scored:
            print(f"[rnnsweep] {m}: no configuration finished all {len(seeds)} confirmation seeds; nothing tagged")
            continue
        scored.sort(key=lambda t: t[0][0], reverse=(mode == "max"))
        (mean, se), cfg, runs = scored[0]
        best[m] = _write_best(c, exp_id=exp_id, parent=parent, name=name, space=space, model=m, config=cfg,
                              runs=runs, metric_name=metric_name, mode=mode, val=(mean, se), exp=exp)
    return best


def tag_without_confirmation(c, *, exp_id, parent, name, space, rows, models, metric_name, mode, budget, exp):
    best = {}
    for m in models:
        ranked = [r for r in _ranked(rows, metric_name, mode, budget) if r["config"].get("model") == m]
        if ranked:
            r = ranked[0]
            best[m] = _write_best(c, exp_id=exp_id, parent=parent, name=name, space=space, model=m,
                                  config=r["config"], runs=[r], metric_name=metric_name, mode=mode,
                                  val=(_score(r, metric_name), float("nan")), exp=exp)
    return best


def _load_trainer_state(row) -> dict | None:
    from .trainable import read_checkpoint

    ck = row.get("checkpoint")
    if ck is None:
        return None
    with ck.as_directory() as d:
        return read_checkpoint(d, map_location="cpu")


def _write_best(c, *, exp_id, parent, name, space, model, config, runs, metric_name, mode, val, exp) -> dict:
    """Test the chosen configuration (its best-validation weights, every seed) and record the best run."""
    from .results import group_of
    from .train import Trainer

    tests, per_seed, weights = [], [], None
    for r in runs:
        st = _load_trainer_state(r)
        entry = {"seed": r["config"].get("seed"), val_key(metric_name): _score(r, metric_name)}
        if st is not None and st.get("best"):
            tr = Trainer(r["config"], data_dir=exp.data_dir, device="cpu", allow_test=True)
            tr.best = st["best"]
            t = tr.test_best()[f"test_{metric_name}"]
            tests.append(t)
            entry[f"test_{metric_name}"] = t
            if weights is None:
                weights = st["best"]["weights"]
        per_seed.append(entry)
    run = c.create_run(exp_id, run_name=f"best-{model}", tags={
        T.PARENT: parent, T.KIND: "best", T.SWEEP: name, T.TASK: space.task, T.MODEL: model, T.BEST: "true",
        T.TAG + "space": space.name, T.TAG + "metric": val_key(metric_name), T.TAG + "mode": mode,
        T.TAG + "code_version": T.git_commit(REPO_ROOT), T.STATUS: "completed",
        T.TAG + "group": group_of(space.name, space.task, config)})  # what it is comparable with
    rid = run.info.run_id
    config = {k: v for k, v in config.items() if v is not None}
    T.log_params(c, rid, {k: v for k, v in config.items() if k != "seed"})
    metrics = {f"val_{metric_name}_mean": val[0], f"val_{metric_name}_se": val[1], "seeds": float(len(runs))}
    if tests:
        tm, tse = _mean_se(tests)
        metrics.update({f"test_{metric_name}_mean": tm, f"test_{metric_name}_se": tse})
    for k, v in metrics.items():
        if v is not None and math.isfinite(v):
            c.log_metric(rid, k, float(v))
    record = {"task": space.task, "space": space.name, "model": model, "metric": val_key(metric_name), "mode": mode,
              "config": {k: v for k, v in config.items() if k != "seed"}, "seeds": per_seed,
              "val_mean": val[0], "val_se": val[1], "test_mean": metrics.get(f"test_{metric_name}_mean"),
              "test_se": metrics.get(f"test_{metric_name}_se"), "sweep": name,
              "code_version": T.git_commit(REPO_ROOT)}
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "best_config.json"
        p.write_text(json.dumps(record, indent=2, default=str))
        c.log_artifact(rid, str(p))
        if weights is not None:
            import torch

            wp = Path(d) / "weights.pt"
            torch.save(weights, wp)
            c.log_artifact(rid, str(wp))
    c.set_terminated(rid, "FINISHED")
    record["run_id"] = rid
    return record


def _plots(c, parent: str, rows, metric: str) -> None:
    """Learning curves of every trial and a parameter-vs-metric plot, as PNG artifacts of the parent run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    with tempfile.TemporaryDirectory() as d:
        fig, ax = plt.subplots(figsize=(7, 4))
        for r in rows:
            h = r.get("history")
            if h is not None and metric in h and "epoch" in h:
                ax.plot(h["epoch"], h[metric], alpha=0.7, label=str(r["config"].get("model")))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title("learning curves of the sweep's trials")
        handles, labels = ax.get_legend_handles_labels()
        uniq = dict(zip(labels, handles))
        if uniq:
            ax.legend(uniq.values(), uniq.keys())
        fig.tight_layout()
        fig.savefig(Path(d) / "learning_curves.png", dpi=100)
        plt.close(fig)
        # parameter importance at a glance: each numeric parameter against the final metric
        params = sorted({k for r in rows for k, v in r["config"].items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)
                         and len({rr["config"].get(k) for rr in rows}) > 1})
        if params:
            fig, axes = plt.subplots(1, len(params), figsize=(3 * len(params), 3), squeeze=False)
            for ax, k in zip(axes[0], params):
                xs = [r["config"].get(k) for r in rows if r["metrics"].get(metric) is not None]
                ys = [r["metrics"].get(metric) for r in rows if r["metrics"].get(metric) is not None]
                ax.scatter(xs, ys, s=12)
                ax.set_xlabel(k)
                if k.startswith("lr") or k in ("Tdecay", "weight_decay", "delta"):
                    ax.set_xscale("log")
            axes[0][0].set_ylabel(metric)
            fig.tight_layout()
            fig.savefig(Path(d) / "parameters.png", dpi=100)
            plt.close(fig)
        for f in Path(d).glob("*.png"):
            c.log_artifact(parent, str(f))
