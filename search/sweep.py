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
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rnns.errors import ConfigError

from . import resources as R
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
    # narrowed or widened parameter ranges (a sweep file's [params.NAME] tables): {name: {"low", "high"} or
    # {"choices"}}; --set fixes a parameter, this changes what the searcher may sample
    ranges: dict[str, dict[str, Any]] = field(default_factory=dict)
    verbose: int = 1
    # one worker process trains trial after trial (Tune resets it with the next config): a fresh process costs
    # about 8 CPU-s of imports and set-up against about 1 CPU-s of training for a demo trial (BENCHMARKS.md).
    # Results are unchanged: every trial seeds all generators when it builds its Trainer
    # (tests/search/test_schedulers.py::test_reused_actors_give_identical_results).
    reuse_actors: bool = True
    # members per trial pack (search.pack_tune): configurations of one shape trained as one batched model in one
    # trial, each member still its own trial for the searcher, the rung table and MLflow; 1 = one per trial
    pack: int = 1
    plugins: tuple[str, ...] = ()  # plugin files (search.plugins): own cells, tasks and spaces, shipped to the trials


class Interrupted(KeyboardInterrupt):
    """The sweep was stopped by SIGINT (Ctrl-C) or SIGTERM: recorded as KILLED in MLflow, resumable with --resume."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or signal.Signals(signum).name)
        self.signum, self.message = signum, message

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class _Signals:
    """SIGINT and SIGTERM while a sweep runs. Inside Tune's loop the first one stops Tune the way its own Ctrl-C
    handler does (trials stopped, experiment state saved: what --resume needs), then :class:`Interrupted` is raised
    when the loop has returned; anywhere else (or a second signal) raises :class:`Interrupted` at once. Either way
    nothing after the interrupted stage runs: no confirmation, no test split, no best tag."""

    def __init__(self):
        self.got: list[int] = []
        self.in_tune = False
        self.old: dict[int, Any] = {}

    def install(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread; Tune does not install its own there either
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours forwards to Tune's SIGUSR1 handler instead
        for s in (signal.SIGINT, signal.SIGTERM):
            self.old[s] = signal.signal(s, self._on)

    def restore(self) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)
        if self.old:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        self.old.clear()

    def _on(self, signum, frame):
        first = not self.got
        self.got.append(signum)
        if self.in_tune and first:
            tune_handler = signal.getsignal(signal.SIGUSR1)  # Tune's "stop the run, save its state" handler
            if callable(tune_handler):
                print(f"[rnnsweep] {signal.Signals(signum).name}: stopping the trials and saving the sweep's state "
                      "(send it again to stop at once)", flush=True)
                tune_handler(signum, frame)
                return
        raise Interrupted(signum)

    def check(self) -> None:
        if self.got:
            raise Interrupted(self.got[0])


_SIGNALS: _Signals | None = None
TRACEBACKS_ENV = "RNNSWEEP_TRACEBACKS"  # =1: Tune's full traceback for every failed trial attempt on the console


class _OneLineTrialErrors:
    """A logging filter for Tune's "Trial task failed" records: one line (the exception's last line) instead of a
    traceback of 50+ lines per attempt. The full text stays in the trial's error file and its MLflow run."""

    def filter(self, record) -> bool:
        if record.exc_info and str(record.msg).startswith("Trial task failed"):
            err = record.exc_info[1]
            last = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            head = record.getMessage()
            record.msg, record.args = "%s: %s", (head, (last[-1] if last else type(err).__name__)[:300])
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_trial_errors() -> None:
    import logging

    if os.environ.get(TRACEBACKS_ENV, "") in ("", "0"):
        lg = logging.getLogger("ray.tune.execution.tune_controller")
        if not any(isinstance(f, _OneLineTrialErrors) for f in lg.filters):
            lg.addFilter(_OneLineTrialErrors())


def load_space(name: str):
    from spaces.registry import get_space

    return get_space(name)


def validate(exp: Experiment):
    """Everything that can be checked before Ray or MLflow start; returns (space, models, budget)."""
    from .plugins import load_plugins, read_plugins

    load_plugins(read_plugins(exp.plugins))  # before the space: a plugin may define it
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
    if exp.max_failures < 0:
        raise ConfigError(f"--max-failures must be >= 0 (restarts of a failed trial), got {exp.max_failures}")
    if exp.name is not None:
        check_name(exp.name)
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
    if exp.pack != 1:
        from .pack import packable
        from .pack_tune import check_pack_options

        check_pack_options(exp.pack, exp.scheduler, exp.searcher)
        bad = [m for m in models if not packable(m)]
        if bad:
            raise ConfigError(f"--pack {exp.pack}: the cell(s) {', '.join(bad)} cannot be trained in a pack yet; "
                              "sweep them with --pack 1 (or leave them out with --model)")
    from .preflight import check_values  # every value a trial could get, by a dry build on the CPU (no Ray yet)

    check_values(space, sweep_space(space, budget, exp.overrides, exp.seed, ranges=exp.ranges), models,
                 exp.overrides, exp.data_dir)
    return space, models, budget


RANGE_KEYS = {"low", "high", "choices"}


