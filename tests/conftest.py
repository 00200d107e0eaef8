"""Test settings shared by every test: repository on sys.path, telemetry off, loopback-only Ray, one thread."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("RNNSWEEP_TEST_DATA", ROOT.parent / "shared" / "data"))
# the project's shipped data (shared/data: MNIST, PTB, the music sets, ...). A fresh clone has none: the tests that need
# it skip with NO_DATA_REASON; where it is present (CI, the project's machines) they run.
HAVE_DATA = (DATA / "SHA256SUMS").is_file() or (DATA / "ptb").is_dir()
NO_DATA_REASON = (f"needs the project's data files, not found at {DATA} (a copy of shared/data beside the checkout, "
                  "or set RNNSWEEP_TEST_DATA)")
# tasks whose files only the real data root holds (tests generate small files in the standard formats for the others)
REAL_DATA_DIRS = ("MNIST", "ptb", "music")

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keeps a local Ray on 127.0.0.1 (ENVIRONMENT.md)
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "OMP_NUM_THREADS": "1",
}
os.environ.update(QUIET_ENV)

import torch  # noqa: E402

torch.set_num_threads(1)


def needs_real_data(task: str) -> bool:
    """Whether ``task`` reads files that only the shipped data root holds (MNIST, PTB, the music sets)."""
    from datasets import files

    try:
        ds = files.dataset_of(task)
    except KeyError:  # synthetic
        return False
    return any(f.path.split("/")[0] in REAL_DATA_DIRS for f in ds.files)


def data_marks(task: str) -> list:
    """Marks for a parametrisation on ``task``: ``needs_data`` where the task reads the shipped data."""
    return [pytest.mark.needs_data] if needs_real_data(task) else []


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_data: needs the shipped data root (skipped with the reason if absent)")


def pytest_collection_modifyitems(config, items):
    if HAVE_DATA:
        return
    skip = pytest.mark.skip(reason=NO_DATA_REASON)
    for item in items:
        if item.get_closest_marker("needs_data"):
            item.add_marker(skip)


# A test not marked that still reaches for a missing data file (the loaders raise ConfigError "data file ... not
# found" or "reads data files: pass --data-dir") is reported as skipped with the reason, not failed -- only when the
# data root is absent, so where the data is present such a failure stays a failure.
_NO_DATA_ERRORS = ("data file ", "reads data files", "data directory ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if HAVE_DATA or not rep.failed or call.excinfo is None:
        return
    from rnns.errors import ConfigError

    err = call.excinfo.value
    msg = str(err)
    if isinstance(err, ConfigError) and any(k in msg for k in _NO_DATA_ERRORS) and ("not found" in msg or
                                                                                     "does not exist" in msg or
                                                                                     "--data-dir" in msg):
        rep.outcome = "skipped"
        rep.longrepr = (str(item.path), (item.location[1] or 0) + 1, f"Skipped: {NO_DATA_REASON}: {msg[:120]}")


def processes_under(marker: str) -> list[int]:
    """PIDs whose command line mentions ``marker`` (a test's private Ray temp dir)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    pids = []
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if marker in args and int(pid) != os.getpid():
            pids.append(int(pid))
    return pids


def kill_pids(pids: list[int], grace: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (127.0.0.1, a private temp dir) for a module's in-process sweeps; every process left under its
    temp dir is stopped by PID at the end."""
    import ray

    from search.sweep import start_ray

    d = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = d
    start_ray(None)
    yield
    ray.shutdown()
    kill_pids(processes_under(d))
    os.environ.pop("RAY_TMPDIR", None)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def ray_tmp():
    """A private, short Ray temp dir; every process left under it at the end is stopped by its PID."""
    d = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    yield d
    kill_pids(processes_under(d))
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def cli_env(ray_tmp):
    env = {**os.environ, **QUIET_ENV, "RAY_TMPDIR": ray_tmp, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    return env


def run_cli(args: list[str], cwd, env, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_search.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
