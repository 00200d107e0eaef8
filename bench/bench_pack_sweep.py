"""Trial packs through the whole sweep path: the same points swept unpacked and in packs, one local Ray.

Each run is a real sweep (``search.sweep.run_sweep``: Tune, the searcher, MLflow in a private sqlite store, the
checkpoints) over the same grid of the demo copy task, FIFO, one trial at a time on one CPU, so the wall time is
the time a researcher waits. Reported: trial-epochs per second of each, their ratio (pack / unpacked), and the
largest relative difference of a member's final validation metric from the same configuration's unpacked trial
(0 up to float32 rounding amplified by training: a pack runs vmapped step loops, a trial the fast kernels).

    python bench/bench_pack_sweep.py --models rnn,lstm --pack 8 --samples 8 --epochs 2 --updates 200
    python bench/bench_pack_sweep.py --quick
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def sweep(model: str, pack: int, samples: int, epochs: int, updates: int, tmp: Path) -> tuple[float, dict]:
    from mlflow.tracking import MlflowClient

    from search.sweep import Experiment, run_sweep

    uri = f"sqlite:///{tmp}/mlruns.db"
    name = f"{model}-pack{pack}"
    t0 = time.perf_counter()
    s = run_sweep(Experiment(space="demo/copy", models=(model,), num_samples=samples, scheduler="fifo",
                             searcher="random", max_budget=epochs, confirm_top=0, storage=str(tmp / "res"),
                             mlflow_uri=uri, name=name, overrides={"updates": updates, "batch_size": 10},
                             verbose=0, max_failures=0, max_concurrent=1, cpus_per_trial=1, pack=pack))
    wall = time.perf_counter() - t0
    c = MlflowClient(uri)
    runs = c.search_runs([s["experiment_id"]], filter_string=f"tags.`rnnsweep.kind` = 'trial' and "
                                                             f"tags.`rnnsweep.sweep` = '{name}'", max_results=1000)
    by_cfg = {tuple(sorted((k, v) for k, v in r.data.params.items() if k != "seed")): r.data.metrics for r in runs}
    return wall, by_cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="rnn,lstm")
    ap.add_argument("--pack", type=int, default=8)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="a small run (4 samples, 2 epochs of 20 updates)")
    a = ap.parse_args()
    if a.quick:
        a.samples, a.epochs, a.updates, a.pack = 4, 2, 20, 4
    from search.sweep import start_ray  # before ray: search sets the loopback-only environment

    import ray

    ray_tmp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = ray_tmp
    start_ray(None, num_cpus=1)
    rows = []
    try:
        for model in a.models.split(","):
            tmp = Path(tempfile.mkdtemp(prefix="packbench-"))
            try:
                w1, r1 = sweep(model, 1, a.samples, a.epochs, a.updates, tmp)
                wk, rk = sweep(model, a.pack, a.samples, a.epochs, a.updates, tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            te = a.samples * a.epochs
            worst, n = 0.0, 0
            for cfg, m in r1.items():
                if cfg in rk and "val_loss" in m and "val_loss" in rk[cfg]:
                    n += 1
                    worst = max(worst, abs(rk[cfg]["val_loss"] - m["val_loss"]) / max(1e-12, abs(m["val_loss"])))
            rows.append((model, te / w1, te / wk, w1 / wk, worst, n))
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    from bench._common import command_line, machine, md_table, stamp, write_section

    table = md_table(["model", "unpacked trial-epochs/s", "packed trial-epochs/s", "packed / unpacked",
                      "max rel. diff of final val_loss", "configurations compared"],
                     [[m, f"{u:.3f}", f"{p:.3f}", f"{r:.2f}x", f"{d:.2e}", str(n)] for m, u, p, r, d, n in rows])
    body = (f"## Trial packs through the sweep path\n\n{stamp()}. `{command_line()}`\n\n{machine()}\n\n"
            f"The same {a.samples} random configurations of `demo/copy` ({a.epochs} epochs of {a.updates} updates, "
            f"batch 10) swept by `run_sweep` (Tune, Optuna-free random search, FIFO, MLflow in sqlite, checkpoints), "
            f"one trial at a time on 1 CPU, unpacked and in packs of {a.pack}; wall time of the whole sweep, so trial "
            f"start-ups, checkpoints and MLflow writes count. The last columns compare each packed member's final "
            f"validation loss with the same configuration's unpacked trial (configurations that did not diverge in "
            f"either).\n\n{table}\n")
    print(body)
    if not a.quick:
        write_section("pack_sweep", body)


if __name__ == "__main__":
    main()
