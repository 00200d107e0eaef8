"""MLflow as the record of every sweep.

Layout: one experiment per task; one parent run per sweep; one child run per trial (all parameters, per-epoch
metrics, status, budget used); confirmation runs (the top configurations re-run with several seeds) and one
``best`` run per (task, model) whose configuration, weights and curves are artifacts.

All writes come from the driver through :class:`MlflowTrialCallback` (a Tune callback), in batches, so that trials
need no MLflow connection and a resumed trial finds its existing run (matched by the Tune trial id) instead of
opening a second one. A write that fails (tracking server briefly unreachable) is queued and retried on the next
event and at the end of the sweep; nothing is dropped silently. While the server is down, the queue waits without
blocking Tune: the MLflow client's own retries (about four minutes per request by default) are cut to a few seconds
for these writes, and the queue is retried only once ``/health`` answers again.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

from rnns.errors import ConfigError

TAG = "rnnsweep."
KIND, SWEEP, TRIAL_ID, MODEL, STATUS, BEST, TASK = (TAG + k for k in ("kind", "sweep", "trial_id", "model", "status",
                                                                    "best", "task"))
SEED_POINT = TAG + "seed_point"  # a trial that runs a paper's published configuration: its name
PARENT = "mlflow.parentRunId"
RUN_NAME = "mlflow.runName"

STATUS_COMPLETED, STATUS_STOPPED, STATUS_DIVERGED, STATUS_FAILED = "completed", "stopped_early", "diverged", "failed"

DEFAULT_URI = "sqlite:///mlruns.db"


def resolve_uri(uri: str | None) -> str:
    """--mlflow-uri, else $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db in the working directory (absolute)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri[len("sqlite:///"):]).resolve())
    return uri


def redact(uri: str) -> str:
    """The URI with any password replaced by ``***`` (``http://user:***@host``), for messages and records."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", str(uri))


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite_store(path: Path) -> None:
    """An existing sqlite store must be a readable SQLite database (MLflow answered a directory, a truncated or a
    damaged file with 76-182 lines of SQLAlchemy); an absent or empty file is a new store."""
    if path.is_dir():
        raise ConfigError(f"the MLflow store {path} is a folder, not a database file: give --mlflow-uri "
                          "sqlite:///PATH/mlruns.db")
    if not path.exists() or path.stat().st_size == 0:
        return
    import sqlite3

    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head != SQLITE_MAGIC:
            raise sqlite3.DatabaseError("file is not a database")
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            ok = con.execute("PRAGMA quick_check(1)").fetchone()
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
        if not ok or ok[0] != "ok":
            raise sqlite3.DatabaseError(str(ok[0] if ok else "no answer")[:200])
    except (sqlite3.Error, OSError) as e:
        raise ConfigError(f"the MLflow store {path} is not a readable SQLite database ({e}): restore it from a "
                          "backup, or give another --mlflow-uri") from None
    if tables and "alembic_version" not in tables:
        # another program's database: MLflow would add its tables to it, then fail on the ones it finds
        raise ConfigError(f"the MLflow store {path} is an SQLite database of something else (tables "
                          f"{', '.join(sorted(tables)[:5])}): give another --mlflow-uri")


class TrackingLost(RuntimeError):
    """The tracking server stopped answering for good during a sweep: one line, exit status 1 (not a traceback)."""
    one_line = True
    exit_status = 1


def server_answers(uri: str, timeout: float = 2.0) -> bool:
    if not uri.startswith(("http://", "https://")):
        return True
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001 - any failure means: not answering
        return False


def is_tracking_failure(uri: str, e: BaseException) -> bool:
    """``e`` came from the MLflow client while its server does not answer."""
    if not uri.startswith(("http://", "https://")) or not isinstance(e, Exception) or isinstance(e, ConfigError):
        return False
    from mlflow.exceptions import MlflowException

    try:
        import requests

        net = (requests.exceptions.RequestException, OSError)
    except ImportError:
        net = (OSError,)
    return isinstance(e, (MlflowException, *net)) and not server_answers(uri)


def artifact_root(uri: str) -> str | None:
    """Artifacts beside an embedded sqlite store (./mlartifacts); a server chooses its own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    return None


