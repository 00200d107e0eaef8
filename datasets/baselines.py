"""Trivial baselines: what a model that learned nothing about the inputs scores on each task's selection metric.

A sweep's result means something only beside this number. ``trivial_baseline(task, options)`` gives the score of
the best input-independent (memoryless) predictor on the metric the sweep selects by (the task's ``spec.metric``):

| task                      | metric   | trivial strategy                                          | value               |
|---------------------------|----------|-----------------------------------------------------------|---------------------|
| copy_nnrnn, copy_exprnn   | loss     | blanks, then uniform over the 8 symbols (nnRNN paper)     | 10 ln 8 / (T + 20)  |
| copy_urlstm               | loss     | uniform over the 8 symbols at the 10 scored steps          | ln 8                |
| copy_lru                  | accuracy | a coin per bit                                            | 0.5                 |
| adding                    | mse      | always predict the mean sum 1                              | 1/6                 |
| image / text classifiers  | accuracy | a uniform guess over the classes                          | 1 / classes         |
| music (jsb, ...)          | nll      | each note on with its training-set frequency (needs data) | sum of entropies    |

Language-modelling tasks have no data-free baseline here (their unigram entropy needs the corpus); they return None.
``margin(value, baseline)`` is the relative improvement over the baseline (positive = better than trivial).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rnns.errors import ConfigError

from .synthetic import adding_baseline_mse, copy_baseline_loss

CLASSES = {"smnist": 10, "psmnist": 10, "smnist_rru": 10, "psmnist_rru": 10, "scifar": 10, "scifar_gray": 10,
           "listops": 10, "imdb_bytes": 2, "imdb_words": 2}
MUSIC = ("jsb", "nottingham", "musedata", "piano")
LANGUAGE = ("ptb_char", "ptb_word", "wikitext103", "text8", "enwik8")


@dataclass(frozen=True)
class Baseline:
    value: float
    metric: str  # the task's selection metric (spec.metric)
    mode: str  # "min" or "max": which direction is better
    strategy: str  # the trivial predictor, in words

    def margin(self, value: float) -> float:
        return margin(value, self.value, self.mode)

    def describe(self, value: float | None = None) -> str:
        s = f"trivial baseline {self.metric} {self.value:.4g} ({self.strategy})"
        if value is not None and math.isfinite(value):
            m = self.margin(value)
            word = "better" if m > 0 else "worse" if m < 0 else "no better"
            s += f"; {value:.4g} is {abs(m):.1%} {word} than it"
        return s


def margin(value: float, baseline: float, mode: str) -> float:
    """Relative improvement over the baseline: (baseline - value) / baseline for "min", (value - baseline) /
    baseline for "max"; positive means better than trivial."""
    if mode not in ("min", "max"):
        raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
    if not baseline:
        raise ConfigError("a margin needs a non-zero baseline")
    d = (baseline - value) if mode == "min" else (value - baseline)
    return d / abs(baseline)


def _int(options: dict[str, Any], key: str, default: int) -> int:
    v = options.get(key, default)
    if isinstance(v, bool) or int(v) != v or int(v) <= 0:
        raise ConfigError(f"{key} must be a positive integer, got {v!r}")
    return int(v)


def trivial_baseline(task: str, options: dict[str, Any] | None = None, data_dir: str | None = None) -> Baseline | None:
    """The trivial baseline of ``task`` with its ``options`` (the space's task_options; missing ones take the task's
    defaults). None where there is none without the data (language models; music without ``data_dir``)."""
    from .base import get_task

    options = dict(options or {})
    entry = get_task(task)  # unknown task: the registry's one-line error
    opts = {**entry.defaults, **options}
    if task == "copy_nnrnn":
        return Baseline(copy_baseline_loss(_int(opts, "delay", 200)), "loss", "min",
                        "blanks, then uniform over 8 symbols: 10 ln 8 / (delay + 20)")
    if task == "copy_exprnn":
        return Baseline(copy_baseline_loss(_int(opts, "lag", 1000)), "loss", "min",
                        "blanks, then uniform over 8 symbols: 10 ln 8 / (lag + 20)")
    if task == "copy_urlstm":
        return Baseline(math.log(8), "loss", "min", "uniform over 8 symbols at the scored steps: ln 8")
    if task == "copy_lru":
        return Baseline(0.5, "accuracy", "max", "a coin per bit")
    if task == "adding":
        return Baseline(adding_baseline_mse(), "mse", "min", "always the mean sum 1: MSE 1/6")
    if task in CLASSES:
        return Baseline(1.0 / CLASSES[task], "accuracy", "max", f"uniform guess over {CLASSES[task]} classes")
    if task in MUSIC:
        return music_baseline(task, opts, data_dir) if data_dir else None
    return None


def music_baseline(task: str, options: dict[str, Any], data_dir: str) -> Baseline:
    """Per-step NLL (nats, summed over the 88 notes) of predicting each note independently with its frequency in the
    training set, evaluated on the validation set (the task's own windows and masks)."""
    import torch

    from .base import build_task

    t = build_task(task, data_dir=data_dir, seed=0, device="cpu", **{k: v for k, v in options.items()
                                                                    if k in ("window", "stride", "allow_pickle")})
    on = count = 0.0
    for b in t.batches("train", 0):
        m = torch.ones(b.y.shape[:2]) if b.mask is None else b.mask.float()
        on = on + (b.y * m.unsqueeze(-1)).sum(dim=(0, 1))
        count += float(m.sum())
    p = (on / max(count, 1.0)).clamp(1e-6, 1 - 1e-6)
    nll = steps = 0.0
    for b in t.batches("val", 0):
        m = torch.ones(b.y.shape[:2]) if b.mask is None else b.mask.float()
        per = -(b.y * p.log() + (1 - b.y) * (1 - p).log()).sum(-1)
        nll += float((per * m).sum())
        steps += float(m.sum())
    return Baseline(nll / max(steps, 1.0), "nll", "min", "each note with its training frequency, no context")


def summary_lines(exp, summary: dict[str, Any]) -> str:
    """The sweep summary's baseline lines: the trivial baseline of the sweep's task beside each model's confirmed
    best validation result (this sweep's), and the margin by which it beats (or misses) the baseline."""
    from spaces.registry import get_space

    space = get_space(exp.space)
    options = {**space.task_options, **exp.overrides}  # keys that are not task options are ignored
    metric = str(summary.get("metric", "")).removeprefix("val_")
    try:
        base = trivial_baseline(space.task, options, exp.data_dir)
    except Exception as e:  # noqa: BLE001 - a summary line must never fail the finished sweep
        return f"trivial baseline: not available ({e})"
    if base is None or base.metric != metric:
        return f"trivial baseline: none known for task {space.task!r} ({metric})"
    lines = [f"trivial baseline: {metric} {base.value:.4f} ({base.strategy})"]
    best = summary.get("best") or {}
    for model in list(getattr(exp, "models", ()) or space.models):
        v = (best.get(model) or {}).get("val_mean")
        if v is None or not math.isfinite(float(v)):
            lines.append(f"  {model}: no confirmed result (every candidate diverged or stopped early)")
            continue
        m = base.margin(float(v))
        verdict = "better" if m > 0 else "worse" if m < 0 else "no better"
        lines.append(f"  {model}: validation {metric} {float(v):.4f} vs baseline {base.value:.4f}: "
                     f"{abs(m):.1%} {verdict} than the baseline")
    return "\n".join(lines)