def with_ranges(space, ranges: dict[str, dict[str, Any]], overrides: dict[str, Any] = {}):  # noqa: B006
    """The space with some parameters' ranges replaced (``{"lr": {"low": 1e-4, "high": 1e-2}}``, ``{"hidden_size":
    {"choices": [64, 128]}}``): narrowed or widened, same kind; grid values and a default outside the new range
    are dropped. Checked like a space's own parameters; what the components accept is checked later, as for every
    value a space can sample (search.preflight)."""
    import copy
    import dataclasses

    if not ranges:
        return space
    s = copy.deepcopy(space)
    names = [p.name for p in s.params]
    params = list(s.params)
    for name, spec in ranges.items():
        if name not in names:
            from rnns.errors import suggest

            raise ConfigError(f"parameter {name!r} is not searched by space {s.name!r}{suggest(name, names)} "
                              f"(its parameters: {', '.join(names)})")
        if name in overrides:
            raise ConfigError(f"parameter {name!r} has a range and a fixed value (set.{name}); keep one")
        if not isinstance(spec, dict) or not spec or set(spec) - RANGE_KEYS:
            raise ConfigError(f"parameter {name!r}: a range is low and/or high, or choices, got {spec!r}")
        for i, p in enumerate(params):
            if p.name != name:
                continue
            if p.kind == "choice":
                if set(spec) != {"choices"} or not isinstance(spec["choices"], (list, tuple)):
                    raise ConfigError(f"parameter {name!r} is a choice ({p.span()}): give choices = [...]")
                new = dataclasses.replace(p, choices=tuple(spec["choices"]), grid=())
            else:
                if "choices" in spec:
                    raise ConfigError(f"parameter {name!r} is {p.span()}: give low and/or high, not choices")
                bad = [k for k, v in spec.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
                if bad:
                    raise ConfigError(f"parameter {name!r}: {bad[0]} must be a number, got {spec[bad[0]]!r}")
                new = dataclasses.replace(p, low=spec.get("low", p.low), high=spec.get("high", p.high))
                new = dataclasses.replace(new, grid=tuple(g for g in p.grid if new.contains(g)))
            if new.default is not None and not new.contains(new.default):
                new = dataclasses.replace(new, default=None)
            new.validate(s.name)
            if p.kind == "choice":  # a published configuration runs with its own values, which Optuna can only
                for sp in s.seeds:  # fix to one of the choices: keep them among the choices
                    v = s.seed_params(sp).get(name)
                    if v is not None and not new.contains(v):
                        raise ConfigError(f"parameter {name!r}: choices {list(new.choices)} leave out {v!r}, the "
                                          f"value of the published configuration {sp.name or '?'!r} (which runs "
                                          f"first, as published): keep {v!r} among the choices")
            params[i] = new
    s.params = tuple(params)
    return s


def sweep_space(space, budget: int, overrides: dict[str, Any], seed: int, *, ranges=None):
    """The space as this sweep runs it: full budget as epochs, the sweep seed and the user's overrides fixed, and
    the parameter ranges the sweep file changed (:func:`with_ranges`)."""
    import copy

    s = copy.deepcopy(with_ranges(space, ranges or {}, overrides))
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


def _has_tune_state(storage: str, name: str) -> bool:
    """Tune's experiment state (``experiment_state-*.json``) is there: ``tuner.pkl`` alone (a driver killed between
    the Tuner's creation and its first save) restores a Tuner that runs fewer trials than were asked for."""
    if "://" not in storage:
        return any(Path(storage, name).glob("experiment_state-*.json"))
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(f"{storage}/{name}")
    return any(Path(i.path).name.startswith("experiment_state-") for i in fs.get_file_info(pyarrow.fs.FileSelector(path)))


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
    from ray._private import ray_constants

    if ray_constants.ENABLE_RAY_CLUSTER and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "1":
        # Ray was imported before search/__init__.py could keep it on loopback: it would listen on every interface
        raise ConfigError("Ray was imported before rnnsweep set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, so a local Ray "
                          "would listen on every interface: import search before ray, or export the variable")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    for k, v in LOOPBACK_ENV.items():
        os.environ.setdefault(k, v)
    # ERROR: keeps Ray's start-up notices (token authentication is on, which is right) off a one-line error path
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": env}, _node_ip_address="127.0.0.1", log_to_driver=log_to_driver)
    return True


MIN_FREE_ENV = R.MIN_FREE_ENV  # set: the free space (MiB) --storage must have before a sweep starts


def check_free_space(storage: str, need: int | None = None) -> None:
    """Refuse, before Ray starts, a local --storage with less free space than the sweep's checkpoints need (``need``
    bytes, search.resources' estimate; 512 MiB without one; $RNNSWEEP_MIN_FREE_MB, when set, replaces it): a full
    disk in the middle of a sweep fails its trials one by one."""
    if "://" in storage and not storage.startswith("file://"):
        return
    if os.environ.get(MIN_FREE_ENV) is not None:
        try:
            need = int(float(os.environ[MIN_FREE_ENV]) * 2**20)
        except ValueError:
            raise ConfigError(f"${MIN_FREE_ENV} must be a number of MiB, got {os.environ[MIN_FREE_ENV]!r}") from None
    elif need is None:
        need = 512 * 2**20
    free = R.free_bytes(storage)
    if free < need:
        raise ConfigError(f"only {free / 2**20:.0f} MiB free under --storage {storage} (this sweep's checkpoints need "
                          f"about {need / 2**20:.0f} MiB; ${MIN_FREE_ENV} sets the amount): free space, lower "
                          "--concurrent or --confirm-top, or choose another --storage")


def sweep_disk_need(exp: "Experiment", space, run_space, models, budget: int) -> int | None:
    """Bytes the sweep's checkpoints can take at once (search.resources), None for an object store or when
    $RNNSWEEP_MIN_FREE_MB is set."""
    if ("://" in (exp.storage or "") and not (exp.storage or "").startswith("file://")) \
            or os.environ.get(MIN_FREE_ENV) is not None:
        return None
    n = R.largest_params(space, run_space, models, exp.data_dir)
    alive = R.checkpoints_alive(scheduler=exp.scheduler, num_samples=exp.num_samples, budget=budget,
                                concurrent=exp.max_concurrent, models=len(models),
                                confirm_top=exp.confirm_top, confirm_seeds=exp.confirm_seeds)
    return R.needed_bytes(None if n is None else R.state_bytes(n), alive)


def check_task_files(task: str, data_dir: str | None) -> None:
    """Every present data file of the task, the test split included, checked (checksum, format) before Ray starts:
    a broken test file used to be found only after the whole sweep had trained. Reading its format uses none of its
    content for any decision."""
    try:
        from datasets import files as F
        from datasets.base import resolve_data_dir

        ds = F.dataset_of(task)
    except (ImportError, KeyError):
        return
    root = resolve_data_dir(data_dir)
    if root is None or not Path(root).is_dir():
        return  # the task's own build said what is missing, or it needs no files
    root = Path(root)
    for f in ds.files:
        p = root / f.path
        if p.is_file():
            F.check_sha(root, f.path, task)
            F.format_check(p, task)


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


def claim_sweep_dir(storage: str, name: str, unique: bool) -> list[str]:
    """Create ``storage/name`` atomically (``mkdir`` fails if it exists); returns the folders this call created,
    deepest last. With ``unique`` (a default, time-based name) a taken name gets a suffix ``-2``, ``-3``, ...; an
    explicit ``--name`` that is taken is refused. Object-store URIs: nothing to claim."""
    if "://" in storage and not storage.startswith("file://"):
        return []
    root = Path(storage.removeprefix("file://"))
    made, p = [], root
    missing = []
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
            made.append(str(d))
        except FileExistsError:
            pass
    for i in range(1, 1000):
        d = root / (name if i == 1 else f"{name}-{i}")
        try:
            d.mkdir()
            return made + [str(d)]
        except FileExistsError:
            if not unique:
                _remove_empty(made)
                raise ConfigError(f"sweep {name!r} already exists under {storage} (or another sweep is starting "
                                  "under that name now): use --resume, or another --name") from None
    _remove_empty(made)
    raise ConfigError(f"no free sweep name {name}-N under {storage}: give --name")


def _remove_empty(folders: list[str]) -> None:
    for d in reversed(folders):
        try:
            os.rmdir(d)  # only if empty
        except OSError:
            pass


def check_name(name: str) -> None:
    """A sweep name is one folder name under --storage: no path (``..`` wrote into the parent of the storage, ``.``
    into its root, ``///`` became an empty name)."""
    if not name or name.strip(". ") == "" or "/" in name or "\\" in name or name.startswith((".", "-", "~")) \
            or not _safe_name(name) or len(name) > 200:
        raise ConfigError(f"--name {name!r} is not a sweep name: use letters, digits, '_', '-' and '.' (not first), "
                          "without '/'")


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")


def _result_rows(results, rename: dict[str, str] | None = None) -> list[dict[str, Any]]:
    from .space_adapter import to_config

    from .pack_tune import member_rows

    rows = []
    for r in results:
        if r.config is None:
            continue
        members = member_rows(r, rename)
        if members is not None:  # a trial pack: one row per member, as if each had been its own trial
            rows.extend(members)
            continue
        rows.append({"config": to_config(dict(r.config), rename), "metrics": dict(r.metrics or {}), "error": r.error is not None,
                     "checkpoint": r.checkpoint, "trial_id": (r.metrics or {}).get("trial_id"),
                     "history": r.metrics_dataframe})
    return rows


def trial_counts(rows, requested: int) -> dict[str, int]:
    """Trials finished (reported at least one epoch, without error or divergence; stopped early included), failed
    (error after the retries), diverged, and incomplete (neither: not run, or run without a result) of ``requested``."""
    failed = sum(1 for r in rows if r["error"])
    diverged = sum(1 for r in rows if not r["error"] and r["metrics"].get(DIVERGED))
    finished = sum(1 for r in rows if not r["error"] and not r["metrics"].get(DIVERGED)
                   and int(r["metrics"].get("epoch", 0) or 0) >= 1)
    done = failed + diverged + finished
    return {"requested": requested, "finished": finished, "failed": failed, "diverged": diverged,
            "incomplete": max(requested, len(rows)) - done}


def summary_line(summary: dict[str, Any]) -> str | None:
    """One line for a sweep that did not give a usable result (no trial finished, or trials missing), else None."""
    n = summary.get("counts")
    if not n or (n["finished"] and not n["incomplete"]):
        return None
    why = "no trial finished" if not n["finished"] else f"{n['incomplete']} trial(s) did not run to an end"
    return (f"sweep {summary['sweep']} failed ({why}): {n['finished']} finished, {n['failed']} failed, "
            f"{n['diverged']} diverged, {n['incomplete']} incomplete of {n['requested']} requested; each failed "
            f"trial's reason is its MLflow run's tag rnnsweep.failure_reason")


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
              storage: str, callbacks, metric: str, mode: str, packed: bool = False):
    from ray import tune

    from .pack_tune import train_pack
    from .trainable import train_trial

    fn = train_pack if packed else train_trial
    trainable = tune.with_resources(tune.with_parameters(fn, **trainable_kw),
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
                                        reuse_actors=exp.reuse_actors, trial_dirname_creator=lambda t: t.trial_id,
                                        trial_name_creator=lambda t: f"{t.config.get('model', 'trial')}_{t.trial_id}"),
            run_config=tune.RunConfig(
                # Tune's own status tables only with --verbose (2); the default view is search.progress's lines
                name=name, storage_path=storage, callbacks=callbacks, verbose=1 if exp.verbose >= 2 else 0,
                failure_config=tune.FailureConfig(max_failures=exp.max_failures),
                # PBT restarts trials from other trials' older checkpoints: keep them all under PBT, else the last
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None if exp.scheduler == "pbt" else 1)))
    _quiet_trial_errors()
    sig = _SIGNALS
    if sig is not None:
        sig.check()
        sig.in_tune = True
    try:
        results = tuner.fit()
    finally:
        if sig is not None:
            sig.in_tune = False
    if sig is not None:
        sig.check()  # Tune returned because of a signal: the sweep ends here, as interrupted
    return results


