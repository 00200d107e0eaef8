"""What a sweep spends besides training: the demo sweep with fresh worker processes per trial against reused ones.

The README's demo sweep (space ``demo/copy``, ``--samples 8``, ASHA + TPE, ``--concurrent 2``; no confirmation
stage here, so that only the search phase is timed) runs twice per pair, once with ``reuse_actors=False`` (a fresh
Ray worker process per trial: Python, torch, Ray and the project imported again, the Trainer built in a cold
process) and once with ``reuse_actors=True`` (the default: Tune hands the next configuration to a live worker),
alternately, each in a fresh driver process with its own Ray temp dir. Reported, medians over ``--repeats`` pairs:

- CPU seconds of every process of the sweep (driver, GCS, raylet, dashboard agents, workers: the driver and all
  its descendants): read from ``/proc/<pid>/stat`` every 0.2 s; a process's last reading counts (up to 0.2 s of a
  process's final CPU is missed, and a process that lives under 0.2 s entirely: a lower bound);
- CPU seconds spent inside ``Trainer.run_epoch`` by all trials (the training), from each trial's own report
  (``epoch_seconds`` is wall time inside a one-thread trial: close to its CPU time);
- wall time of the search phase (``Tuner.fit``, from the sweep's first to its last trial event) and of the command;
- the validation losses of the trials, which must be the same in both (same seeds, same configurations).

    PYTHONPATH=. python bench/bench_sweep_cost.py                  # 2 pairs (about 10 minutes on 2 cores)
    PYTHONPATH=. python bench/bench_sweep_cost.py --repeats 1 --no-write
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import REPO_ROOT, command_line, machine, md_table, median, stamp, write_section  # noqa: E402

ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true",
       "DO_NOT_TRACK": "true", "OMP_NUM_THREADS": "1"}
TICKS = os.sysconf("SC_CLK_TCK")


def child(reuse: bool, workdir: str, out: str) -> None:
    from mlflow.tracking import MlflowClient

    from search.sweep import Experiment, run_sweep

    uri = f"sqlite:///{os.path.join(workdir, 'mlruns.db')}"
    exp = Experiment(space="demo/copy", num_samples=8, max_concurrent=2, confirm_top=0, reuse_actors=reuse,
                     storage=os.path.join(workdir, "tune"), name="cost", mlflow_uri=uri, verbose=0)
    t0 = time.time()
    s = run_sweep(exp)
    end = time.time()
    c = MlflowClient(uri)
    runs = c.search_runs([s["experiment_id"]], filter_string="tags.`rnnsweep.kind` = 'trial'")
    trials = []
    for r in runs:
        hist = c.get_metric_history(r.info.run_id, "epoch_seconds")
        trials.append({"config": {k: v for k, v in sorted(r.data.params.items())},
                       "val_loss": r.data.metrics.get("val_loss"), "train_seconds": sum(m.value for m in hist),
                       "start": r.info.start_time / 1e3, "end": (r.info.end_time or 0) / 1e3})
    Path(out).write_text(json.dumps({"start": t0, "end": end, "trials": trials}))


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, utime + stime in seconds) of a live process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return None


def _tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds of ``root`` and every live descendant (Ray's GCS and raylet are the driver's children, the
    workers the raylet's; workers rename themselves ``ray::...``, so command lines cannot find them)."""
    stats = {int(d): st for d in os.listdir("/proc") if d.isdigit() and (st := _stat(d)) is not None}
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out[pid] = stats[pid][1]
        todo.extend(kids.get(pid, []))
    return out


