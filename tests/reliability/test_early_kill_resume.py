"""``--resume`` of a sweep whose driver was killed right after Tune wrote ``tuner.pkl`` and before it saved any
experiment state: restoring that Tuner ran 1 of 2 requested trials and exited 0. It is refused in one line."""
from __future__ import annotations

import os
import signal

from conftest import processes_under
from reliability_helpers import TINY, Cli, env_for, new_ray_tmp, stop_all, tree, wait_for


def test_resume_with_only_tuner_pkl_is_refused(tmp_path):
    ray_tmp = new_ray_tmp()
    env = env_for(ray_tmp)
    results = tmp_path / "results"
    exp_dir = results / "early"
    args = ["sweep", *TINY, "--max-budget", "1", "--samples", "2", "--name", "early", "--storage", str(results)]
    first = Cli(args, cwd=tmp_path, env=env, log=tmp_path / "first.log")
    try:
        wait_for(lambda: (exp_dir / "tuner.pkl").is_file(), 300, "tuner.pkl", every=0.05, proc=first.proc)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        stop_all(tree(first.pid) | {first.pid}, ray_tmp)
    for f in exp_dir.iterdir():  # whatever Tune managed to save after tuner.pkl: the state of a very early kill
        if f.is_file() and f.name != "tuner.pkl":
            f.unlink()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    second = Cli([*args, "--resume"], cwd=tmp_path, env=env, log=tmp_path / "second.log")
    try:
        rc = second.wait(timeout=300)
    finally:
        stop_all(tree(second.pid) | {second.pid}, ray_tmp)
    out = second.output()
    assert rc == 2, out[-3000:]
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no Tune experiment state" in errors[0], out[-3000:]
    assert "Traceback" not in out
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name != "second.log") == before, "something written"
    assert processes_under(ray_tmp) == []