@contextlib.contextmanager
def store_lock(uri: str):
    """For a sqlite store: an exclusive lock (fcntl.flock on the database's folder, so no lock file is left behind)
    while the store is created. MLflow creates and migrates the schema without a lock of its own: two sweeps started
    together in a new folder failed with alembic errors or ``table ... already exists``."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    fd = os.open(Path(uri[len("sqlite:///"):]).parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def client(uri: str):
    from mlflow.tracking import MlflowClient

    with store_lock(uri):
        c = MlflowClient(tracking_uri=uri)
        if uri.startswith("sqlite:///"):
            try:
                c._tracking_client.store  # noqa: B018 - creates (or migrates) the schema now, under the lock
            except Exception as e:  # noqa: BLE001 - SQLAlchemy/alembic: dozens of lines for one cause
                why = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
                raise ConfigError(f"cannot open the MLflow store {redact(uri)} ({type(e).__name__}: {why[:200]}): "
                                  "give another --mlflow-uri") from None
    return c


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast, before any trial, when the tracking store cannot be reached."""
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
                if r.status != 200:
                    raise ConfigError(f"MLflow tracking server {redact(uri)} answered {r.status} on /health")
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise ConfigError(f"MLflow tracking server {redact(uri)} is unreachable ({getattr(e, 'reason', e)}); "
                              "start one (see docs/cluster.md) or drop --mlflow-uri for the local sqlite store") from None
    elif uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        parent = path.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigError(f"cannot write the MLflow store in {parent}: choose a writable --mlflow-uri")
        check_sqlite_store(path)
    elif uri.startswith("file:") or "://" not in uri:
        # MLflow 3 keeps its file store in maintenance mode: it refuses new runs with a traceback
        raise ConfigError(f"tracking URI {redact(uri)!r} is an MLflow file store, which MLflow 3 no longer writes: "
                          "use sqlite:///PATH/mlruns.db (the default) or http(s)://HOST:PORT")
    else:
        raise ConfigError(f"unsupported tracking URI {redact(uri)!r}: use sqlite:///PATH or http(s)://HOST:PORT")


def open_existing(uri: str | None):
    """A client for reading the record; refuses (instead of creating) a sqlite store that does not exist."""
    uri = resolve_uri(uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise ConfigError(f"no MLflow store at {redact(uri)}: run a sweep first, or give --mlflow-uri")
    check_reachable(uri)
    return client(uri)


def ensure_experiment(c, name: str, uri: str) -> str:
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    root = artifact_root(uri)
    # MLflow 3 opens an experiment on its GenAI overview unless told this is model training (then: the runs table)
    try:
        return c.create_experiment(name, artifact_location=f"{root}/{name}" if root else None,
                                   tags={"mlflow.experimentKind": "custom_model_development"})
    except Exception:  # noqa: BLE001 - another sweep created it in the meantime: use that one
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _param_str(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)


def log_params(c, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, _param_str(v)[:6000]) for k, v in sorted(params.items()) if v is not None]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i:i + 100])


def numeric_metrics(result: dict[str, Any], keys: Callable[[str], bool]) -> dict[str, float]:
    out = {}
    for k, v in result.items():
        if keys(k) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


def _is_reported(k: str) -> bool:
    return k.startswith(("val_", "train_", "best_val_", "test_")) or k in ("epoch_seconds", "diverged", "num_params")


_OOM = re.compile(r"out of memory|OutOfMemoryError|MemoryError|can't allocate memory|Cannot allocate memory", re.I)


def failure_reason(error_text: str) -> tuple[str, str]:
    """('oom' or 'error', the line that says why) from a failed trial's error text (Tune's error file)."""
    lines = [ln.strip() for ln in (error_text or "").splitlines() if ln.strip()]
    oom = [ln for ln in lines if _OOM.search(ln)]
    if oom:
        return "oom", oom[-1][:500]
    return "error", (lines[-1] if lines else "unknown error")[:500]


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def run_name(cfg: dict[str, Any], keys: tuple[str, ...] = (), number: int | None = None, kind: str = "trial",
             seed_point: str | None = None, most: int = 3) -> str:
    """A child run's name as a reader scans it: model, up to ``most`` searched values, the trial's number in the
    sweep, and what it is (``lstm lr=0.0032 alpha=0.99 hidden_size=64 #3``; a published seed point ends with
    ``[published nnrnn-lstm]``, a confirmation run shows its seed and ``[confirm]``)."""
    shown = [f"{k}={_short(cfg[k])}" for k in keys if k != "model" and cfg.get(k) is not None][:most]
    parts = [str(cfg.get("model", "trial")), *shown]
    if kind == "confirm" and cfg.get("seed") is not None:
        parts.append(f"seed={cfg['seed']}")
    if number is not None:
        parts.append(f"#{number}")
    if seed_point:
        parts.append(f"[published {seed_point}]")
    if kind == "confirm":
        parts.append("[confirm]")
    return " ".join(parts)[:250]


def seed_point_of(cfg: dict[str, Any], seed_points: list[tuple[str, dict[str, Any]]]) -> str | None:
    """The name of the published configuration ``cfg`` is (its model and searched values all equal), else None."""
    for name, values in seed_points:
        if values and all(cfg.get(k) == v for k, v in values.items()):
            return name
    return None


