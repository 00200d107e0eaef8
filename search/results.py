"""Reading the record: ``best``, ``compare`` and ``reproduce`` from MLflow alone."""
from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from rnns.errors import ConfigError

from . import tracking as T


def _experiment(c, task: str):
    exp = c.get_experiment_by_name(task)
    if exp is None:
        names = [e.name for e in c.search_experiments() if e.name != "Default"]
        from rnns.errors import suggest

        raise ConfigError(f"no sweep recorded for task {task!r}{suggest(task, names)}; recorded tasks: "
                          f"{', '.join(sorted(names)) or 'none'} (run `run_search.py sweep` first)")
    return exp


def best_runs(c, task: str) -> dict[str, Any]:
    """{model: run} of the best-tagged run per model (best mean validation metric across sweeps)."""
    exp = _experiment(c, task)
    runs = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.BEST}` = 'true'", max_results=5000)
    out: dict[str, Any] = {}
    for r in runs:
        m = r.data.tags.get(T.MODEL)
        metric = r.data.tags.get(T.TAG + "metric", "")
        mode = r.data.tags.get(T.TAG + "mode", "max")
        v = r.data.metrics.get(f"{metric}_mean")
        if v is None:
            continue
        cur = out.get(m)
        if cur is None or (v > cur[1] if mode == "max" else v < cur[1]):
            out[m] = (r, v)
    return {m: rv[0] for m, rv in sorted(out.items())}


def load_record(c, run) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        try:
            p = c.download_artifacts(run.info.run_id, "best_config.json", d)
        except Exception as e:  # noqa: BLE001 - a missing artifact store is a user-facing problem
            raise ConfigError(f"the best run {run.info.run_id} has no readable best_config.json ({e})") from None
        return json.loads(Path(p).read_text())


def _fmt(mean: float | None, se: float | None) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    s = f"{mean:.4f}"
    if se is not None and not math.isnan(se):
        s += f" ± {se:.4f}"
    return s


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *[line(r) for r in rows]])


def best_table(c, task: str) -> str:
    runs = best_runs(c, task)
    if not runs:
        return f"no best configuration recorded yet for task {task!r}"
    rows = []
    for m, r in runs.items():
        metric = r.data.tags.get(T.TAG + "metric", "")
        base = metric.removeprefix("val_")
        rec = load_record(c, r)
        cfg = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(rec["config"].items())
                        if k not in ("task", "model"))
        rows.append([m, metric, _fmt(r.data.metrics.get(f"{metric}_mean"), r.data.metrics.get(f"{metric}_se")),
                     _fmt(r.data.metrics.get(f"test_{base}_mean"), r.data.metrics.get(f"test_{base}_se")),
                     str(len(rec.get("seeds", []))), r.data.tags.get(T.SWEEP, ""), r.info.run_id[:8], cfg])
    return table(rows, ["model", "metric", "validation", "test", "seeds", "sweep", "run", "configuration"])


def compare_rows(c, task: str) -> list[dict[str, Any]]:
    from spaces.published import published_for

    exp = _experiment(c, task)
    budget: dict[str, float] = {}
    trials: dict[str, int] = {}
    for r in c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.KIND}` = 'trial'", max_results=50000):
        m = r.data.tags.get(T.MODEL, "?")
        budget[m] = budget.get(m, 0.0) + float(r.data.metrics.get("budget_used", r.data.metrics.get("epoch", 0)) or 0)
        trials[m] = trials.get(m, 0) + 1
    out = []
    for m, r in best_runs(c, task).items():
        metric = r.data.tags.get(T.TAG + "metric", "")
        base = metric.removeprefix("val_")
        rec = load_record(c, r)
        pub = published_for(task, m, rec.get("config"))
        out.append({"model": m, "metric": base, "val_mean": r.data.metrics.get(f"{metric}_mean"),
                    "val_se": r.data.metrics.get(f"{metric}_se"), "test_mean": r.data.metrics.get(f"test_{base}_mean"),
                    "test_se": r.data.metrics.get(f"test_{base}_se"), "trials": trials.get(m, 0),
                    "epochs_spent": budget.get(m, 0.0), "published": pub.value if pub else None,
                    "published_source": pub.source if pub else ""})
    return out


