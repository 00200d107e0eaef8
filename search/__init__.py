"""rnnsweep's search package (Ray Tune + Optuna + MLflow).

Importing it sets, before any module of the package imports Ray, the environment that keeps a local Ray on
127.0.0.1 and telemetry off (Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when it is imported; on Linux its
default lets a local Ray listen on every interface). ``run_search.py`` does the same before its first import; the
trial workers inherit the variables from the driver through Ray's processes.
"""
from __future__ import annotations

import os

# Ray binds to the primary interface unless told otherwise; keep a local Ray on loopback (ENVIRONMENT.md)
LOOPBACK_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


def set_ray_env(joining_cluster: bool | None = None) -> None:
    """Telemetry off (a user's own setting is kept) and, unless this process joins a Ray cluster (``--address`` or
    ``$RAY_ADDRESS``), Ray on loopback only: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (a value the user exported is
    kept). Must run before ``import ray`` to have any effect on the addresses."""
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    if joining_cluster is None:
        joining_cluster = bool(os.environ.get("RAY_ADDRESS"))
    if joining_cluster:
        os.environ.setdefault(LOOPBACK_VAR, "1")  # a cluster's nodes reach each other on the machines' addresses
    else:
        os.environ.setdefault(LOOPBACK_VAR, "0")


set_ray_env()