def trial_status(result: dict[str, Any] | None, full_budget: int, error: bool) -> str:
    if error:
        return STATUS_FAILED
    if result and result.get("diverged"):
        return STATUS_DIVERGED
    if result and int(result.get("epoch", 0)) >= full_budget:
        return STATUS_COMPLETED
    return STATUS_STOPPED


# the MLflow client's HTTP settings while the queue writes (its defaults retry one request for about four minutes)
QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
RETRY_ENV = "RNNSWEEP_MLFLOW_RETRY_S"  # how long the end of a sweep waits for the tracking server (default 300 s)
# the store's answers that no retry changes (it refuses the write itself): reported and skipped, so that one refused
# write does not hold up every write queued behind it
PERMANENT_ERRORS = ("INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST",
                    "INVALID_STATE")


@contextlib.contextmanager
def _quick_http():
    """QUICK_HTTP for the duration (a setting the user made in the environment is kept)."""
    added = [k for k in QUICK_HTTP if k not in os.environ]
    os.environ.update({k: QUICK_HTTP[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


class RunWriter:
    """Queued MLflow writes: a failed write is retried later, in order, instead of being lost."""

    def __init__(self, uri: str, retry_seconds: float | None = None):
        self.uri = uri
        self.c = client(uri)
        self.pending: list[Callable[[], None]] = []
        # at least as long as the MLflow client's own retries of one request: the sweep's later writes (the parent
        # run, the best runs) go through those, and must not succeed while queued trial results were given up
        self.retry_seconds = float(os.environ.get(RETRY_ENV, 300.0)) if retry_seconds is None else retry_seconds
        self.warned = False
        self.down = False  # the last write failed: retry only once the server answers again

    def do(self, op: Callable[[], None]) -> None:
        self.pending.append(op)
        self.flush()

    def _answers(self) -> bool:
        if not self.uri.startswith(("http://", "https://")):
            return True
        import urllib.request

        try:
            with urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=2.0) as r:
                return r.status == 200
        except Exception:  # noqa: BLE001 - any failure means: not yet
            return False

    def flush(self, wait: float = 0.0) -> bool:
        deadline = time.monotonic() + wait
        while self.pending:
            if self.down and not self._answers():
                if time.monotonic() >= deadline:
                    return False
                time.sleep(1.0)
                continue
            try:
                with _quick_http():
                    self.pending[0]()
                self.pending.pop(0)
                self.down = False
            except Exception as e:  # noqa: BLE001 - the store may be briefly unreachable; keep the op
                if getattr(e, "error_code", None) in PERMANENT_ERRORS:
                    print(f"[rnnsweep] MLflow refused a write, skipped ({e.error_code}: {redact(str(e))[:200]})", flush=True)
                    self.pending.pop(0)
                    continue
                self.down = True
                if not self.warned:
                    print(f"[rnnsweep] MLflow write failed ({type(e).__name__}: {redact(str(e))[:120]}); "
                          f"{len(self.pending)} write(s) queued for retry", flush=True)
                    self.warned = True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(1.0)
        if self.warned:
            print("[rnnsweep] MLflow reachable again: the queued writes are made", flush=True)
        self.warned = False
        return True


from ray.tune import Callback  # noqa: E402  (search is the package that may import ray)


class MlflowTrialCallback(Callback):
    """Writes one child run per Tune trial (see the module docstring). Picklable: the client is made lazily."""

    def __init__(self, *, uri: str, experiment_id: str, parent_run_id: str, sweep: str, task: str, full_budget: int,
                 kind: str = "trial", rename: dict[str, str] | None = None, name_keys: tuple[str, ...] = (),
                 seed_points: list[tuple[str, dict[str, Any]]] = ()):
        self.rename = rename or {}
        # run names: the searched keys shown, the published configurations recognised, a number per run
        self.name_keys, self.seed_points, self._number = tuple(name_keys), list(seed_points), None
        self.uri, self.experiment_id, self.parent_run_id = uri, experiment_id, parent_run_id
        self.sweep, self.task, self.full_budget, self.kind = sweep, task, int(full_budget), kind
        self._w: RunWriter | None = None
        self.runs: dict[str, str] = {}
        self.last_step: dict[str, int] = {}

    def __getstate__(self):
        return {**self.__dict__, "_w": None, "runs": {}, "last_step": {}, "_number": None}

    def _next_number(self) -> int:
        """1, 2, ... in the order runs of this kind start under the parent (a resumed sweep counts on)."""
        if self._number is None:
            self._number = len(self.w.c.search_runs(
                [self.experiment_id], filter_string=f"tags.`{PARENT}` = '{self.parent_run_id}' and "
                                                    f"tags.`{KIND}` = '{self.kind}'", max_results=50000))
        self._number += 1
        return self._number

    @property
    def w(self) -> RunWriter:
        if self._w is None:
            self._w = RunWriter(self.uri)
        return self._w

    def _run_for(self, trial) -> str:
        tid = trial.trial_id
        if tid in self.runs:
            return self.runs[tid]
        c = self.w.c
        found = c.search_runs([self.experiment_id], filter_string=f"tags.`{TRIAL_ID}` = '{tid}' and "
                                                                  f"tags.`{PARENT}` = '{self.parent_run_id}'",
                              max_results=1)
        if found:
            run_id = found[0].info.run_id
            if not found[0].data.params:  # created by a write whose parameters then failed (retried op)
                from .space_adapter import to_config

                log_params(c, run_id, to_config(dict(trial.config), self.rename))
            hist = c.get_metric_history(run_id, "epoch")
            self.last_step[tid] = max((int(m.value) for m in hist), default=0)
            if found[0].info.status != "RUNNING":
                c.update_run(run_id, status="RUNNING")
        else:
            from .space_adapter import to_config

            cfg = to_config(dict(trial.config), self.rename)
            published = seed_point_of(cfg, self.seed_points)
            tags = {PARENT: self.parent_run_id, KIND: self.kind, SWEEP: self.sweep, TRIAL_ID: tid, TASK: self.task,
                    MODEL: str(cfg.get("model")), STATUS: "running"}
            if published:
                tags[SEED_POINT] = published
            run = c.create_run(self.experiment_id, run_name=run_name(
                cfg, self.name_keys, self._next_number(), self.kind, published), tags=tags)
            run_id = run.info.run_id
            log_params(c, run_id, cfg)
            self.last_step[tid] = 0
        self.runs[tid] = run_id
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info):
        self.w.do(lambda: self._run_for(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        from mlflow.entities import Metric

        step = int(result.get("epoch", 0))
        ts = int(time.time() * 1000)  # fixed when the result arrives: a retried write repeats identical values

        def op():
            run_id = self._run_for(trial)
            if step <= self.last_step.get(trial.trial_id, 0):
                return  # already recorded: a trial resumed from a checkpoint repeats no epoch in MLflow
            if result.get("diverged"):  # before the metrics: the step is marked done only when all is written
                self.w.c.set_tag(run_id, TAG + "diverged_reason", str(result.get("diverged_reason", ""))[:500])
            # a diverged report carries a placeholder worst value for the schedulers, not a measured metric
            keep = (lambda k: k == "diverged") if result.get("diverged") else _is_reported
            ms = [Metric(k, v, ts, step) for k, v in numeric_metrics(result, keep).items()]
            ms.append(Metric("epoch", float(step), ts, step))
            self.w.c.log_batch(run_id, metrics=ms)
            self.last_step[trial.trial_id] = step

        self.w.do(op)

    def _finish(self, trial, error: bool):
        result = trial.last_result or {}
        status = trial_status(result, self.full_budget, error)
        ts = int(time.time() * 1000)
        text = ""
        if error and getattr(trial, "error_file", None):
            try:
                text = Path(trial.error_file).read_text()
            except OSError:
                pass

        def op():
            run_id = self._run_for(trial)
            c = self.w.c
            c.set_tag(run_id, STATUS, status)
            c.log_metric(run_id, "budget_used", float(result.get("epoch", 0) or 0), timestamp=ts)
            if error:
                # why it failed, in one line: 'oom' (out of memory: host or GPU) or 'error' (anything else)
                kind, reason = failure_reason(text)
                c.set_tag(run_id, TAG + "failure", kind)
                c.set_tag(run_id, TAG + "failure_reason", reason)
                if text:
                    c.set_tag(run_id, TAG + "error", text[-2000:])
            c.set_terminated(run_id, "FAILED" if status == STATUS_FAILED else "FINISHED")

        self.w.do(op)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, error=True)

    def on_experiment_end(self, trials, **info):
        if self.w.pending and not self.w.flush():
            print(f"[rnnsweep] waiting up to {self.w.retry_seconds:g} s for MLflow ({redact(self.uri)}) to write "
                  f"{len(self.w.pending)} queued write(s) (${RETRY_ENV})", flush=True)
        if not self.w.flush(wait=self.w.retry_seconds):
            print(f"[rnnsweep] {len(self.w.pending)} MLflow write(s) could not be made; the trial results stay "
                  "in the Tune results folder")


def git_commit(root: Path) -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
