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


# --- the local write spool ------------------------------------------------------------------------------------------
# A sweep whose tracking server stops answering keeps its writes in a journal in the sweep's folder (JSON lines, each
# fsync'd as it is written), so that they survive the driver; ``run_search.py replay JOURNAL`` (or ``--resume``)
# writes them once the server answers. Each entry is one MLflow client call with every value fixed when it was
# journaled (timestamps, end times), and replaying is idempotent: a run the journal creates is looked up first by
# what identifies it (its parent, kind, trial id, sweep and name), identical metrics and parameters are no-ops in
# MLflow's store, tags and end states are overwritten with the same values. Replaying twice gives the same record.
SPOOL_NAME = "mlflow_spool.jsonl"
SPOOL_EXIT = 75  # sysexits' EX_TEMPFAIL: the sweep finished, its record waits for the server
_PLACEHOLDER = "spool-"
_IDENTITY = (PARENT, KIND, TRIAL_ID, SWEEP)
_spool_default: Path | None = None


def set_spool(path: str | Path | None) -> None:
    """The journal new RunWriters of this process spool to (the sweep's folder), or None: no spool (queue only)."""
    global _spool_default
    _spool_default = Path(path) if path else None


class TrackingSpooled(TrackingLost):
    """The sweep finished, but its last MLflow writes wait in the spool: one line, a distinct exit status."""
    exit_status = SPOOL_EXIT


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Run:  # what create_run returns, for a run the journal created
    def __init__(self, run_id: str, experiment_id: str):
        from types import SimpleNamespace

        self.info = SimpleNamespace(run_id=run_id, experiment_id=experiment_id, status="RUNNING")


