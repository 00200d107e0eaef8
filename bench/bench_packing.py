"""GPU packing: 1, 2, 4 and 8 trials sharing one GPU through fractional ``gpus_per_trial``.

For each k, one sweep (``search.sweep.run_sweep``) runs k identical-size trials at once with ``gpus_per_trial=1/k``,
``max_concurrent=k``, FIFO, random search over a space whose parameters are all fixed (``--set``), so the k trials
are the same configuration, ``confirm_top=0``, a temporary sqlite MLflow store and Tune storage,
and (``--memory-cap``) ``gpu_memory_fraction=1/k``. One local Ray serves every k. Inside each trial a wrapper around
``search.trainable.train_trial`` (bench/_overhead_hook.py) notes when its first training step began and when it
ended; the aggregate throughput of a k is (k x epochs) / (last end - first start), in trial-epochs per second, and
the table gives it relative to k = 1. Packing pays while one trial leaves the GPU idle (small batches, short
kernels, Python-side work between steps); it stops paying when the GPU is saturated or memory runs out.

    PYTHONPATH=. python bench/bench_packing.py                                  # needs CUDA
    PYTHONPATH=. python bench/bench_packing.py --packs 1 2 4 8 --space demo/copy_lru --model lstm \\
        --set lr=1e-3 alpha=0.99 hidden_size=64 forget_bias=1.0 epochs=3 n_train=20000

Without CUDA it writes "not measured (no GPU)" into BENCHMARKS.md (section ``packing``) and exits;
``--allow-cpu`` runs the same sweeps with fractional CPUs instead, only to check that the script works.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import command_line, machine, md_table, stamp, write_section  # noqa: E402

ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "MLFLOW_DISABLE_TELEMETRY": "true",
       "DO_NOT_TRACK": "true"}
# demo/copy_lru has no published seed points, so every trial is the configuration fixed here (a space with seed
# points would run those first, with their own settings)
DEFAULT_SPACE, DEFAULT_MODEL = "demo/copy_lru", "lstm"
DEFAULT_SET = ("lr=1e-3", "alpha=0.99", "hidden_size=64", "forget_bias=1.0", "epochs=3")


def parse_set(items) -> dict:
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def run_pack(k: int, args, overrides: dict, workdir: str, times_path: str, use_gpu: bool) -> dict:
    from search.sweep import Experiment, run_sweep

    Path(times_path).write_text("")
    os.makedirs(workdir, exist_ok=True)
    exp = Experiment(space=args.space, models=(args.model,), num_samples=k, scheduler="fifo", searcher="random",
                     max_concurrent=k, cpus_per_trial=args.cpus_per_trial if use_gpu else 1.0 / k,
                     gpus_per_trial=(1.0 / k) if use_gpu else 0.0,
                     gpu_memory_fraction=(0.95 / k) if (use_gpu and args.memory_cap) else None,
                     storage=os.path.join(workdir, "tune"), name=f"pack{k}",
                     mlflow_uri=f"sqlite:///{os.path.join(workdir, 'mlruns.db')}", confirm_top=0,
                     overrides=overrides, verbose=0)
    run_sweep(exp)
    recs = [json.loads(line) for line in Path(times_path).read_text().splitlines() if line.strip()]
    recs = [r for r in recs if "first_step" in r]
    if len(recs) != k:
        raise SystemExit(f"k={k}: {len(recs)} trials reported timings, expected {k}")
    span = max(r["end"] for r in recs) - min(r["first_step"] for r in recs)
    per_trial = sorted(r["end"] - r["first_step"] for r in recs)
    epochs = int(overrides.get("epochs", 1))
    return {"k": k, "span": span, "throughput": k * epochs / span, "trial_median": per_trial[len(per_trial) // 2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packs", nargs="+", type=int, default=[1, 2, 4, 8], help="trials sharing the GPU")
    ap.add_argument("--space", default=DEFAULT_SPACE, help="a space without seed points for this model")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--set", nargs="*", default=list(DEFAULT_SET), help="fixed settings KEY=VALUE (all parameters)")
    ap.add_argument("--cpus-per-trial", type=float, default=1.0)
    ap.add_argument("--memory-cap", action="store_true", help="cap each trial at 1/k of GPU memory")
    ap.add_argument("--allow-cpu", action="store_true", help="no GPU: pack fractional CPUs (checks the script only)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import torch

    use_gpu = torch.cuda.is_available()
    head = ["## GPU packing\n", f"Measured {stamp()} with `{command_line()}`  ", f"Machine: {machine()}  "]
    if not use_gpu and not args.allow_cpu:
        text = "\n".join(head + [
            "\n**Not measured (no GPU).** The script needs CUDA: on a GPU machine run "
            "`PYTHONPATH=. python bench/bench_packing.py` (k = 1, 2, 4, 8 trials with `gpus_per_trial = 1/k`; "
            "aggregate trial-epochs per second relative to one trial per GPU).\n"]) + "\n"
        print(text)
        if not args.no_write:
            print(f"wrote section 'packing' of {write_section('packing', text)}", file=sys.stderr)
        return
    overrides = parse_set(args.set)
    os.environ.update({k: os.environ.get(k, v) for k, v in ENV.items()})
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_packing_") as d:
        times = os.path.join(d, "times.jsonl")
        os.environ["RNNSWEEP_BENCH_TIMES"] = times  # set before Ray starts: the trials inherit it
        from bench import _overhead_hook
        from search import trainable
        from search.sweep import start_ray

        trainable.train_trial = _overhead_hook.timed_train_trial
        started = start_ray(None)
        try:
            for k in args.packs:
                r = run_pack(k, args, overrides, os.path.join(d, f"k{k}"), times, use_gpu)
                rows.append(r)
                print(f"k={k}: {r['throughput']:.3f} trial-epochs/s over {r['span']:.1f} s; median trial "
                      f"{r['trial_median']:.1f} s", file=sys.stderr, flush=True)
        finally:
            if started:
                import ray

                ray.shutdown()
    base = next((r for r in rows if r["k"] == 1), rows[0])
    table = md_table(["trials per GPU", "gpus_per_trial", "trial-epochs / s", "x one trial", "median trial time",
                      "time per trial-epoch vs k=1"],
                     [[str(r["k"]), f"{1 / r['k']:.3g}", f"{r['throughput']:.3f}",
                       f"{r['throughput'] / base['throughput']:.2f}", f"{r['trial_median']:.1f} s",
                       f"{r['trial_median'] / base['trial_median']:.2f}x"] for r in rows])
    note = ("" if use_gpu else "\n**CPU check only (`--allow-cpu`): fractional CPUs, not a GPU; these numbers are not "
                               "GPU packing numbers.**\n")
    text = "\n".join(head + [f"Space `{args.space}`, model `{args.model}`, settings `{json.dumps(overrides)}`; "
                             f"memory cap per trial: {'1/k' if args.memory_cap else 'none'}.\n", note, table,
                             "\nWhat limits these numbers: packed trials share the GPU's streaming multiprocessors "
                             "by time-slicing between processes (no MPS), so packing helps only while one trial "
                             "leaves it idle; memory (each process also holds a CUDA context of ~0.5 GiB) "
                             "bounds k."]) + "\n"
    print(text)
    if not args.no_write:
        print(f"wrote section 'packing' of {write_section('packing', text)}", file=sys.stderr)


if __name__ == "__main__":
    main()
