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
