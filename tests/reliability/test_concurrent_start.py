"""Sweeps started at the same moment: the MLflow sqlite store is created once (MLflow has no lock of its own around
its schema creation), and one --name never gets two sweeps in one results folder."""
from __future__ import annotations

import subprocess
import sys
import time

from conftest import ROOT
from reliability_helpers import TINY, Cli, env_for, new_ray_tmp, runs_of, stop_all, tree

N = 4
OPEN_STORE = """
import sys, time
from search import tracking as T
uri = sys.argv[1]
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
c = T.client(uri)
print(T.ensure_experiment(c, "copy_nnrnn", uri))
"""


def test_processes_creating_one_new_store_at_once_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    env = env_for("/tmp")
    start = time.time() + 8  # every process imported and waiting, then all go at once
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_STORE, uri, str(start)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(N)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert len({out.strip() for out, _ in outs}) == 1, "one experiment for the task, the same for every process"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["mlruns.db"], "no lock file or other leftover"


def test_two_sweeps_and_a_duplicate_name_started_together(tmp_path):
    ray_tmp = new_ray_tmp()
    env = env_for(ray_tmp)
    results = tmp_path / "results"
    args = ["sweep", *TINY, "--max-budget", "1", "--samples", "1", "--storage", str(results)]
    clis = [Cli([*args, "--name", n], cwd=tmp_path, env=env, log=tmp_path / f"{i}.log")
            for i, n in enumerate(["a", "b", "a"])]
    try:
        rcs = [c.wait(timeout=400) for c in clis]
    finally:
        stop_all(set().union(*(tree(c.pid) | {c.pid} for c in clis)), ray_tmp)
    outs = [c.output() for c in clis]
    assert rcs[1] == 0, outs[1][-3000:]
    assert sorted([rcs[0], rcs[2]]) == [0, 2], (rcs, [o[-2000:] for o in outs])
    loser = outs[0] if rcs[0] == 2 else outs[2]
    errors = [ln for ln in loser.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "already exists" in errors[0], loser[-2000:]
    _, parents, trial_runs = runs_of(f"sqlite:///{tmp_path / 'mlruns.db'}")
    assert sorted(p.data.tags["rnnsweep.sweep"] for p in parents) == ["a", "b"], "one parent run per sweep name"
    assert all(p.info.status == "FINISHED" for p in parents)
    assert sorted(d.name for d in results.iterdir()) == ["a", "b"]
