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


GROUP = T.TAG + "group"  # on best runs: what makes two results comparable (space | task options | budget)
# task options that do not change the problem (training settings a space may search)
_NOT_PROBLEM = ("batch_size", "eval_batch_size")


def group_of(space: str | None, task: str, config: dict[str, Any]) -> str:
    """The comparability key of a result: its space, the task options that define the problem (defaults filled in)
    and the full budget. Results of one group were selected on the same problem with the same budget."""
    try:
        from datasets.base import get_task

        defaults = get_task(task).defaults
    except Exception:  # noqa: BLE001 - a task this checkout does not know: the options recorded
        defaults = {}
    opts = {k: config.get(k, d) for k, d in sorted(defaults.items()) if k not in _NOT_PROBLEM}
    text = ", ".join(f"{k}={v}" for k, v in opts.items()) or "-"
    return f"{space or '?'} | {text} | {config.get('epochs', '?')} epochs"


def best_entries(c, task: str) -> list[dict[str, Any]]:
    """Every best-tagged run of the task as a flat record (stable field names, see ``BEST_FIELDS``)."""
    exp = _experiment(c, task)
    runs = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.BEST}` = 'true'", max_results=5000)
    out = []
    for r in runs:
        tags, met = r.data.tags, r.data.metrics
        metric = tags.get(T.TAG + "metric", "")
        base = metric.removeprefix("val_")
        v = met.get(f"{metric}_mean")
        if v is None:
            continue
        try:
            rec = load_record(c, r)
        except ConfigError:
            rec = None
        config = (rec or {}).get("config") or {}
        seeds = int(met.get("seeds") or len((rec or {}).get("seeds") or []) or 1)
        group = tags.get(GROUP) or (group_of(rec.get("space") or tags.get(T.TAG + "space"), task, config)
                                    if rec is not None else None)
        out.append({"model": tags.get(T.MODEL, "?"), "task": task, "metric": metric,
                    "mode": tags.get(T.TAG + "mode", "max"),
                    "val_mean": v, "val_se": _num(met.get(f"{metric}_se")),
                    "test_mean": _num(met.get(f"test_{base}_mean")), "test_se": _num(met.get(f"test_{base}_se")),
                    "seeds": seeds, "confirmed": seeds > 1, "sweep": tags.get(T.SWEEP, ""),
                    "space": (rec or {}).get("space") or tags.get(T.TAG + "space", ""), "group": group,
                    "run_id": r.info.run_id, "start_time": r.info.start_time or 0, "config": config, "_run": r})
    return out


def _num(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _rank_key(e: dict[str, Any]):
    # a confirmed (multi-seed) mean before any single estimate; then the metric in its direction
    v = e["val_mean"]
    return (0 if e["confirmed"] else 1, -v if e["mode"] == "max" else v)


def select(entries: list[dict[str, Any]], sweep: str | None = None, any_sweep: bool = False
           ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per model, the best entry among comparable ones; and the scope: {sweep, groups, any_sweep}.

    The reference is ``sweep`` (else the most recent sweep with a best run): only entries of its group (same space,
    task options and budget) are ranked, unless ``any_sweep``. The reference sweep's models come first."""
    if sweep and not any(e["sweep"] == sweep for e in entries):
        names = sorted({e["sweep"] for e in entries if e["sweep"]})
        from rnns.errors import suggest

        raise ConfigError(f"no best run of sweep {sweep!r}{suggest(sweep, names)}; sweeps with one: "
                          f"{', '.join(names) or 'none'}")
    tagged = [e for e in entries if e["sweep"]]
    ref = sweep or (max(tagged, key=lambda e: e["start_time"])["sweep"] if tagged else None)
    groups = sorted({e["group"] for e in entries if e["sweep"] == ref and e["group"]})
    if any_sweep or ref is None:
        pool = entries
    else:
        pool = [e for e in entries if e["group"] in groups]
    best: dict[str, dict[str, Any]] = {}
    for e in sorted(pool, key=_rank_key):
        best.setdefault(e["model"], e)
    own = sorted(m for m, e in best.items() if e["sweep"] == ref)
    order = own + sorted(m for m in best if m not in own)
    return {m: best[m] for m in order}, {"sweep": ref, "groups": groups, "any_sweep": bool(any_sweep or ref is None)}


def best_runs(c, task: str, sweep: str | None = None, any_sweep: bool = False) -> dict[str, Any]:
    """{model: run} of the best comparable run per model (see :func:`select`)."""
    chosen, _ = select(best_entries(c, task), sweep, any_sweep)
    return {m: e["_run"] for m, e in chosen.items()}


def without_full_budget(c, task: str, sweep: str | None) -> list[dict[str, str]]:
    """Models of ``sweep`` that have no best run, each with why: no trial reached the full budget (stopped by the
    scheduler at epoch k, diverged, failed), or its confirmation did not finish."""
    if not sweep:
        return []
    exp = _experiment(c, task)
    parents = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.KIND}` = 'sweep' and "
                                                               f"tags.`{T.SWEEP}` = '{sweep}'", max_results=5)
    if not parents:
        return []
    ptags = parents[0].data.tags
    models = [m for m in ptags.get(T.TAG + "models", "").split(",") if m]
    scheduler = ptags.get(T.TAG + "scheduler", "the scheduler").upper()
    have = {r.data.tags.get(T.MODEL) for r in c.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{T.BEST}` = 'true' and tags.`{T.SWEEP}` = '{sweep}'",
        max_results=1000)}
    trials = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.KIND}` = 'trial' and tags.`{T.SWEEP}` = "
                                                              f"'{sweep}'", max_results=50000)
    out = []
    for m in models:
        if m in have:
            continue
        mine = [r for r in trials if r.data.tags.get(T.MODEL) == m]
        by: dict[str, list] = {}
        for r in mine:
            by.setdefault(r.data.tags.get(T.STATUS, "?"), []).append(r)
        parts = []
        if not mine:
            parts.append("no trial sampled it")
        if by.get(T.STATUS_STOPPED):
            eps = sorted(int(r.data.metrics.get("epoch", 0)) for r in by[T.STATUS_STOPPED])
            parts.append(f"{len(eps)} stopped by {scheduler} at epoch {', '.join(map(str, eps))}")
        if by.get(T.STATUS_DIVERGED):
            why = {r.data.tags.get(T.TAG + "diverged_reason", "")[:80] for r in by[T.STATUS_DIVERGED]} - {""}
            parts.append(f"{len(by[T.STATUS_DIVERGED])} diverged" + (f" ({'; '.join(sorted(why)[:2])})" if why else ""))
        if by.get(T.STATUS_FAILED):
            why = {r.data.tags.get(T.TAG + "failure_reason", "")[:80] for r in by[T.STATUS_FAILED]} - {""}
            parts.append(f"{len(by[T.STATUS_FAILED])} failed" + (f" ({'; '.join(sorted(why)[:2])})" if why else ""))
        if by.get(T.STATUS_COMPLETED):
            parts.append(f"{len(by[T.STATUS_COMPLETED])} reached the full budget but the confirmation runs did not "
                         "all finish")
        if by.get("running"):
            parts.append(f"{len(by['running'])} still running or interrupted")
        out.append({"model": m, "reason": "; ".join(parts) or "no trial recorded"})
    return out


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


