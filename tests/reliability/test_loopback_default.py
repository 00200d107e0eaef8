"""A sweep started without any Ray variable in its environment listens on loopback only.

``tests/conftest.py`` exports ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` for every test; here it is removed from the
sweep's environment, as for a user who exported nothing. Ray reads the variable when it is imported, so the
command line must set it before its first import of Ray (``search/__init__.py``, ``run_search.py``). The sockets in
LISTEN state of every process of the sweep (driver, GCS, raylet, workers) are read from /proc while a trial runs.
"""
from __future__ import annotations

import subprocess
import sys

from conftest import ROOT
from reliability_helpers import (TINY, Cli, env_for, is_loopback, listening, new_ray_tmp, processes_under,
                                 seed_trial, stop_all, tree, wait_for)

RAY_VARS = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_NODE_IP_ADDRESS", "RAY_ADDRESS")


def bare_env(ray_tmp: str) -> dict[str, str]:
    env = env_for(ray_tmp)
    for k in RAY_VARS:
        env.pop(k, None)
    return env


def test_a_sweep_without_ray_variables_listens_on_loopback_only(tmp_path):
    ray_tmp = new_ray_tmp()
    exp_dir = tmp_path / "results" / "lo"
    cli = Cli(["sweep", *TINY, "--samples", "1", "--name", "lo", "--storage", str(tmp_path / "results")],
              cwd=tmp_path, env=bare_env(ray_tmp), log=tmp_path / "sweep.log")
    try:
        wait_for(lambda: seed_trial(exp_dir), 300, "the trial's first epoch", proc=cli.proc)
        pids = tree(cli.pid)
        for p in processes_under(ray_tmp):
            pids |= tree(p)
        socks = listening(pids)
    finally:
        stop_all(tree(cli.pid) | {cli.pid}, ray_tmp)
        cli.wait(timeout=60)
    names = {name for _, name, _, _ in socks}
    assert any(n.startswith(("gcs_server", "raylet")) for n in names), f"Ray's head not seen: {socks}"
    exposed = [s for s in socks if not is_loopback(s[2])]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_importing_search_sets_the_variable_before_ray():
    """In a fresh interpreter with no Ray variable: importing the package (what the trainable workers and bench
    scripts import first) leaves Ray's own constant on loopback."""
    code = ("import search.tracking, ray._private.ray_constants as c, os; "
            "print(os.environ.get('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'), c.ENABLE_RAY_CLUSTER)")
    env = bare_env("/tmp")
    env.pop("RAY_TMPDIR", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0", "False"], out.stdout


def test_a_local_ray_refuses_to_start_on_every_interface():
    """Ray imported before the package could set the variable: start_ray refuses in one line instead of listening
    on every interface."""
    code = ("import ray, sys; from search.sweep import start_ray; from rnns.errors import ConfigError\n"
            "try:\n    start_ray(None)\nexcept ConfigError as e:\n    print('refused:', e); sys.exit(3)\n"
            "ray.shutdown()")
    ray_tmp = new_ray_tmp()
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=bare_env(ray_tmp), capture_output=True,
                             text=True, timeout=120)
    finally:
        stop_all(set(), ray_tmp)
    assert out.returncode == 3 and "every interface" in out.stdout, (out.stdout, out.stderr[-2000:])
