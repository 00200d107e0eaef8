"""MLflow as the record of every sweep.

Layout: one experiment per task; one parent run per sweep; one child run per trial (all parameters, per-epoch
metrics, status, budget used); confirmation runs (the top configurations re-run with several seeds) and one
``best`` run per (task, model) whose configuration, weights and curves are artifacts.

All writes come from the driver through :class:`MlflowTrialCallback` (a Tune callback), in batches, so that trials
need no MLflow connection and a resumed trial finds its existing run (matched by the Tune trial id) instead of
opening a second one. A write that fails (tracking server briefly unreachable) is queued and retried on the next
event and at the end of the sweep; nothing is dropped silently.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from rnns.errors import ConfigError

TAG = "rnnsweep."
KIND, SWEEP, TRIAL_ID, MODEL, STATUS, BEST, TASK = (TAG + k for k in ("kind", "sweep", "trial_id", "model", "status",
                                                                    "best", "task"))
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


def artifact_root(uri: str) -> str | None:
    """Artifacts beside an embedded sqlite store (./mlartifacts); a server chooses its own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    return None


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def check_reachable(uri: str, timeout: float = 10.0) -> None:
    """Fail fast, before any trial, when the tracking store cannot be reached."""
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
                if r.status != 200:
                    raise ConfigError(f"MLflow tracking server {uri} answered {r.status} on /health")
        except (urllib.error.URLError, OSError) as e:
            raise ConfigError(f"MLflow tracking server {uri} is unreachable ({getattr(e, 'reason', e)}); "
                              "start one (see docs/cluster.md) or drop --mlflow-uri for the local sqlite store") from None
    elif uri.startswith("sqlite:///"):
        parent = Path(uri[len("sqlite:///"):]).parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigError(f"cannot write the MLflow store in {parent}: choose a writable --mlflow-uri")
    elif "://" in uri and not uri.startswith("file://"):
        raise ConfigError(f"unsupported tracking URI {uri!r}: use sqlite:///PATH, file://PATH or http(s)://HOST:PORT")


def open_existing(uri: str | None):
    """A client for reading the record; refuses (instead of creating) a sqlite store that does not exist."""
    uri = resolve_uri(uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise ConfigError(f"no MLflow store at {uri}: run a sweep first, or give --mlflow-uri")
    check_reachable(uri)
    return client(uri)


def ensure_experiment(c, name: str, uri: str) -> str:
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    root = artifact_root(uri)
    return c.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)


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


def trial_status(result: dict[str, Any] | None, full_budget: int, error: bool) -> str:
    if error:
        return STATUS_FAILED
    if result and result.get("diverged"):
        return STATUS_DIVERGED
    if result and int(result.get("epoch", 0)) >= full_budget:
        return STATUS_COMPLETED
    return STATUS_STOPPED


class RunWriter:
    """Queued MLflow writes: a failed write is retried later, in order, instead of being lost."""

    def __init__(self, uri: str, retry_seconds: float = 60.0):
        self.uri = uri
        self.c = client(uri)
        self.pending: list[Callable[[], None]] = []
        self.retry_seconds = retry_seconds
        self.warned = False

    def do(self, op: Callable[[], None]) -> None:
        self.pending.append(op)
        self.flush()

    def flush(self, wait: float = 0.0) -> bool:
        deadline = time.monotonic() + wait
        while self.pending:
            try:
                self.pending[0]()
                self.pending.pop(0)
            except Exception as e:  # noqa: BLE001 - the store may be briefly unreachable; keep the op
                if not self.warned:
                    print(f"[rnnsweep] MLflow write failed ({type(e).__name__}: {str(e)[:120]}); "
                          f"{len(self.pending)} write(s) queued for retry")
                    self.warned = True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(1.0)
        self.warned = False
        return True


from ray.tune import Callback  # noqa: E402  (search is the package that may import ray)


class MlflowTrialCallback(Callback):
    """Writes one child run per Tune trial (see the module docstring). Picklable: the client is made lazily."""

    def __init__(self, *, uri: str, experiment_id: str, parent_run_id: str, sweep: str, task: str, full_budget: int,
                 kind: str = "trial", rename: dict[str, str] | None = None):
        self.rename = rename or {}
        self.uri, self.experiment_id, self.parent_run_id = uri, experiment_id, parent_run_id
        self.sweep, self.task, self.full_budget, self.kind = sweep, task, int(full_budget), kind
        self._w: RunWriter | None = None
        self.runs: dict[str, str] = {}
        self.last_step: dict[str, int] = {}

    def __getstate__(self):
        return {**self.__dict__, "_w": None, "runs": {}, "last_step": {}}

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
            hist = c.get_metric_history(run_id, "epoch")
            self.last_step[tid] = max((int(m.value) for m in hist), default=0)
            if found[0].info.status != "RUNNING":
                c.update_run(run_id, status="RUNNING")
        else:
            from .space_adapter import to_config

            cfg = to_config(dict(trial.config), self.rename)
            run = c.create_run(self.experiment_id, run_name=f"{cfg.get('model', 'trial')}-{tid}", tags={
                PARENT: self.parent_run_id, KIND: self.kind, SWEEP: self.sweep, TRIAL_ID: tid, TASK: self.task,
                MODEL: str(cfg.get("model")), STATUS: "running"})
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

        def op():
            run_id = self._run_for(trial)
            if step <= self.last_step.get(trial.trial_id, 0):
                return  # already recorded: a trial resumed from a checkpoint repeats no epoch in MLflow
            ts = int(time.time() * 1000)
            ms = [Metric(k, v, ts, step) for k, v in numeric_metrics(result, _is_reported).items()]
            ms.append(Metric("epoch", float(step), ts, step))
            self.w.c.log_batch(run_id, metrics=ms)
            self.last_step[trial.trial_id] = step
            if result.get("diverged"):
                self.w.c.set_tag(run_id, TAG + "diverged_reason", str(result.get("diverged_reason", ""))[:500])

        self.w.do(op)

    def _finish(self, trial, error: bool):
        result = trial.last_result or {}
        status = trial_status(result, self.full_budget, error)

        def op():
            run_id = self._run_for(trial)
            c = self.w.c
            c.set_tag(run_id, STATUS, status)
            c.log_metric(run_id, "budget_used", float(result.get("epoch", 0) or 0))
            if error and getattr(trial, "error_file", None):
                try:
                    c.set_tag(run_id, TAG + "error", Path(trial.error_file).read_text()[-2000:])
                except OSError:
                    pass
            c.set_terminated(run_id, "FAILED" if status == STATUS_FAILED else "FINISHED")

        self.w.do(op)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, error=True)

    def on_experiment_end(self, trials, **info):
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