def run_sweep(exp: Experiment) -> dict[str, Any]:
    space, models, budget = validate(exp)
    spec_metric, spec_mode = _task_metric(space, exp.data_dir)
    metric = val_key(spec_metric)
    uri = T.resolve_uri(exp.mlflow_uri)
    T.check_reachable(uri)
    storage = resolve_storage(exp.storage)
    name = _safe_name(exp.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_space = sweep_space(space, budget, exp.overrides, exp.seed, ranges=exp.ranges)

    if exp.resume and not _sweep_exists(storage, name):
        raise ConfigError(f"no Tune results for sweep {name!r} under {storage}; give the same --storage and --name")
    if exp.resume:
        from ray.tune import Tuner

        if not Tuner.can_restore(os.path.join(storage, name)) or not _has_tune_state(storage, name):
            # run_tuner would start the sweep afresh in the same folder instead: every trial twice in MLflow
            raise ConfigError(f"sweep {name!r} under {storage} has no Tune experiment state to resume from (it was "
                              "stopped before Tune started it); start it again under another --name")
    if not exp.resume and _sweep_exists(storage, name):
        raise ConfigError(f"sweep {name!r} already exists under {storage}: use --resume, or another --name")
    if exp.resume:
        replay_left_spool(storage, name, uri)
    for line in spool_notices(storage, name):  # other sweeps' journals: said, not replayed (their driver may run)
        print(line, flush=True)
    check_local_storage(storage)
    check_free_space(storage, sweep_disk_need(exp, space, run_space, models, budget))
    check_task_files(space.task, exp.data_dir)
    # the sweep's folder, claimed atomically: two sweeps started at once with one --name never share it
    made = [] if exp.resume else claim_sweep_dir(storage, name, unique=not exp.name)
    if made:
        name = Path(made[-1]).name
    try:
        # before any record is written: a bad --address leaves nothing behind. The workers' own log lines (Tune's
        # "Checkpoint successfully created ...") reach the terminal only with --verbose; a failed trial's reason
        # comes from its error file either way
        started = start_ray(exp.address, log_to_driver=exp.verbose >= 2)
    except BaseException:
        _remove_empty(made)
        raise
    parent = None
    global _SIGNALS
    _SIGNALS = _Signals()
    _SIGNALS.install()  # after ray.init, which installs its own SIGTERM handler (an abort with a C stack dump)
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
            settings["mlflow_uri"] = T.redact(uri)  # never a password in the record
            settings.update({f"set.{k}": v for k, v in exp.overrides.items()})
            T.log_params(c, parent, {f"sweep.{k}": v for k, v in settings.items()})
            base = _baseline(run_space, exp.data_dir, spec_metric)
            if base is not None:
                c.log_metric(parent, f"trivial_baseline_{spec_metric}", base)
            from .sweepfile import to_toml  # the resolved configuration: `sweep --config sweep.toml` re-runs it

            c.log_text(parent, to_toml(exp), "sweep.toml")
        else:
            c.update_run(parent, status="RUNNING")

        _tag_data_checksums(c, parent, space, exp)
        from .plugins import read_plugins, record

        plugins = read_plugins(exp.plugins)
        if not exp.resume:
            record(c, parent, plugins)
        rename = rename_map(run_space)
        trainable_kw = dict(data_dir=exp.data_dir, cpus_per_trial=int(max(1, exp.cpus_per_trial)), plugins=plugins,
                            gpu_memory_fraction=exp.gpu_memory_fraction, rename=rename,
                            mutable=pbt_mutable(run_space) if exp.scheduler == "pbt" else ())
        # --published-only: exactly the seed points, which every searcher runs first
        num_samples = len(seed_configs(run_space, models)) if exp.published_only else exp.num_samples
        search_alg, param_space, n_known = build_searcher(
            exp.searcher, run_space, models, metric=metric, mode=spec_mode, seed=exp.seed, full_budget=budget,
            max_concurrent=exp.max_concurrent, num_samples=num_samples, pack=exp.pack, rename=rename)
        if exp.searcher == "grid":
            num_samples = min(num_samples, n_known)
        tune_samples, run_kw, rungs = num_samples, trainable_kw, None
        if exp.pack > 1:
            # members are stopped one by one by ASHA's rule (a rung table shared by the packs); Tune itself runs
            # the packs first-in first-out, each until its last member ends
            from .pack_tune import rungs_actor_name, start_rungs

            scheduler = build_scheduler("fifo", metric=metric, mode=spec_mode, max_t=budget)
            if exp.scheduler == "asha":
                rungs = start_rungs(name, mode=spec_mode, max_t=budget, grace_period=exp.grace_period,
                                    reduction_factor=exp.reduction_factor)
                run_kw = {**trainable_kw, "rungs": rungs_actor_name(name)}
            if exp.searcher in ("random", "grid"):
                tune_samples = search_alg.rnnsweep_trials  # the points, grouped into packs
        else:
            scheduler = build_scheduler(exp.scheduler, metric=metric, mode=spec_mode, max_t=budget,
                                        grace_period=exp.grace_period, reduction_factor=exp.reduction_factor,
                                        space=run_space, seed=exp.seed)
        # writes the tracking server cannot take wait in the sweep's folder (they survive the driver)
        T.set_spool(Path(storage, name, T.SPOOL_NAME) if "://" not in storage else None)
        cb = T.MlflowTrialCallback(uri=uri, experiment_id=exp_id, parent_run_id=parent, sweep=name, task=space.task,
                                   full_budget=budget, rename=rename, **_naming(run_space, models))
        # finished trials keep their checkpoints only while they may be read (search.resources); PBT keeps all
        pruner = [] if exp.scheduler == "pbt" or "://" in storage else [
            R.CheckpointPruner(metric_name=spec_metric, mode=spec_mode, budget=budget, rename=rename)]
        from .progress import callbacks as progress_callbacks

        shown = progress_callbacks(exp.verbose, metric=metric, mode=spec_mode, num_samples=num_samples, budget=budget,
                                   space=run_space, scheduler=exp.scheduler, grace_period=exp.grace_period,
                                   reduction_factor=exp.reduction_factor)
        results = run_tuner(trainable_kw=run_kw, param_space=param_space, search_alg=search_alg,
                            scheduler=scheduler, num_samples=tune_samples, exp=exp, name=name, storage=storage,
                            callbacks=[cb, *shown, *pruner], metric=metric, mode=spec_mode, packed=exp.pack > 1)
        del rungs  # the rung table lives while Tune runs (a named actor dies with its last handle)
        rows = _result_rows(results, rename)
        summary = {"sweep": name, "task": space.task, "metric": metric, "mode": spec_mode, "uri": uri,
                   "parent_run_id": parent, "experiment_id": exp_id, "trials": len(rows), "best": {}}
        summary["optuna_study"] = _export_study(c, parent, exp, search_alg, storage, name, writer=cb.w)
        summary["counts"] = counts = trial_counts(rows, num_samples)
        if cb.w.spooled:  # the tracking server did not come back: the sweep's own end goes to the journal too
            raise _end_spooled(cb.w, parent, counts, len(rows), uri, exp)
        for k, v in counts.items():
            c.log_metric(parent, f"trials_{k}", float(v))
        _plots(c, parent, rows, metric, budget, spec_mode)
        if counts["finished"] == 0:
            # nothing to confirm, tag or test: the sweep failed (the CLI says so in one line and exits 1)
            c.set_tag(parent, T.STATUS, "failed")
            c.log_metric(parent, "trials", float(len(rows)))
            c.set_terminated(parent, "FAILED")
            return summary
        if exp.confirm_top > 0:
            summary["best"] = confirm_and_tag(
                c, uri=uri, exp_id=exp_id, parent=parent, name=name, storage=storage, space=run_space, rows=rows,
                models=models, metric_name=spec_metric, mode=spec_mode, budget=budget, exp=exp,
                trainable_kw=trainable_kw)
        else:
            summary["best"] = tag_without_confirmation(c, exp_id=exp_id, parent=parent, name=name, space=run_space,
                                                       rows=rows, models=models, metric_name=spec_metric,
                                                       mode=spec_mode, budget=budget, exp=exp)
        _log_best_on_parent(c, parent, summary["best"], spec_metric, spec_mode)
        c.set_tag(parent, T.STATUS, "completed")
        c.log_metric(parent, "trials", float(len(rows)))
        c.set_terminated(parent, "FINISHED")
        return summary
    except BaseException as e:
        if isinstance(e, Interrupted):
            e.message = (f"interrupted ({signal.Signals(e.signum).name}): sweep {name!r} recorded as KILLED; "
                         f"continue it with the same command and --resume --name {name}"
                         + (f" --storage {exp.storage}" if exp.storage else ""))
        if parent is None or isinstance(e, T.TrackingSpooled):
            raise
        lost = T.is_tracking_failure(uri, e)
        try:
            if _SIGNALS is not None:
                _SIGNALS.restore()  # the records below are written whatever signal comes next
            if not lost:
                with T._quick_http():
                    if "cb" in locals():
                        cb.w.flush(wait=10.0)  # results already queued are written before the runs are closed
                    if "search_alg" in locals() and "summary" not in locals():  # stopped during the search
                        _export_study(c, parent, exp, search_alg, storage, name)
                    c.set_tag(parent, T.STATUS, "interrupted")
                    _close_children(c, exp_id, parent)
                    c.set_terminated(parent, "KILLED")
        except Exception:  # noqa: BLE001 - the store itself may be the problem; the error below says what failed
            pass
        if lost:
            spool = Path(storage, name, T.SPOOL_NAME)
            raise T.TrackingLost(
                f"the MLflow tracking server {T.redact(uri)} stopped answering ({type(e).__name__}); the sweep's "
                f"record there is incomplete (runs may stay RUNNING); the trial results are in Tune's folder "
                f"{storage}/{name}" + (f"; writes are spooled in {spool}: run `python run_search.py replay "
                                       f"{spool}` once it answers" if spool.is_file() else "")) from None
        raise
    finally:
        T.set_spool(None)
        _remove_empty(made)  # a sweep that failed before Tune wrote anything leaves no empty folders behind
        if _SIGNALS is not None:
            _SIGNALS.restore()
            _SIGNALS = None
        if started:
            import ray

            ray.shutdown()


def replay_left_spool(storage: str, name: str, uri: str) -> int:
    """``--resume``: the writes the previous driver spooled while its tracking server was away (search.tracking's
    journal in the sweep's folder), made first and in order, before anything else is written; the number made."""
    journal = Path(storage, name, T.SPOOL_NAME)
    if "://" in storage or not journal.is_file():
        return 0
    n, _ = T.replay(journal, uri)
    journal.replace(journal.with_name(journal.name + ".replayed"))
    print(f"[rnnsweep] {n} MLflow write(s) spooled by the previous run of sweep {name!r} are now made", flush=True)
    return n


def spool_notices(storage: str, name: str) -> list[str]:
    """One line per journal other sweeps under ``storage`` left unreplayed (not replayed here: a sweep still running
    writes its own journal when its server answers, and two writers of one journal could both create a run)."""
    if "://" in storage or not Path(storage).is_dir():
        return []
    out = []
    for j in sorted(Path(storage).glob(f"*/{T.SPOOL_NAME}")):
        if j.parent.name != name:
            out.append(f"[rnnsweep] sweep {j.parent.name!r} has MLflow writes waiting in {j}: once its tracking server "
                       f"answers (and that sweep has ended), run `python run_search.py replay {j}`")
    return out


def _end_spooled(w, parent: str, counts: dict[str, int], n: int, uri: str, exp: Experiment) -> T.TrackingSpooled:
    """The search stage ended while its tracking server was away: the parent run's end (trial counts, status) joins
    the journal; no confirmation stage or best run (they read and write the record). The one line to print."""
    status = "completed" if counts["finished"] else "failed"

    def op():
        c = w.c
        for k, v in counts.items():
            c.log_metric(parent, f"trials_{k}", float(v))
        c.log_metric(parent, "trials", float(n))
        c.set_tag(parent, T.TAG + "confirmation", "not run: the tracking server stopped answering")
        c.set_tag(parent, T.STATUS, status)
        c.set_terminated(parent, "FINISHED" if counts["finished"] else "FAILED")

    w.do(op)
    how = f"{'rnnsweep' if Path(sys.argv[0]).name == 'rnnsweep' else 'python run_search.py'} replay {w.spool}"
    if w.spooled:
        return T.TrackingSpooled(
            f"the MLflow tracking server {T.redact(uri)} stopped answering: the trials finished ({counts['finished']} "
            f"finished), {w.spooled} MLflow write(s) are spooled in {w.spool}; once the server answers, run `{how}` "
            "(the confirmation stage and the best runs were not made)")
    return T.TrackingSpooled(f"the MLflow tracking server {T.redact(uri)} answered again only after the search stage: "
                             "every trial is recorded, but the confirmation stage and the best runs were not made")


def _naming(space, models) -> dict[str, Any]:
    """What the trial callback needs to name runs: the searched keys, and each published configuration (its model
    and searched values) to recognise its trial."""
    keys = tuple(dict.fromkeys(p.config_key for p in space.params))
    seeds = [(nm, {k: cfg[k] for k in ("model", *keys) if k in cfg}) for cfg, _src, nm in seed_configs(space, models)]
    return {"name_keys": keys, "seed_points": [(nm or "seed", v) for nm, v in seeds]}


def _baseline(space, data_dir: str | None, metric_name: str) -> float | None:
    """The task's trivial baseline on the selection metric (datasets.baselines), or None."""
    try:
        from datasets.baselines import trivial_baseline

        # the sweep's space: overridden task options are in .fixed (keys that are not task options are ignored)
        b = trivial_baseline(space.task, {**space.task_options, **space.fixed}, data_dir)
    except Exception:  # noqa: BLE001 - a record beside the metric, never a reason to fail
        return None
    return float(b.value) if b is not None and b.metric == metric_name and math.isfinite(b.value) else None


def _log_best_on_parent(c, parent: str, best: dict[str, Any], metric_name: str, mode: str) -> None:
    """The sweep's best result on its parent run, under the trials' metric name (``best_val_<metric>``: one column
    ranks trials, confirmation runs, best runs and sweeps), with the model it belongs to."""
    vals = [(r["val_mean"], m) for m, r in best.items() if r.get("val_mean") is not None
            and math.isfinite(r["val_mean"])]
    if not vals:
        return
    v, m = (min if mode == "min" else max)(vals)
    c.log_metric(parent, f"best_{val_key(metric_name)}", float(v))
    c.set_tag(parent, T.TAG + "best_model", m)


OPTUNA_STUDY = T.TAG + "optuna_study"  # parent-run tag: the sqlite URL of the exported Optuna study


def _export_study(c, parent: str, exp: Experiment, search_alg, storage: str, name: str, writer=None) -> str | None:
    """The Optuna study (tpe, cmaes) copied to ``<storage>/<name>/optuna.db`` (search.study), its URL tagged on the
    parent run (through ``writer``, a RunWriter, when given: spooled if the tracking server is away). Local --storage
    only; a failed export is one line, never a failed sweep."""
    if exp.searcher not in ("tpe", "cmaes") or ("://" in storage and not storage.startswith("file://")):
        return None
    from .study import export_study

    try:
        url = export_study(search_alg, Path(storage.removeprefix("file://"), name), name)
    except Exception as e:  # noqa: BLE001 - the study is a convenience copy; the record is MLflow's
        print(f"[rnnsweep] the Optuna study was not exported ({type(e).__name__}: {str(e)[:200]})", flush=True)
        return None
    if url:
        def op(cl=c):
            cl = writer.c if writer is not None else cl
            cl.set_tag(parent, OPTUNA_STUDY, url)
            cl.set_tag(parent, OPTUNA_STUDY + "_name", name)

        writer.do(op) if writer is not None else op()
    return url


def _task_metric(space, data_dir: str | None = None) -> tuple[str, str]:
    """(metric, mode) of the space's task, from a cheap build (small synthetic sizes where the task has them)."""
    from datasets.base import build_task, get_task

    from .preflight import built_spec

    spec = built_spec(space.task, data_dir)  # the preflight's build (validate), when it made one
    if spec is not None:
        return spec.metric, spec.mode
    entry = get_task(space.task)
    small = {k: v for k, v in {"n_val": 2, "n_test": 2, "n_train": 2, "updates": 1}.items() if k in entry.defaults}
    t = build_task(space.task, data_dir=data_dir, **{**space.task_options, **small})
    return t.spec.metric, t.spec.mode


def _close_children(c, exp_id: str, parent: str) -> None:
    """Every child run of the sweep still RUNNING (trials Tune stopped, confirmation runs) ends KILLED, tagged
    interrupted; a resumed trial finds its run again and reopens it."""
    runs = c.search_runs([exp_id], filter_string=f"tags.`{T.PARENT}` = '{parent}' and attributes.status = 'RUNNING'",
                         max_results=10000)
    for r in runs:
        c.set_tag(r.info.run_id, T.STATUS, "interrupted")
        c.set_terminated(r.info.run_id, "KILLED")


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
                               full_budget=budget, kind="confirm", **_naming(space, models))
    from ray.tune.schedulers import FIFOScheduler

    from .progress import callbacks as progress_callbacks

    shown = progress_callbacks(exp.verbose, metric=metric, mode=mode, num_samples=len(points), budget=budget,
                               space=space, scheduler="fifo", phase="confirm")
    tune_points = points
    if exp.pack > 1:  # the candidates' seeds share shapes: they train as packs too
        from .pack_tune import group_points

        tune_points = group_points(points, exp.pack)
    results = run_tuner(trainable_kw=trainable_kw, param_space=preset_space(tune_points),
                        search_alg=BasicVariantGenerator(points_to_evaluate=tune_points,
                                                         max_concurrent=exp.max_concurrent),
                        scheduler=FIFOScheduler(), num_samples=len(tune_points), exp=exp, name=name + "-confirm",
                        storage=storage, callbacks=[cb, *shown], metric=metric, mode=mode, packed=exp.pack > 1)
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
        if row.get("member"):  # a member of a trial pack: its own trainer state inside the pack's checkpoint
            from .pack_tune import member_checkpoint_dir

            return read_checkpoint(member_checkpoint_dir(d, row["member"]), map_location="cpu")
        return read_checkpoint(d, map_location="cpu")


