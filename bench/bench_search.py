"""Search efficiency: trial-epochs (and time) each search method needs to first reach a target validation metric.

Methods (the names of ``run_search.py sweep --scheduler/--searcher``):

| method       | scheduler | searcher                                                      |
|--------------|-----------|---------------------------------------------------------------|
| asha+tpe     | asha      | tpe (Optuna TPE, fidelity-correct: ASHA-stopped trials PRUNED) |
| fifo+tpe     | fifo      | tpe                                                            |
| asha+random  | asha      | random (Tune's variant generator, seeded; BasicVariantGenerator) |
| fifo+random  | fifo      | random, no early stopping                                     |

How it is measured (a faithful serial simulation, not a Ray sweep): the scheduler and the searcher are the real
objects a sweep uses, built by ``search.algorithms.build_scheduler`` / ``build_searcher`` on the same
``search.sweep.sweep_space`` as ``run_sweep`` (same metric, mode, budget, grace period 1, reduction factor 3,
``max_concurrent``, sweep seed). Only the execution is replaced: a discrete-event loop plays Tune's role with
``--workers`` trial slots (default 2, ``Experiment.max_concurrent``). It calls, in Tune's order,
``suggest`` -> ``scheduler.on_trial_add`` -> per epoch ``scheduler.on_trial_result`` then (unless STOP)
``searcher.on_trial_result`` -> ``on_trial_complete`` on both when ASHA stops a trial, the trial reaches the
budget, or it diverges. Every result is a real one: the suggested configuration is trained by the pure
``search.train.Trainer`` on demand, one epoch at a time, exactly as ``search.trainable.train_trial`` would (same
config conversion, divergence report, one torch thread per trial); curves and resumable trainer states are cached
under ``bench/.cache/search`` so that a configuration suggested by two methods (random search draws the same
configurations with and without ASHA; TPE's first 10 trials are Optuna's seeded random draws) is trained once.
The simulated clock is deterministic: one unit per trained epoch, plus ``--startup`` units each time a trial starts
(a trial's process and Trainer set-up, in epochs of the task: see the overhead section), so a fresh cache, another
machine or a loaded one give the same table. A target counts as reached only when a trial that the sweep's own
selection rule could pick reaches it: a trial that trained the full budget without diverging, with its best
validation metric (``best_val_<metric>``, what ``run_sweep`` ranks) at the target; a trial ASHA stopped never
counts, however good its early epochs. A sweep stops when all targets are reached, or when ``--max-trials`` trials
have ended (a censored run, shown as ``>N``). Methods are compared per sweep seed (paired: the same seed gives the
same first random configurations to every method), with the median of the per-seed ratios and a bootstrap 95%
interval over seeds beside the ratio of medians; at least 10 seeds by default.

    PYTHONPATH=. python bench/bench_search.py                      # both tasks, 10 sweep seeds, the four methods
    PYTHONPATH=. python bench/bench_search.py --tasks nnrnn_copy --seeds 0 1 2 3 4 5 6 7 8 9 --time-limit 300

The first run trains (tens of minutes of CPU for both tasks); the cache makes later runs take seconds.
``--time-limit`` stops after that many seconds (the cache keeps everything trained so far: run it again to go on);
the BENCHMARKS.md section is written only by a run that completes.
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import inspect
import json
import math
import os
import random
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import command_line, machine, md_table, median, quartiles, stamp, write_section  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache" / "search"

# The two small copy tasks, each with two targets read off a pilot of random configurations: an easy one (the
# best of about ten random configurations) and a harder one (the best of a few tens). ``max_trials`` censors a sweep.
TASKS: dict[str, dict[str, Any]] = {
    "nnrnn_copy": {
        "space": "nnrnn/copy",
        "title": "nnRNN copying memory (space nnrnn/copy, 5 cells), delay 20 instead of 200, hidden 64, "
                 "25 updates of batch 10 per epoch, 9 epochs",
        "overrides": {"delay": 20, "updates": 25, "hidden_size": 64, "n_val": 500},
        "budget": 9,
        "targets": (0.35, 0.32),
        "max_trials": 40,
    },
    "lru_copy": {
        "space": "lru/copy",
        "title": "minimal-LRU copy (space lru/copy), one residual LRU block of width 48 and state 48, 2000 "
                 "training sequences (batch 64), 9 epochs",
        "overrides": {"num_layers": 1, "embed_dim": 48, "hidden_size": 48, "n_train": 2000, "n_val": 500},
        "budget": 9,
        "targets": (0.66, 0.68),
        "max_trials": 30,
    },
}
METHODS = ("asha+tpe", "fifo+tpe", "asha+random", "fifo+random")
BASELINE = "fifo+random"
TARGET_FRACTION = 0.2  # ASHA+TPE should need at most 1/5 of random search's budget


class OutOfTime(Exception):
    pass


# ---------------------------------------------------------------------------------------------------- curves
class CurveStore:
    """Validation curves of configurations, trained on demand by the pure Trainer and cached on disk."""

    def __init__(self, root: Path, deadline: float):
        self.root = root
        (root / "states").mkdir(parents=True, exist_ok=True)
        self.path = root / "curves.json"
        self.curves: dict[str, dict] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.live: dict[str, Any] = {}  # a few Trainers kept in memory (the rest resume from their state file)
        self.deadline = deadline
        self.trained_epochs = 0
        self.trained_seconds = 0.0

    @staticmethod
    def key(cfg: dict) -> str:
        s = json.dumps({k: v for k, v in sorted(cfg.items()) if v is not None}, sort_keys=True, default=str)
        return hashlib.sha1(s.encode()).hexdigest()[:16]

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.curves))
        os.replace(tmp, self.path)

    def result(self, cfg: dict, epoch: int) -> dict:
        """What the trainable reports after ``epoch`` (1-based); a diverged curve ends with its divergence report;
        a configuration the Trainer refuses gives ``{"error": message}`` (Tune would mark the trial ERROR)."""
        k = self.key(cfg)
        entry = self.curves.setdefault(k, {"config": cfg, "results": [], "ended": False})
        if entry.get("error"):
            return {"error": entry["error"], "cpu_seconds": 0.0}
        if len(entry["results"]) < epoch and not entry["ended"]:
            # training seeds numpy's, Python's and torch's global generators (seed_everything); the searchers draw
            # from numpy's global generator too, so training here must not move what they draw next
            np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
            try:
                while len(entry["results"]) < epoch and not entry["ended"]:
                    self._train_one(k, entry, cfg)
            except OutOfTime:
                raise
            except Exception as e:  # noqa: BLE001 - what the trainable would raise: the trial errors
                if entry["results"]:
                    raise
                entry["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                self._save()
                return {"error": entry["error"], "cpu_seconds": 0.0}
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)
                torch.set_rng_state(torch_state)
        res = entry["results"][min(epoch, len(entry["results"])) - 1]
        return dict(res)

    def _trainer(self, k: str, cfg: dict, done: int):
        from search.train import Trainer

        tr = self.live.pop(k, None)
        if tr is None or tr.epoch != done:
            tr = Trainer(cfg, device="cpu")
            state = self.root / "states" / f"{k}.pt"
            if done:
                try:
                    tr.load_state_dict(torch.load(state, map_location="cpu", weights_only=True))
                    if tr.epoch != done:
                        raise RuntimeError("state and curve disagree")
                except Exception:  # noqa: BLE001 - a missing, torn or newer state (an interrupted run): start over
                    self.curves[k]["results"].clear()
                    tr = Trainer(cfg, device="cpu")
        self.live[k] = tr
        while len(self.live) > 4:
            self.live.pop(next(iter(self.live)))
        return tr

    def _train_one(self, k: str, entry: dict, cfg: dict) -> None:
        from search.train import DIVERGED, DIVERGED_REASON, Diverged, val_key

        if time.time() > self.deadline:
            raise OutOfTime
        tr = self._trainer(k, cfg, len(entry["results"]))
        t0 = time.process_time()
        try:
            m = tr.run_epoch()
            m[DIVERGED] = 0
        except Diverged as e:  # as search.trainable.train_trial reports it
            spec = tr.task.spec
            worst = float("-inf") if spec.mode == "max" else float("inf")
            m = {DIVERGED: 1, DIVERGED_REASON: str(e), "epoch": tr.epoch + 1, val_key(spec.metric): worst,
                 f"best_val_{spec.metric}": worst}
            entry["ended"] = True
        secs = time.process_time() - t0
        m["cpu_seconds"] = secs
        self.trained_epochs += 1
        self.trained_seconds += secs
        entry["results"].append({k2: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
                                 for k2, v in m.items()})
        if int(m["epoch"]) >= tr.epochs:
            entry["ended"] = True
        state = self.root / "states" / f"{k}.pt"
        if entry["ended"]:
            state.unlink(missing_ok=True)
            self.live.pop(k, None)
        else:
            tmp = state.with_suffix(".tmp")
            torch.save(tr.state_dict(), tmp)
            os.replace(tmp, state)  # whole or absent, like the trainable's checkpoints
        self._save()


def _num(v):
    return float(v) if isinstance(v, str) and v in ("inf", "-inf", "nan") else v


# ---------------------------------------------------------------------------------------------------- one sweep
def simulate(task: dict, method: str, seed: int, store: CurveStore, *, workers: int, max_trials: int,
             with_seeds: bool, stop_at_target: bool = True, startup: float = 0.5) -> dict:
    """Play one sweep of ``method`` with sweep seed ``seed`` until every target is reached (or ``max_trials`` trials
    have ended). Stopping changes nothing before it, so each target's first hit is what a sweep stopped there sees."""
    from ray.tune.experiment import Experiment as TuneExperiment
    from ray.tune.schedulers import TrialScheduler

    from search.algorithms import build_scheduler, build_searcher
    from search.space_adapter import rename_map, to_config
    from search.sweep import _task_metric, load_space, sweep_space
    from search.train import DIVERGED, val_key

    space = load_space(task["space"])
    budget = task["budget"]
    run_space = sweep_space(space, budget, task["overrides"], seed)
    models = tuple(run_space.models)
    metric_name, mode = _task_metric(space)
    metric = val_key(metric_name)
    best_key = f"best_val_{metric_name}"
    sched_name, searcher_name = method.split("+")
    # ASHA picks a bracket with numpy's global generator (one bracket here); seeded so a sweep replays exactly
    np.random.seed(seed)
    random.seed(seed)
    kw = {}
    if "num_samples" in inspect.signature(build_searcher).parameters:
        kw["num_samples"] = max_trials  # random search draws its configurations up front, as run_sweep asks it to
    alg, param_space, _ = build_searcher(searcher_name, run_space, models, metric=metric, mode=mode, seed=seed,
                                         full_budget=budget, max_concurrent=workers, include_seeds=with_seeds, **kw)
    scheduler = build_scheduler(sched_name, metric=metric, mode=mode, max_t=budget, grace_period=1,
                                reduction_factor=3, space=run_space, seed=seed)
    scheduler.set_search_properties(metric, mode)
    rename = rename_map(run_space)
    if searcher_name == "random":
        def _noop(config):  # never run: the generator only needs a trainable to build Trial objects
            return None

        tmp = tempfile.mkdtemp(prefix="bench_search_")
        alg.add_configurations([TuneExperiment("sim", run=_noop, config=param_space, num_samples=max_trials,
                                               storage_path=tmp)])

        def suggest(i: int):
            t = alg.next_trial()
            return (None, None) if t is None else (t.trial_id, dict(t.config))
    else:
        alg.set_search_properties(metric, mode, param_space)

        def suggest(i: int):
            tid = f"t{i:05d}"
            cfg = alg.suggest(tid)
            return (None, None) if cfg is None else (tid, cfg)

    better = (lambda v, t: v >= t) if mode == "max" else (lambda v, t: v <= t)
    live: dict[str, dict] = {}
    events: list[tuple[float, int, str]] = []
    now, started, ended, epochs, seq = 0.0, 0, 0, 0, 0
    hits: dict[float, dict | None] = {t: None for t in task["targets"]}
    best = None
    errors: list[str] = []
    while True:
        while len(live) < workers and started < max_trials:
            tid, cfg = suggest(started)
            if tid is None:
                break
            cfg = to_config(cfg, rename)
            trial = types.SimpleNamespace(trial_id=tid)
            scheduler.on_trial_add(None, trial)
            live[tid] = {"cfg": cfg, "epoch": 0, "trial": trial}
            started += 1
            store.result(cfg, 1)  # trains (or reads) the first epoch now, so that errors show at once
            heapq.heappush(events, (now + startup + 1.0, seq, tid))
            seq += 1
        if not events:
            break
        now, _, tid = heapq.heappop(events)
        st = live[tid]
        st["epoch"] += 1
        res = {k: _num(v) for k, v in store.result(st["cfg"], st["epoch"]).items()}
        if "error" in res:
            # Tune: trial ERROR (FailureConfig retries fail the same way) -> scheduler.on_trial_error and
            # search_alg.on_trial_complete(error=True); no epoch was reported
            scheduler.on_trial_error(None, st["trial"])
            alg.on_trial_complete(tid, error=True)
            errors.append(res["error"])
            del live[tid]
            ended += 1
            continue
        res.update(training_iteration=st["epoch"], trial_id=tid, time_total_s=now)
        epochs += 1
        v = res.get(metric)
        finished = bool(res.get(DIVERGED)) or int(res.get("epoch", 0)) >= budget
        # only a trial the selection rule can pick counts: full budget, not diverged, its best validation metric
        selectable = finished and not res.get(DIVERGED)
        v = res.get(best_key) if selectable else None
        if v is not None and math.isfinite(v):
            best = v if best is None or (v > best if mode == "max" else v < best) else best
            for t in hits:
                if hits[t] is None and better(v, t):
                    hits[t] = {"epochs": epochs, "seconds": now, "trials": started, "config": st["cfg"], "value": v,
                               "at_epoch": st["epoch"]}
            if stop_at_target and all(h is not None for h in hits.values()):
                break
        decision = scheduler.on_trial_result(None, st["trial"], res)
        if decision != TrialScheduler.STOP:
            alg.on_trial_result(tid, res)
        if decision == TrialScheduler.STOP or finished:
            scheduler.on_trial_complete(None, st["trial"], res)
            alg.on_trial_complete(tid, result=res)
            del live[tid]
            ended += 1
        else:
            store.result(st["cfg"], st["epoch"] + 1)
            heapq.heappush(events, (now + 1.0, seq, tid))
            seq += 1
    out = {"method": method, "seed": seed, "best": best, "errors": errors, "by_target": {}}
    for t, h in hits.items():
        out["by_target"][t] = {"method": method, "seed": seed, "hit": h, "censored": h is None,
                               "epochs": h["epochs"] if h else epochs, "seconds": h["seconds"] if h else now,
                               "trials": h["trials"] if h else started}
    return out