BEST_FIELDS = ("model", "task", "metric", "mode", "val_mean", "val_se", "test_mean", "test_se", "seeds", "confirmed",
               "sweep", "space", "group", "run_id", "config")


def _cfg_text(cfg: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(cfg.items())
                     if k not in ("task", "model"))


def best_report(c, task: str, sweep: str | None = None, any_sweep: bool = False) -> dict[str, Any]:
    """``best`` as data: {task, scope, rows (BEST_FIELDS), without_full_budget [{model, reason}]}."""
    chosen, scope = select(best_entries(c, task), sweep, any_sweep)
    rows = [{k: e[k] for k in BEST_FIELDS} for e in chosen.values()]
    missing = [x for x in without_full_budget(c, task, scope["sweep"]) if x["model"] not in chosen]
    return {"task": task, "scope": scope, "rows": rows, "without_full_budget": missing}


def _scope_line(rep: dict[str, Any]) -> str:
    sc = rep["scope"]
    if sc["any_sweep"]:
        return "every sweep of the task (--any-sweep: results of different spaces, task options or budgets mixed)"
    return (f"sweep {sc['sweep']} and the sweeps comparable to it (same space, task options and budget: "
            f"{'; '.join(sc['groups']) or '?'}); --any-sweep widens")


def best_text(rep: dict[str, Any]) -> str:
    lines = []
    if not rep["rows"]:
        lines.append(f"no best configuration recorded yet for task {rep['task']!r}")
    else:
        rows = [[r["model"], r["metric"], _fmt(r["val_mean"], r["val_se"]), _fmt(r["test_mean"], r["test_se"]),
                 f"{r['seeds']}" + ("" if r["confirmed"] else " (unconfirmed)"), r["sweep"], r["run_id"][:8],
                 _cfg_text(r["config"])] for r in rep["rows"]]
        lines.append(f"ranked: {_scope_line(rep)}")
        lines.append(table(rows, ["model", "metric", "validation", "test", "seeds", "sweep", "run", "configuration"]))
    for x in rep["without_full_budget"]:
        lines.append(f"{x['model']}: no result: {x['reason']}")
    return "\n".join(lines)