def _write_best(c, *, exp_id, parent, name, space, model, config, runs, metric_name, mode, val, exp) -> dict:
    """Test the chosen configuration (its best-validation weights, every seed) and record the best run."""
    from .results import group_of
    from .train import Trainer

    tests, per_seed, weights, best_model = [], [], None, None
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
                best_model = tr.model  # holds these best-validation weights (test_best loaded them)
        per_seed.append(entry)
    run = c.create_run(exp_id, run_name=f"best-{model}", tags={
        T.PARENT: parent, T.KIND: "best", T.SWEEP: name, T.TASK: space.task, T.MODEL: model, T.BEST: "true",
        T.TAG + "space": space.name, T.TAG + "metric": val_key(metric_name), T.TAG + "mode": mode,
        T.TAG + "code_version": T.git_commit(REPO_ROOT), T.STATUS: "completed",
        T.TAG + "group": group_of(space.name, space.task, config)})  # what it is comparable with
    rid = run.info.run_id
    config = {k: v for k, v in config.items() if v is not None}
    T.log_params(c, rid, {k: v for k, v in config.items() if k != "seed"})
    # best_val_<metric>: the trials' name for the selection metric (here the mean over seeds), so that one column
    # ranks every run; trivial_baseline_<metric> beside it
    metrics = {f"val_{metric_name}_mean": val[0], f"val_{metric_name}_se": val[1], "seeds": float(len(runs)),
               f"best_val_{metric_name}": val[0]}
    base = _baseline(space, exp.data_dir, metric_name)
    if base is not None:
        metrics[f"trivial_baseline_{metric_name}"] = base
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
              "code_version": T.git_commit(REPO_ROOT),
              # trained as a member of a trial pack (vmapped step loops): reproduce trains it the same way
              "packed": any(bool(r.get("member")) for r in runs)}
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "best_config.json"
        p.write_text(json.dumps(record, indent=2, default=str))
        c.log_artifact(rid, str(p))
        if weights is not None:
            import torch

            wp = Path(d) / "weights.pt"
            torch.save(weights, wp)
            c.log_artifact(rid, str(wp))
        if best_model is not None:
            _log_torch_model(c, rid, best_model, Path(d) / "model")
    c.set_terminated(rid, "FINISHED")
    record["run_id"] = rid
    return record


