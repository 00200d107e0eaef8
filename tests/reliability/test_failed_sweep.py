"""A sweep that gave no usable result is a failure for the shell: exit status 1 and one line of counts, instead of
status 0 after pages of tracebacks.

Every trial here fails for real (``hidden_size=16000000`` asks the allocator for a 1 PB matrix; the ``rnn`` model
has no published seed point that would keep its own size), with one retry (``--max-failures 1``).
"""
from __future__ import annotations

from reliability_helpers import HUGE_HIDDEN, TINY, Cli, env_for, new_ray_tmp, runs_of, stop_all, tree

from search.sweep import summary_line, trial_counts


def test_a_sweep_whose_every_trial_failed_exits_1_with_one_line(tmp_path):
    ray_tmp = new_ray_tmp()
    cli = Cli(["sweep", *TINY, "--model", "rnn", "--max-budget", "1", "--samples", "1", "--name", "allfail",
               "--storage", str(tmp_path / "results"), "--max-failures", "1", "--set", f"hidden_size={HUGE_HIDDEN}"],
              cwd=tmp_path, env=env_for(ray_tmp), log=tmp_path / "sweep.log")
    try:
        rc = cli.wait(timeout=300)
    finally:
        stop_all(tree(cli.pid) | {cli.pid}, ray_tmp)
    out = cli.output()
    assert rc == 1, out[-3000:]
    errors = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert errors == ["error: sweep allfail failed (no trial finished): 0 finished, 1 failed, 0 diverged, "
                      "0 incomplete of 1 requested; each failed trial's reason is its MLflow run's tag "
                      "rnnsweep.failure_reason"], out[-3000:]
    assert "Traceback" not in out, "a traceback per failed attempt on the console"
    fails = [ln for ln in out.splitlines() if "Trial task failed" in ln]
    assert len(fails) == 2 and all("can't allocate memory" in ln for ln in fails), fails  # one line per attempt
    assert len(out.splitlines()) < 60, out
    _, (parent,), (trial,) = runs_of(f"sqlite:///{tmp_path / 'mlruns.db'}")
    assert parent.info.status == "FAILED" and parent.data.tags["rnnsweep.status"] == "failed"
    assert parent.data.metrics["trials_failed"] == 1 and parent.data.metrics["trials_finished"] == 0
    assert trial.info.status == "FAILED" and trial.data.tags["rnnsweep.failure"] == "oom"


def _row(error=False, diverged=False, epoch=1):
    return {"error": error, "metrics": {"diverged": int(diverged), "epoch": epoch} if epoch else {}}


def test_counts_and_the_summary_line():
    rows = [_row(), _row(error=True), _row(diverged=True), _row(epoch=0)]
    n = trial_counts(rows, requested=5)
    assert n == {"requested": 5, "finished": 1, "failed": 1, "diverged": 1, "incomplete": 2}
    line = summary_line({"sweep": "s", "counts": n})
    assert line.startswith("sweep s failed (2 trial(s) did not run to an end): 1 finished, 1 failed, 1 diverged")
    assert summary_line({"sweep": "s", "counts": trial_counts([_row(), _row(diverged=True)], 2)}) is None
    all_diverged = trial_counts([_row(diverged=True)] * 2, 2)
    assert summary_line({"sweep": "s", "counts": all_diverged}).startswith("sweep s failed (no trial finished)")