# ---------------------------------------------------------------------------------------------------- report
def _fmt(v: float, censored: bool, unit: str = "") -> str:
    return (">" if censored else "") + (f"{v:.0f}" if not unit else f"{v:.1f} {unit}")


def paired_ratios(a: list[dict], b: list[dict], key: str = "epochs") -> list[tuple[float, bool]]:
    """Per sweep seed, a's cost over b's cost (the same seed in both), and whether either side was censored."""
    bs = {r["seed"]: r for r in b}
    return [(r[key] / bs[r["seed"]][key], r["censored"] or bs[r["seed"]]["censored"]) for r in a
            if r["seed"] in bs and bs[r["seed"]][key] > 0]


def bootstrap_median(xs: list[float], n: int = 5000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the median of ``xs`` (resampling sweep seeds)."""
    rng = random.Random(seed)
    meds = sorted(median([rng.choice(xs) for _ in xs]) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


def _median_censored(runs: list[dict], key: str) -> tuple[float, bool]:
    """Median where a censored run counts as larger than every reached one."""
    vals = sorted(((r["censored"], r[key]) for r in runs))
    mid = vals[(len(vals) - 1) // 2] if len(vals) % 2 else None
    if mid is not None:
        return mid[1], mid[0]
    a, b = vals[len(vals) // 2 - 1], vals[len(vals) // 2]
    return (a[1] + b[1]) / 2, a[0] or b[0]


def _ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (va * vb) if va and vb else float("nan")


def rung_correlations(store: CurveStore, metric: str, budget: int, rungs=(1, 3)) -> tuple[int, dict[int, float]]:
    """Spearman correlation between the metric at each rung and at the full budget, over the cached configurations
    trained to the full budget without diverging: how well an early rung ranks configurations."""
    full = [[_num(x[metric]) for x in e["results"]] for e in store.curves.values()
            if len(e["results"]) >= budget and not any(x.get("diverged") for x in e["results"])]
    full = [c for c in full if all(isinstance(v, (int, float)) and math.isfinite(v) for v in c)]
    return len(full), {r: spearman([c[r - 1] for c in full], [c[budget - 1] for c in full]) for r in rungs
                       if len(full) > 2}


def top_survival(store: CurveStore, metric: str, mode: str, budget: int, rung: int = 1, rf: float = 3.0):
    """(survivors, size) of the best 10% at the full budget that are also in the best 1/rf at ``rung``: the share
    of the final winners a first-rung cut (ASHA's, with every result recorded) would keep."""
    full = [[_num(x[metric]) for x in e["results"]] for e in store.curves.values()
            if len(e["results"]) >= budget and not any(x.get("diverged") for x in e["results"])]
    full = [c for c in full if all(isinstance(v, (int, float)) and math.isfinite(v) for v in c)]
    n = len(full)
    if n < 10:
        return 0, 0
    sign = -1 if mode == "max" else 1
    top = set(sorted(range(n), key=lambda i: sign * full[i][budget - 1])[:n // 10])
    keep = set(sorted(range(n), key=lambda i: sign * full[i][rung - 1])[:math.ceil(n / rf)])
    return len(top & keep), len(top)


def render(results: dict, args, store_stats: dict) -> str:
    lines = ["## Search efficiency\n",
             f"Measured {stamp()} with `{command_line()}`  ",
             f"Machine: {machine('cpu', {'simulated trial slots': str(args.workers)})}  ",
             "Method: the real ASHA scheduler and the real TPE / random searchers (`search.algorithms`), driven by a "
             "serial discrete-event loop instead of Tune's controller; every result is a real epoch of the pure "
             "`Trainer` on the suggested configuration (cached, so a configuration two methods suggest is trained "
             "once). See the docstring of `bench/bench_search.py`. Trial-epochs count every reported epoch of every "
             "trial until a trial trained to the full budget (one the selection rule can pick) first has its best "
             f"validation metric at the target; time is simulated on {args.workers} slots in units of one epoch, "
             f"each trial start costing {args.startup:g} units more (process and Trainer set-up), deterministic "
             "whatever the machine or cache. Published seed points are "
             + ("included" if args.with_seeds else "left out (they would give every method the same head start)")
             + f"; sweep seeds {', '.join(map(str, args.seeds))} (the sweep seed is also every trial's training "
             "seed, as in `run_sweep`); ASHA grace period 1 epoch, reduction factor 3 (rungs at 1, 3, 9 epochs). "
             "`>N`: the sweep ended (all its trials done) before reaching the target, after N trial-epochs; a "
             "censored run counts as larger than any reached one in the median.\n"]
    for tkey, runs in results.items():
        task = TASKS[tkey]
        metric, mode = runs[0]["_metric"]
        lines.append(f"### {task['title']}\n")
        lines.append(f"At most {task['max_trials']} trials per sweep. Trials that failed to build (a configuration "
                     f"the cell refuses; no epoch, counted as started): "
                     f"{sum(len(r['errors']) for r in runs)} over all sweeps.\n")
        for target in task["targets"]:
            rt = [r["by_target"][target] for r in runs]
            base = [r for r in rt if r["method"] == BASELINE]
            base_ep, base_c = _median_censored(base, "epochs") if base else (float("nan"), False)
            lines.append(f"Target {metric} {'>=' if mode == 'max' else '<='} {target} (best validation metric of a trial "
                         "at the full budget, first reached):\n")
            rows = []
            for m in METHODS:
                rr = [r for r in rt if r["method"] == m]
                if not rr:
                    continue
                ep, ep_c = _median_censored(rr, "epochs")
                sec, sec_c = _median_censored(rr, "seconds")
                tr, tr_c = _median_censored(rr, "trials")
                reached = sum(not r["censored"] for r in rr)
                per_seed = ", ".join(_fmt(r["epochs"], r["censored"]) for r in sorted(rr, key=lambda r: r["seed"]))
                q = quartiles([r["epochs"] for r in rr])
                ratio = f"{ep / base_ep:.2f}" + (" (censored)" if ep_c or base_c else "")
                pr = paired_ratios(rr, base)
                if pr and m != BASELINE:
                    lo, hi = bootstrap_median([x for x, _ in pr])
                    paired = (f"{median([x for x, _ in pr]):.2f} [{lo:.2f}, {hi:.2f}]"
                              + (f" ({sum(c for _, c in pr)} censored)" if any(c for _, c in pr) else ""))
                else:
                    paired = "-"
                rows.append([f"`{m}`", _fmt(ep, ep_c), f"{q[0]:.0f}-{q[1]:.0f}", per_seed, _fmt(sec, sec_c, "u"),
                             _fmt(tr, tr_c), f"{reached}/{len(rr)}", ratio, paired])
            lines.append(md_table(["method", "trial-epochs (median)", "IQR", "per seed", "time (median, units)",
                                   "trials started", "reached", f"ratio of medians x {BASELINE}",
                                   "paired ratio, median [95% CI]"], rows))
            at = [r for r in rt if r["method"] == "asha+tpe"]
            if at and base:
                pr = paired_ratios(at, base)
                xs = [x for x, _ in pr]
                med = median(xs)
                lo, hi = bootstrap_median(xs)
                met_seeds = sum(x <= TARGET_FRACTION and not c for x, c in pr)
                ok = hi <= TARGET_FRACTION
                lines.append(f"\nASHA+TPE <= 1/5 of random search's trial-epochs, paired by seed: "
                             f"**{'met' if ok else 'missed'}** (median of {len(xs)} per-seed ratios {med:.2f}, 95% "
                             f"interval [{lo:.2f}, {hi:.2f}]; met on {met_seeds} of {len(xs)} seeds"
                             + (", random search censored on some seeds: its true cost is larger there"
                                if any(c for _, c in pr) else "") + ").")
            lines.append("")
        st = CurveStore(CACHE / tkey, float("inf"))
        n, cor = rung_correlations(st, metric, task["budget"])
        kept, top = top_survival(st, metric, mode, task["budget"])
        if cor:
            lines.append(f"How well ASHA's rungs rank configurations on this task: Spearman correlation of {metric} "
                         "at epoch " + ", ".join(f"{r}: {c:.2f}" for r, c in cor.items())
                         + f" with {metric} at epoch {task['budget']}, over the {n} cached configurations trained "
                         f"to the full budget; of their best 10% ({top}), {kept} are in the best third at epoch 1 "
                         "(would survive the first rung). The rungs rank well enough; what limits ASHA here is how "
                         "few configurations a target needs (below).\n")
    lines.append(f"Configurations trained for these tables: {store_stats['configs']} "
                 f"({store_stats['epochs']} epochs, {store_stats['cpu']:.0f} CPU seconds in all, cached).\n")
    lines.append(
        "What limits these numbers: with a budget of 9 epochs and rungs at 1, 3, 9, ASHA saves at most 8 of 9 "
        "epochs per configuration it rejects at the first rung and nothing on the configuration that reaches the "
        "target, so ASHA alone cannot do better than about 1/3 to 1/9 of random search's trial-epochs, and only "
        "when the target needs many configurations. TPE models only after Optuna's 10 random start-up trials "
        "(`n_startup_trials`), so a target that random search reaches within ~10 trials leaves TPE nothing to gain; "
        "a harder target, a longer budget (more rungs) and more trials per sweep favour ASHA+TPE. With 2 slots ASHA "
        "also promotes early (an asynchronous rung with one recorded result has no cutoff). The paired per-seed "
        "ratios and their bootstrap interval say how much of a difference is the draw of the seeds.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=list(range(10)),
                    help="sweep seeds (>= 10, so that a verdict is not one lucky draw)")
    ap.add_argument("--startup", type=float, default=0.5,
                    help="cost of starting a trial, in epochs of the task (process and Trainer set-up)")
    ap.add_argument("--max-trials", type=int, default=0,
                    help="trials per simulated sweep before it is censored (0: the task's own, 40 or 30)")
    ap.add_argument("--workers", type=int, default=2, help="concurrent trial slots (max_concurrent)")
    ap.add_argument("--with-seeds", action="store_true", help="evaluate the spaces' published points first")
    ap.add_argument("--time-limit", type=float, default=0, help="stop after this many seconds (0: none)")
    ap.add_argument("--pilot", type=int, default=0,
                    help="print the best metric of the first N random configurations of the first seed (no target)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one thread per trial, as the trainable sets for cpus_per_trial=1
    deadline = time.time() + args.time_limit if args.time_limit else float("inf")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    results: dict[str, list[dict]] = {}
    stats = {"configs": 0, "epochs": 0, "cpu": 0.0}
    from search.sweep import _task_metric, load_space
    from search.train import val_key

    try:
        for tkey in args.tasks:
            task = dict(TASKS[tkey])
            if args.max_trials:
                task["max_trials"] = TASKS[tkey]["max_trials"] = args.max_trials
            store = CurveStore(CACHE / tkey, deadline)
            mname, mode = _task_metric(load_space(task["space"]))
            if args.pilot:
                simulate(task, "fifo+random", args.seeds[0], store, workers=1, max_trials=args.pilot,
                         with_seeds=False, stop_at_target=False)
                key = val_key(mname)
                vals = [[_num(x[key]) for x in e["results"]] for e in store.curves.values() if e["results"]]
                bests = sorted((max(v) if mode == "max" else min(v)) for v in vals)
                log(f"{tkey}: best {key} per cached configuration over its curve, {len(bests)} configurations: "
                    + ", ".join(f"{b:.3f}" for b in (bests[::-1] if mode == "max" else bests)))
                continue
            runs = []
            for seed in args.seeds:
                for m in args.methods:
                    t0 = time.time()
                    r = simulate(task, m, seed, store, workers=args.workers, max_trials=task["max_trials"],
                                 with_seeds=args.with_seeds, startup=args.startup)
                    r["_metric"] = (val_key(mname), mode)
                    runs.append(r)
                    hits = "; ".join(f"{t}: {'>' if h['censored'] else ''}{h['epochs']} trial-epochs, "
                                     f"{h['trials']} trials" for t, h in r["by_target"].items())
                    log(f"{tkey} seed {seed} {m:12s}: {hits}; best {r['best']:.4g} "
                        f"({time.time() - t0:.0f} s; {store.trained_epochs} epochs trained so far)")
            results[tkey] = runs
            stats["configs"] += len(store.curves)
            stats["epochs"] += sum(len(e["results"]) for e in store.curves.values())
            stats["cpu"] += sum(x.get("cpu_seconds", 0) for e in store.curves.values() for x in e["results"])
    except OutOfTime:
        log(f"time limit reached; cached curves kept under {CACHE}: run the same command again to go on")
        sys.exit(3)
    if args.pilot:
        return
    text = render(results, args, stats)
    print(text)
    if not args.no_write:
        log(f"wrote section 'search' of {write_section('search', text)}")


if __name__ == "__main__":
    main()