def learning_curve_figure(rows, metric: str, *, budget: int | None = None, mode: str = "min"):
    """Every trial's validation curve: one colour per model (the legend's), the best full-budget trial drawn thick
    and labelled, a log scale where the values span a decade or more. Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    models = sorted({str(r["config"].get("model")) for r in rows})
    colour = {m: f"C{i % 10}" for i, m in enumerate(models)}
    best = None
    if budget is not None:
        ranked = _ranked(rows, metric.removeprefix("val_"), mode, budget)
        best = ranked[0] if ranked else None
    values = []
    for r in rows:
        h = r.get("history")
        if h is None or metric not in h or "epoch" not in h:
            continue
        ys = [float(v) for v in h[metric]]
        values += [v for v in ys if math.isfinite(v) and v > 0]
        m = str(r["config"].get("model"))
        if r is best:
            continue  # drawn last, on top
        ax.plot(list(h["epoch"]), ys, color=colour[m], alpha=0.55, linewidth=1.2, label=m)
    if best is not None and best.get("history") is not None and metric in best["history"]:
        h, m = best["history"], str(best["config"].get("model"))
        ax.plot(list(h["epoch"]), list(h[metric]), color=colour[m], linewidth=3, marker="o",
                label=f"best: {m} ({_score(best, metric.removeprefix('val_')):.4g})")
    if values and min(values) > 0 and max(values) / min(values) >= 10:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title("learning curves of the sweep's trials")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))  # one entry per model (each with its model's colour), and the best trial
    if uniq:
        ax.legend(uniq.values(), uniq.keys(), loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def _log_torch_model(c, run_id: str, model, path: Path) -> None:
    """The best weights as an MLflow PyTorch model (artifact ``model``): ``mlflow.pytorch.load_model(
    "runs:/<run_id>/model")`` gives the trained module back (with this repository importable: the cells are its
    classes). The requirement is pinned here, so MLflow infers nothing (no subprocess, no network)."""
    try:
        import mlflow.pytorch
        import torch

        import logging

        # pickle: the recurrent modules carry state and Python control flow that torch.export (pt2) cannot trace;
        # MLflow's warning about pickle (a file of our own run, loaded by its owner) is kept off the sweep's output
        lg = logging.getLogger("mlflow.pytorch")
        level = lg.level
        lg.setLevel(logging.ERROR)
        try:
            mlflow.pytorch.save_model(model.cpu().eval(), str(path), serialization_format="pickle",
                                      pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
        finally:
            lg.setLevel(level)
        c.log_artifacts(run_id, str(path), "model")
        c.set_tag(run_id, T.TAG + "model_uri", f"runs:/{run_id}/model")
    except Exception as e:  # noqa: BLE001 - weights.pt is logged already; say why the MLflow model is not
        print(f"[rnnsweep] the best weights were not logged as an MLflow PyTorch model ({type(e).__name__}: "
              f"{str(e)[:200]}); weights.pt holds them", flush=True)


def _plots(c, parent: str, rows, metric: str, budget: int | None = None, mode: str = "min") -> None:
    """Learning curves of every trial and a parameter-vs-metric plot, as PNG artifacts of the parent run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    with tempfile.TemporaryDirectory() as d:
        fig = learning_curve_figure(rows, metric, budget=budget, mode=mode)
        fig.savefig(Path(d) / "learning_curves.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        # each numeric parameter against the final metric, full-budget trials only (a trial stopped at epoch 1
        # is not comparable with one trained to the end), one colour per model
        full = [r for r in rows if r["metrics"].get(metric) is not None and not r["error"]
                and not r["metrics"].get(DIVERGED)
                and (budget is None or int(r["metrics"].get("epoch", 0) or 0) >= budget)]
        params = sorted({k for r in full for k, v in r["config"].items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)
                         and len({rr["config"].get(k) for rr in full}) > 1})
        if params:
            models = sorted({str(r["config"].get("model")) for r in full})
            fig, axes = plt.subplots(1, len(params), figsize=(3 * len(params), 3), squeeze=False)
            for ax, k in zip(axes[0], params):
                for i, m in enumerate(models):
                    pts = [(r["config"].get(k), r["metrics"][metric]) for r in full
                           if str(r["config"].get("model")) == m and r["config"].get(k) is not None]
                    if pts:
                        ax.scatter(*zip(*pts), s=14, color=f"C{i % 10}", label=m)
                ax.set_xlabel(k)
                if k.startswith("lr") or k in ("Tdecay", "weight_decay", "delta"):
                    ax.set_xscale("log")
            axes[0][0].set_ylabel(f"{metric} (full budget)")
            axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
            fig.tight_layout()
            fig.savefig(Path(d) / "parameters.png", dpi=100, bbox_inches="tight")
            plt.close(fig)
        for f in Path(d).glob("*.png"):
            c.log_artifact(parent, str(f))