class _JournalClient:
    """Stands in for the MLflow client while the server is away: every write becomes a journal entry (run ids of
    runs the journal created are placeholders, translated when the run exists). Reads answer 'nothing known'."""

    def __init__(self, w: "RunWriter"):
        self.w = w

    def _rid(self, run_id: str) -> str:
        return self.w.idmap.get(run_id, run_id)

    def create_run(self, experiment_id, start_time=None, tags=None, run_name=None):
        rid = _PLACEHOLDER + os.urandom(12).hex()
        self.w._journal({"call": "create_run", "run": rid, "experiment_id": str(experiment_id),
                         "start_time": int(start_time or _now_ms()), "tags": {k: str(v) for k, v in (tags or {}).items()},
                         "run_name": run_name})
        return _Run(rid, str(experiment_id))

    def log_batch(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        self.w._journal({"call": "log_batch", "run": self._rid(run_id),
                         "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics or ()],
                         "params": [[p.key, p.value] for p in params or ()],
                         "tags": [[t.key, t.value] for t in tags or ()]})

    def log_metric(self, run_id, key, value, timestamp=None, step=None, **_):
        self.log_batch(run_id, metrics=[_metric(key, value, timestamp or _now_ms(), step or 0)])

    def log_param(self, run_id, key, value, **_):
        self.log_batch(run_id, params=[_param(key, _param_str(value))])

    def set_tag(self, run_id, key, value, **_):
        self.w._journal({"call": "set_tag", "run": self._rid(run_id), "key": key, "value": str(value)})

    def set_terminated(self, run_id, status=None, end_time=None):
        self.w._journal({"call": "set_terminated", "run": self._rid(run_id), "status": status or "FINISHED",
                         "end_time": int(end_time or _now_ms())})

    def update_run(self, run_id, status=None, name=None):
        self.w._journal({"call": "update_run", "run": self._rid(run_id), "status": status, "name": name})

    def search_runs(self, *a, **k):
        return []

    def get_metric_history(self, *a, **k):
        return []


def _metric(key, value, ts, step):
    from mlflow.entities import Metric

    return Metric(key, float(value), int(ts), int(step))


def _param(key, value):
    from mlflow.entities import Param

    return Param(key, str(value))


class _MappedClient:
    """The live MLflow client, with the run ids of journal-created runs translated once the journal was replayed."""

    _ID_FIRST = {"log_batch", "log_metric", "log_param", "set_tag", "set_terminated", "update_run", "log_artifact",
                 "log_artifacts", "get_run", "get_metric_history", "delete_tag", "log_dict", "log_text"}

    def __init__(self, live, idmap: dict[str, str]):
        self._live, self._idmap = live, idmap

    def __getattr__(self, name):
        f = getattr(self._live, name)
        if name not in self._ID_FIRST:
            return f

        def call(*a, **k):
            if a:
                a = (self._idmap.get(a[0], a[0]), *a[1:])
            elif "run_id" in k:
                k["run_id"] = self._idmap.get(k["run_id"], k["run_id"])
            return f(*a, **k)
        return call


def _q(v: str) -> str:
    return str(v).replace("'", "\\'")


def apply_entry(c, e: dict, idmap: dict[str, str]) -> None:
    """One journal entry written with the client ``c`` (idempotent; ``idmap``: placeholder -> run id, extended)."""
    call = e["call"]
    if call == "header":
        return
    if call == "create_run":
        tags = e.get("tags") or {}
        conds = [f"tags.`{k}` = '{_q(tags[k])}'" for k in _IDENTITY if k in tags]
        if e.get("run_name"):
            conds.append(f"attributes.run_name = '{_q(e['run_name'])}'")
        found = c.search_runs([e["experiment_id"]], filter_string=" and ".join(conds), max_results=2) if conds else []
        if found:
            idmap[e["run"]] = found[0].info.run_id
        else:
            idmap[e["run"]] = c.create_run(e["experiment_id"], start_time=e["start_time"], tags=tags,
                                           run_name=e.get("run_name")).info.run_id
        return
    rid = idmap.get(e["run"], e["run"])
    if rid.startswith(_PLACEHOLDER):
        raise ConfigError(f"the journal refers to run {rid}, which none of its entries creates: it is incomplete")
    if call == "log_batch":
        from mlflow.entities import RunTag

        ms = [_metric(*m) for m in e.get("metrics") or ()]
        ps = [_param(*p) for p in e.get("params") or ()]
        ts = [RunTag(k, v) for k, v in e.get("tags") or ()]
        c.log_batch(rid, metrics=ms, params=ps, tags=ts)
    elif call == "set_tag":
        c.set_tag(rid, e["key"], e["value"])
    elif call == "set_terminated":
        c.set_terminated(rid, e["status"], end_time=e["end_time"])
    elif call == "update_run":
        c.update_run(rid, status=e.get("status"), name=e.get("name"))
    else:
        raise ConfigError(f"the journal has an entry this version cannot write ({call!r})")


def read_journal(path: str | Path) -> list[dict]:
    """The journal's entries; a last line cut off by a killed driver (no newline) is left out; anything else that
    is not an entry is refused in one line before anything is written."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no MLflow write journal at {p}" + (" (a folder)" if p.is_dir() else "") +
                          f": give the {SPOOL_NAME} file the sweep named")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the journal {p} ({e})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines.pop()  # cut off while being written: it was never acknowledged
    out = []
    for i, ln in enumerate(lines, 1):
        try:
            e = json.loads(ln)
            if not isinstance(e, dict) or "call" not in e or (e["call"] not in ("header", "create_run") and "run" not in e):
                raise ValueError("not a journal entry")
        except ValueError as err:
            raise ConfigError(f"{p} line {i} is not an MLflow journal entry ({str(err)[:80]}): not a {SPOOL_NAME} "
                              "written by rnnsweep, or damaged; nothing was replayed") from None
        out.append(e)
    if not out or out[0].get("call") != "header":
        raise ConfigError(f"{p} is not an MLflow journal written by rnnsweep (no header line); nothing was replayed")
    return out


def _check_targets(c, entries: list[dict], path, uri: str) -> None:
    """Every experiment and existing run the journal writes to is in the store, before anything is written (a journal
    replayed into another store would otherwise be skipped write by write)."""
    from mlflow.exceptions import MlflowException

    runs = {e["run"] for e in entries if e.get("run") and e["call"] != "create_run"
            and not e["run"].startswith(_PLACEHOLDER)}
    exps = {e["experiment_id"] for e in entries if e["call"] == "create_run"}
    for what, ids, get in (("experiment", exps, c.get_experiment), ("run", runs, c.get_run)):
        for i in sorted(ids):
            try:
                found = get(i)
            except MlflowException as err:
                if getattr(err, "error_code", None) not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise
                found = None
            if found is None:
                raise ConfigError(f"the journal {path} writes to {what} {i}, which {redact(uri)} does not have: replay "
                                  "it into the store the sweep wrote to (--mlflow-uri); nothing was replayed")


def replay(path: str | Path, uri: str | None = None) -> tuple[int, str]:
    """Write a journal's entries into the tracking store (its own, unless ``uri``); (entries written, uri)."""
    entries = read_journal(path)
    if uri is None:
        uri = entries[0].get("uri") or ""
        if "***" in uri or not uri:
            raise ConfigError(f"the journal {path} does not name its tracking URI in full: give --mlflow-uri")
    uri = resolve_uri(uri)
    check_reachable(uri)
    c = client(uri)
    _check_targets(c, entries, path, uri)
    idmap: dict[str, str] = {}
    n = 0
    for e in entries:
        try:
            apply_entry(c, e, idmap)
        except Exception as err:  # noqa: BLE001
            if getattr(err, "error_code", None) in PERMANENT_ERRORS:
                print(f"[rnnsweep] MLflow refused a journaled write, skipped ({err.error_code}: "
                      f"{redact(str(err))[:200]})", flush=True)
                continue
            if isinstance(err, ConfigError) or not is_tracking_failure(uri, err):
                raise
            raise TrackingLost(f"the MLflow tracking server {redact(uri)} stopped answering during the replay "
                               f"({n} of {len(entries) - 1} writes made); run the same command again") from None
        n += e["call"] != "header"
    return n, uri


class RunWriter:
    """Queued MLflow writes: a failed write is retried later, in order, instead of being lost.

    With a spool (``spool`` or :func:`set_spool`), writes that cannot be made go to a journal on disk instead of a
    queue in memory (they survive the driver); the journal is replayed, in order, as soon as the server answers, and
    what is left of it at the end names the command that replays it (``run_search.py replay``)."""

    def __init__(self, uri: str, retry_seconds: float | None = None, spool: str | Path | None = None):
        self.uri = uri
        self._live = client(uri)
        self.pending: list[Callable[[], None]] = []
        # at least as long as the MLflow client's own retries of one request: the sweep's later writes (the parent
        # run, the best runs) go through those, and must not succeed while queued trial results were given up
        self.retry_seconds = float(os.environ.get(RETRY_ENV, 300.0)) if retry_seconds is None else retry_seconds
        self.warned = False
        self.down = False  # the last write failed: retry only once the server answers again
        self.spool = Path(spool) if spool else _spool_default
        self.idmap: dict[str, str] = {}  # journal placeholder -> run id, once replayed
        self.spooled = 0  # journal entries not yet written to the server
        self._journaling = False
        self._jc = _JournalClient(self)
        self._mapped = _MappedClient(self._live, self.idmap)

    @property
    def c(self):
        """The client an op writes with: the live one, or (while the server is away) the journal."""
        if self.spool is None:
            return self._live
        return self._jc if self._journaling else self._mapped

    @property
    def queued(self) -> int:
        """Writes not made yet (in memory or in the journal)."""
        return len(self.pending) + self.spooled

    def do(self, op: Callable[[], None]) -> None:
        if self.spool is None:
            self.pending.append(op)
            self.flush()
            return
        if self.spooled and not self.flush():
            self._spool_op(op)
            return
        try:
            with _quick_http():
                op()
            self.down = False
        except Exception as e:  # noqa: BLE001 - the store may be unreachable: the op goes to the journal
            if getattr(e, "error_code", None) in PERMANENT_ERRORS:
                print(f"[rnnsweep] MLflow refused a write, skipped ({e.error_code}: {redact(str(e))[:200]})", flush=True)
                return
            self.down = True
            # written again from its start into the journal: what it made before failing is repeated identically
            self._spool_op(op)
            if not self.warned:
                print(f"[rnnsweep] MLflow write failed ({type(e).__name__}: {redact(str(e))[:120]}); writes are "
                      f"kept in {self.spool} until the server answers", flush=True)
                self.warned = True

    def _spool_op(self, op: Callable[[], None]) -> None:
        self._journaling = True
        try:
            op()
        finally:
            self._journaling = False

    def _journal(self, entry: dict) -> None:
        new = not self.spool.exists() or self.spool.stat().st_size == 0
        with open(self.spool, "a") as f:
            if new:
                f.write(json.dumps({"call": "header", "uri": self.uri if "@" not in self.uri else redact(self.uri),
                                    "created": _now_ms()}) + "\n")
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if new:
            fd = os.open(self.spool.parent, os.O_RDONLY)
            try:
                os.fsync(fd)  # the new file's name too
            finally:
                os.close(fd)
        self.spooled += 1

    def _replay_spool(self) -> None:
        """The journal's entries written in order; the journal removed once all are made (raises while down)."""
        entries = read_journal(self.spool)
        done = len(entries) - 1 - self.spooled  # entries of this journal already written
        with _quick_http():
            for i, e in enumerate(entries[1:]):
                if i < done:
                    continue
                try:
                    apply_entry(self._live, e, self.idmap)
                except Exception as err:  # noqa: BLE001
                    if getattr(err, "error_code", None) not in PERMANENT_ERRORS:
                        raise
                    print(f"[rnnsweep] MLflow refused a write, skipped ({err.error_code}: {redact(str(err))[:200]})",
                          flush=True)
                self.spooled -= 1
        self.spool.unlink()

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
        while self.spooled:
            if self.down and not self._answers():
                if time.monotonic() >= deadline:
                    return False
                time.sleep(1.0)
                continue
            try:
                self._replay_spool()
                self.down = False
                if self.warned:
                    print("[rnnsweep] MLflow reachable again: the journaled writes are made", flush=True)
                    self.warned = False
            except ConfigError:
                raise
            except Exception:  # noqa: BLE001 - unreachable again: the rest stays in the journal
                self.down = True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(1.0)
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

PACK_TAG = TAG + "pack"  # on a member's run: the Tune trial (pack) that trained it


def _members(trial):
    from .pack_tune import members_of

    return members_of(trial.config)


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
        self.ended: set[str] = set()  # pack members whose run is closed

    def __getstate__(self):
        return {**self.__dict__, "_w": None, "runs": {}, "last_step": {}, "_number": None, "ended": set()}

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

    def _run_for(self, trial, member: tuple[str, dict] | None = None) -> str:
        """The child run of a trial, or of one member of a trial pack (``member`` = (id, config))."""
        tid = member[0] if member else trial.trial_id
        raw = member[1] if member else trial.config
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

                log_params(c, run_id, to_config(dict(raw), self.rename))
            hist = c.get_metric_history(run_id, "epoch")
            self.last_step[tid] = max((int(m.value) for m in hist), default=0)
            if found[0].info.status != "RUNNING":
                c.update_run(run_id, status="RUNNING")
        else:
            from .space_adapter import to_config

            cfg = to_config(dict(raw), self.rename)
            published = seed_point_of(cfg, self.seed_points)
            tags = {PARENT: self.parent_run_id, KIND: self.kind, SWEEP: self.sweep, TRIAL_ID: tid, TASK: self.task,
                    MODEL: str(cfg.get("model")), STATUS: "running", **({PACK_TAG: trial.trial_id} if member else {})}
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
        if _members(trial) is None:  # a pack's member runs are made with their first results
            self.w.do(lambda: self._run_for(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        members = _members(trial)
        if members is not None:
            for mid, cfg in members:
                m = (result.get("members") or {}).get(mid)
                if m is not None:
                    self._log_result(trial, m, (mid, cfg))
            return
        self._log_result(trial, result)

    def _log_result(self, trial, result, member: tuple[str, dict] | None = None):
        from mlflow.entities import Metric

        key = member[0] if member else trial.trial_id
        step = int(result.get("epoch", 0))
        ts = int(time.time() * 1000)  # fixed when the result arrives: a retried write repeats identical values

        def op():
            run_id = self._run_for(trial, member)
            if step <= self.last_step.get(key, 0):
                return  # already recorded: a trial resumed from a checkpoint repeats no epoch in MLflow
            if result.get("diverged"):  # before the metrics: the step is marked done only when all is written
                self.w.c.set_tag(run_id, TAG + "diverged_reason", str(result.get("diverged_reason", ""))[:500])
            # a diverged report carries a placeholder worst value for the schedulers, not a measured metric
            keep = (lambda k: k == "diverged") if result.get("diverged") else _is_reported
            ms = [Metric(k, v, ts, step) for k, v in numeric_metrics(result, keep).items()]
            ms.append(Metric("epoch", float(step), ts, step))
            self.w.c.log_batch(run_id, metrics=ms)
            self.last_step[key] = step

        self.w.do(op)
        if member and result.get("ended"):  # a member the rung table stopped, or that diverged, ends here
            self._finish(trial, False, member=member, result=result)

    def _finish(self, trial, error: bool, member: tuple[str, dict] | None = None, result: dict | None = None):
        members = _members(trial) if member is None else None
        if members is not None:  # the pack ended: every member not ended yet ends with its last result
            last = (trial.last_result or {}).get("members") or {}
            for mid, cfg in members:
                if mid not in self.ended:
                    self._finish(trial, error and not (last.get(mid) or {}).get("ended"), member=(mid, cfg),
                                 result=last.get(mid) or {})
            return
        if member is not None:
            if member[0] in self.ended:
                return
            self.ended.add(member[0])
        result = (trial.last_result or {}) if result is None else result
        status = trial_status(result, self.full_budget, error)
        ts = int(time.time() * 1000)
        text = ""
        if error and getattr(trial, "error_file", None):
            try:
                text = Path(trial.error_file).read_text()
            except OSError:
                pass

        def op():
            run_id = self._run_for(trial, member)
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
        if self.w.queued and not self.w.flush():
            print(f"[rnnsweep] waiting up to {self.w.retry_seconds:g} s for MLflow ({redact(self.uri)}) to write "
                  f"{self.w.queued} queued write(s) (${RETRY_ENV})", flush=True)
        if not self.w.flush(wait=self.w.retry_seconds) and self.w.pending:  # spooled writes: the sweep says so
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