def best_table(c, task: str, sweep: str | None = None, any_sweep: bool = False) -> str:
    return best_text(best_report(c, task, sweep, any_sweep))


COMPARE_FIELDS = ("model", "metric", "val_mean", "val_se", "test_mean", "test_se", "seeds", "confirmed", "trials",
                  "epochs_spent", "published", "published_source", "sweep", "space", "group", "run_id")


def compare_rows(c, task: str, sweep: str | None = None, any_sweep: bool = False) -> list[dict[str, Any]]:
    """Per model: the best comparable result (see :func:`select`), the trials and epochs spent on it by the sweeps
    in scope, and the paper's number. Fields: COMPARE_FIELDS."""
    from spaces.published import published_for

    exp = _experiment(c, task)
    entries = best_entries(c, task)
    chosen, scope = select(entries, sweep, any_sweep)
    sweeps = None if scope["any_sweep"] else {e["sweep"] for e in entries if e["group"] in scope["groups"]}
    budget: dict[str, float] = {}
    trials: dict[str, int] = {}
    for r in c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.KIND}` = 'trial'", max_results=50000):
        if sweeps is not None and r.data.tags.get(T.SWEEP) not in sweeps:
            continue
        m = r.data.tags.get(T.MODEL, "?")
        budget[m] = budget.get(m, 0.0) + float(r.data.metrics.get("budget_used", r.data.metrics.get("epoch", 0)) or 0)
        trials[m] = trials.get(m, 0) + 1
    out = []
    for m, e in chosen.items():
        pub = published_for(task, m, e["config"] or None)
        out.append({"model": m, "metric": e["metric"].removeprefix("val_"), "val_mean": e["val_mean"],
                    "val_se": e["val_se"], "test_mean": e["test_mean"], "test_se": e["test_se"], "seeds": e["seeds"],
                    "confirmed": e["confirmed"], "trials": trials.get(m, 0), "epochs_spent": budget.get(m, 0.0),
                    "published": pub.value if pub else None, "published_source": pub.source if pub else "",
                    "sweep": e["sweep"], "space": e["space"], "group": e["group"], "run_id": e["run_id"]})
    return out


_COMPARE_HEAD = ["model", "metric", "validation", "test", "seeds", "trials", "epochs spent", "published", "source",
                 "sweep"]


def _compare_cells(r: dict[str, Any]) -> list[str]:
    return [r["model"], r["metric"], _fmt(r["val_mean"], r["val_se"]), _fmt(r["test_mean"], r["test_se"]),
            str(r["seeds"]), str(r["trials"]), f"{r['epochs_spent']:.0f}",
            "-" if r["published"] is None else f"{r['published']:.4g}", r["published_source"] or "-", r["sweep"] or "-"]


def compare_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no best configuration recorded yet"
    return table([_compare_cells(r) for r in rows], _COMPARE_HEAD)


def compare_text(rows: list[dict[str, Any]], fmt: str) -> str:
    """The compare rows as ``table`` (plain text), ``md``, ``csv`` or ``json`` (fields: COMPARE_FIELDS)."""
    if fmt == "json":
        return json.dumps([{k: r.get(k) for k in COMPARE_FIELDS} for r in rows], indent=2, allow_nan=False,
                          default=str) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COMPARE_FIELDS), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        cell = lambda v: "" if v is None else ("true" if v is True else "false" if v is False else v)  # noqa: E731
        w.writerows([{k: cell(r.get(k)) for k in COMPARE_FIELDS} for r in rows])
        return buf.getvalue()
    if fmt == "md":
        lines = ["| " + " | ".join(_COMPARE_HEAD) + " |", "|" + "---|" * len(_COMPARE_HEAD)]
        lines += ["| " + " | ".join(_compare_cells(r)) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    if fmt == "table":
        return compare_table(rows) + "\n"
    raise ConfigError(f"unknown format {fmt!r}; valid: table, json, csv, md")


OUT_SUFFIXES = {".md": "md", ".csv": "csv", ".json": "json", ".txt": "table"}


def write_compare(rows: list[dict[str, Any]], path: str) -> None:
    """Write the rows to ``path`` in the format its suffix names (.md, .csv, .json, .txt), atomically."""
    p = Path(path)
    fmt = OUT_SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--out must end in {', '.join(OUT_SUFFIXES)}, got {path!r}")
    if not p.parent.is_dir():
        raise ConfigError(f"--out {path}: folder {p.parent} does not exist")
    text = compare_text(rows, fmt)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(p)


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def to_json(data: Any) -> str:
    return json.dumps(_json_safe(data), indent=2, allow_nan=False, default=str) + "\n"


# ---- reproduce -----------------------------------------------------------------------------------------------------
def reproduce(c, task: str, model: str | None, seeds: int | None, tolerance: float, data_dir: str | None,
              device: str = "cpu", sweep: str | None = None, any_sweep: bool = False) -> tuple[str, bool]:
    """Retrain the recorded best configuration with its recorded seeds; (report, within tolerance)."""
    import torch

    from .train import Trainer

    runs = best_runs(c, task, sweep, any_sweep)
    if not runs:
        raise ConfigError(f"no best configuration recorded for task {task!r}; run a sweep first")
    if model is None:
        if len(runs) > 1:
            raise ConfigError(f"task {task!r} has best configurations for {', '.join(runs)}: choose one with --model")
        model = next(iter(runs))
    if model not in runs:
        from rnns.errors import unknown

        missing = {x["model"]: x["reason"] for x in without_full_budget(c, task, select(best_entries(c, task), sweep,
                                                                                               any_sweep)[1]["sweep"])}
        if model in missing:
            raise ConfigError(f"model {model!r} has no recorded best configuration for task {task!r}: "
                              f"{missing[model]}; models with one: {', '.join(runs)}")
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
        if rec.get("packed"):
            # recorded from a member of a trial pack: trained again the same way, as a pack of one (a member's
            # training does not depend on its pack mates; a single trial's fast kernels round differently)
            from .pack import PackTrainer

            p = PackTrainer([cfg], data_dir=data_dir, device=device)
            while p.alive and p.epoch < p.epochs:
                p.run_epoch()
            tr = p.members[p.ids[0]]
        else:
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