def compare_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no best configuration recorded yet"
    body = [[r["model"], r["metric"], _fmt(r["val_mean"], r["val_se"]), _fmt(r["test_mean"], r["test_se"]),
             str(r["trials"]), f"{r['epochs_spent']:.0f}",
             "-" if r["published"] is None else f"{r['published']:.4g}", r["published_source"]] for r in rows]
    return table(body, ["model", "metric", "validation", "test", "trials", "epochs spent", "published", "source"])


def write_compare(rows: list[dict[str, Any]], path: str) -> None:
    p = Path(path)
    if p.suffix == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()) if rows else ["model"])
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue()
    elif p.suffix == ".md":
        head = ["model", "metric", "validation", "test", "trials", "epochs spent", "published", "source"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            lines.append("| " + " | ".join([r["model"], r["metric"], _fmt(r["val_mean"], r["val_se"]),
                                             _fmt(r["test_mean"], r["test_se"]), str(r["trials"]),
                                             f"{r['epochs_spent']:.0f}",
                                             "-" if r["published"] is None else f"{r['published']:.4g}",
                                             r["published_source"] or "-"]) + " |")
        text = "\n".join(lines) + "\n"
    else:
        raise ConfigError(f"--out must end in .md or .csv, got {path!r}")
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(p)


# ---- reproduce -----------------------------------------------------------------------------------------------------
def reproduce(c, task: str, model: str | None, seeds: int | None, tolerance: float, data_dir: str | None,
              device: str = "cpu") -> tuple[str, bool]:
    """Retrain the recorded best configuration with its recorded seeds; (report, within tolerance)."""
    import torch

    from .train import Trainer

    runs = best_runs(c, task)
    if not runs:
        raise ConfigError(f"no best configuration recorded for task {task!r}; run a sweep first")
    if model is None:
        if len(runs) > 1:
            raise ConfigError(f"task {task!r} has best configurations for {', '.join(runs)}: choose one with --model")
        model = next(iter(runs))
    if model not in runs:
        from rnns.errors import unknown

        raise unknown(f"model with a best configuration for task {task!r}", model, runs)
    run = runs[model]
    rec = load_record(c, run)
    metric = rec["metric"]
    recorded = rec["seeds"][: seeds or 1]
    if seeds and seeds > len(rec["seeds"]):
        raise ConfigError(f"only {len(rec['seeds'])} seeds were recorded for this configuration; use --seeds <= "
                          f"{len(rec['seeds'])}")
    torch.set_num_threads(1)  # trials ran with one intra-op thread; the same reduction order reproduces them
    rows, ok = [], True
    for s in recorded:
        cfg = {**rec["config"], "seed": s["seed"]}
        tr = Trainer(cfg, data_dir=data_dir, device=device)
        tr.fit()
        got = tr.best["val"][metric.removeprefix("val_")]
        want = s[metric]
        diff = abs(got - want)
        within = diff <= tolerance * max(1.0, abs(want))
        ok &= within
        rows.append([str(s["seed"]), f"{want:.6f}", f"{got:.6f}", f"{diff:.2e}", "ok" if within else "DIFFERS"])
    head = (f"task {task}, model {model}, best run {run.info.run_id} (sweep {rec.get('sweep')}), metric best {metric}\n"
            f"recorded code version {rec.get('code_version')}, now {T.git_commit(Path(__file__).resolve().parent.parent)}"
            f"; tolerance {tolerance:g} (relative)\n")
    return head + table(rows, ["seed", "recorded", "reproduced", "|diff|", "verdict"]), ok