def run_one(reuse: bool, log) -> dict:
    with tempfile.TemporaryDirectory(prefix="rs-cost-", dir="/tmp") as work:
        raytmp = os.path.join(work, "ray")
        os.makedirs(raytmp)
        out = os.path.join(work, "out.json")
        env = {**os.environ, **ENV, "RAY_TMPDIR": raytmp,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        t0 = time.time()
        p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(int(reuse)), work, out],
                             cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        last: dict[int, float] = {}
        done = threading.Event()

        def poll():
            while not done.is_set():
                last.update(_tree_cpu(p.pid))
                time.sleep(0.2)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        text, _ = p.communicate()
        done.set()
        th.join()
        wall = time.time() - t0
        if p.returncode != 0:
            log(text[-3000:])
            raise SystemExit(f"sweep (reuse_actors={reuse}) failed with exit code {p.returncode}")
        r = json.loads(Path(out).read_text())
    tr = r["trials"]
    return {"reuse": reuse, "cpu": sum(last.values()), "train": sum(t["train_seconds"] for t in tr),
            "search_wall": max(t["end"] for t in tr) - min(t["start"] for t in tr), "wall": wall,
            "losses": sorted((json.dumps(t["config"], sort_keys=True), t["val_loss"]) for t in tr),
            "trials": len(tr)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(bool(int(args.child[0])), args.child[1], args.child[2])
        return
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    res: dict[bool, list[dict]] = {False: [], True: []}
    for i in range(args.repeats):
        for reuse in ((False, True) if i % 2 == 0 else (True, False)):
            r = run_one(reuse, log)
            res[reuse].append(r)
            log(f"pair {i + 1} reuse_actors={reuse}: {r['cpu']:.0f} CPU-s in all, {r['train']:.0f} s training, "
                f"search {r['search_wall']:.0f} s, command {r['wall']:.0f} s, {r['trials']} trials")
    same = all(a["losses"] == b["losses"] for a, b in zip(res[False], res[True]))
    m = {k: {f: median([r[f] for r in v]) for f in ("cpu", "train", "search_wall", "wall")} for k, v in res.items()}
    rows = []
    for f, label in (("cpu", "CPU seconds, every process of the sweep"), ("train", "of which training (run_epoch)"),
                     ("search_wall", "search phase, wall (first trial start to last trial end)"),
                     ("wall", "whole command, wall")):
        a, b = m[False][f], m[True][f]
        rows.append([label, f"{a:.1f}", f"{b:.1f}", f"{a / b:.2f}x" if b else "-"])
    trials = res[True][0]["trials"]
    text = "\n".join([
        "## Sweep cost: fresh trial processes against reused ones\n",
        f"Measured {stamp()} with `{command_line()}`  ",
        f"Machine: {machine('cpu')}  ",
        f"The demo sweep (space `demo/copy`, {trials} trials, ASHA + TPE, 2 concurrent, no confirmation stage), "
        f"medians of {args.repeats} interleaved pairs, each a fresh driver process; see the docstring of "
        "`bench/bench_sweep_cost.py` for how CPU time is read.\n",
        md_table(["", "fresh process per trial (`reuse_actors=False`)", "reused workers (default)",
                  "fresh / reused"], rows),
        "",
        f"Trials' validation losses identical in both: **{'yes' if same else 'NO'}** (same configurations and seeds).",
        f"Per trial, a fresh process costs about {(m[False]['cpu'] - m[True]['cpu']) / max(trials - 2, 1):.1f} "
        "CPU seconds more than a reused one (the difference over the trials that a reused worker runs after its "
        "first: all but the 2 concurrent ones).",
        f"Targets: sweep CPU time at most half of the fresh-process sweep's: "
        f"**{'met' if m[True]['cpu'] <= m[False]['cpu'] / 2 else 'missed'}** "
        f"({m[True]['cpu'] / m[False]['cpu']:.2f}); search phase >= 2x faster: "
        f"**{'met' if m[False]['search_wall'] >= 2 * m[True]['search_wall'] else 'missed'}** "
        f"({m[False]['search_wall'] / m[True]['search_wall']:.2f}x).\n",
    ]) + "\n"
    print(text)
    if not args.no_write:
        log(f"wrote section 'sweep_cost' of {write_section('sweep_cost', text)}")


if __name__ == "__main__":
    main()
