"""What a sweep prints while it runs: one compact line per trial event and a progress line.

The default view of ``run_search.py sweep`` (``--quiet`` prints only the summary; ``--verbose`` shows Ray Tune's own
status tables and worker logs instead). A Ray Tune :class:`~ray.tune.Callback` on the driver; Tune's reporter is
set to ``verbose=0`` beside it. Plain lines, flushed, no cursor movement: the same text on a terminal, in CI and in
a ``nohup`` log. Example::

    [   0:04] #1 rnn started: alpha=0.99 hidden_size=64 lr=0.001 nonlin=tanh
    [   0:09] #1 rnn epoch 1 (rung): val_loss 0.2311
    [   0:11] #2 lstm stopped by ASHA at epoch 1: val_loss 0.2476
    [   0:31] #1 rnn finished 6 epochs: val_loss 0.0123 (best so far)
    [   0:31] progress: 2/8 done, 2 running, 4 pending | best val_loss 0.0123 (#1 rnn lr=0.001 ...) | 0:31, ETA <= 1:40

The ETA is an upper bound from the budget: the epochs still allowed to every pending and running trial at the
epoch rate measured so far (a scheduler that stops trials early makes the sweep end sooner).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

try:  # a Ray Tune callback where Ray is installed; the class stays importable (and testable) without it
    from ray.tune import Callback as _Base
except Exception:  # noqa: BLE001
    _Base = object

SHOWN_CONFIG_KEYS = 6  # configuration values shown in a "started" line (the searched ones first)


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def rungs(grace_period: int, reduction_factor: float, max_t: int) -> set[int]:
    """ASHA's milestones: grace * rf^k below the full budget."""
    out, r = set(), float(grace_period)
    while r < max_t and len(out) < 64:
        out.add(int(round(r)))
        r *= reduction_factor
    return out


class _Member:
    """A member of a trial pack seen as a trial (``search.pack_tune``): its lines read as an ordinary trial's."""

    def __init__(self, pack, mid: str, config: dict, result: dict | None):
        self.trial_id, self.config, self.last_result = mid, config, result or {}
        self.status, self.error_file = pack.status, getattr(pack, "error_file", None)


def _members(trial) -> list[_Member] | None:
    from .pack_tune import MEMBERS, members_of

    ms = members_of(getattr(trial, "config", None))
    if ms is None:
        return None
    last = (getattr(trial, "last_result", None) or {}).get(MEMBERS) or {}
    return [_Member(trial, mid, cfg, last.get(mid)) for mid, cfg in ms]


def _expand(trials) -> list:
    out = []
    for t in trials:
        ms = _members(t)
        out.extend(ms if ms is not None else [t])
    return out


class ProgressCallback(_Base):
    """Prints trial events, a progress line every ``interval`` seconds and one at the end.

    A trial pack's members are shown as the trials they are (one line each, numbered in turn)."""

    def __init__(self, *, metric: str, mode: str, num_samples: int, budget: int, searched: tuple[str, ...] = (),
                 scheduler: str = "asha", rung_epochs: set[int] | None = None, phase: str = "",
                 interval: float = 30.0, stream: TextIO | None = None, rename: dict[str, str] | None = None):
        self.metric, self.mode, self.num_samples, self.budget = metric, mode, num_samples, budget
        self.searched = tuple(searched)
        self.scheduler = scheduler.upper() if scheduler != "fifo" else "the scheduler"
        self.rung_epochs = rung_epochs or set()
        self.phase = f"{phase} " if phase else ""
        self.interval = interval
        self.stream = stream
        self.rename = rename or {}
        self.t0 = time.time()
        self.numbers: dict[str, int] = {}
        self.epochs: dict[str, int] = {}
        self.done: set[str] = set()
        self.best: tuple[float, str] | None = None
        self.last_progress = self.t0  # the first periodic line after ``interval``

    # ---- helpers -------------------------------------------------------------------------------------------------
    def _out(self, text: str) -> None:
        print(f"[{clock(time.time() - self.t0):>7}] {self.phase}{text}", file=self.stream or sys.stdout, flush=True)

    def _label(self, trial) -> str:
        tid = trial.trial_id
        if tid not in self.numbers:
            self.numbers[tid] = len(self.numbers) + 1
        seed = f" seed {trial.config['seed']}" if self.phase and "seed" in trial.config else ""
        return f"#{self.numbers[tid]} {trial.config.get('model', 'trial')}{seed}"

    def _config_text(self, cfg: dict[str, Any]) -> str:
        keys = [k for k in self.searched if k in cfg and cfg[k] is not None and k != "model"]
        keys = sorted(keys)[:SHOWN_CONFIG_KEYS]
        return " ".join(f"{self.rename.get(k, k)}={_short(cfg[k])}" for k in keys)

    def _value(self, result: dict | None) -> float | None:
        v = (result or {}).get(self.metric)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

    def _better(self, v: float) -> bool:
        return self.best is None or (v > self.best[0] if self.mode == "max" else v < self.best[0])

    def _each_open_member(self, hook, iteration, trials, trial, **info) -> bool:
        """For a trial pack: ``hook`` on each member not ended yet; False for an ordinary trial."""
        ms = _members(trial)
        if ms is None:
            return False
        for m in ms:
            if m.trial_id not in self.done:
                hook(iteration, trials, m, **info)
        return True

    # ---- Tune callback hooks -------------------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        ms = _members(trial)
        if ms is not None:
            for m in ms:
                self.on_trial_start(iteration, trials, m, **info)
            return
        if self.phase:  # confirmation runs repeat a known configuration: their end is what matters
            self._label(trial)
            return
        cfg = self._config_text(trial.config)
        self._out(f"{self._label(trial)} started" + (f": {cfg}" if cfg else ""))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        ms = _members(trial)
        if ms is not None:
            ep = int(result.get("epoch", 0) or 0)
            for m in ms:
                r = (result.get("members") or {}).get(m.trial_id)
                if r is None or m.trial_id in self.done or int(r.get("epoch", 0) or 0) != ep:
                    continue
                m.last_result = r
                self.on_trial_result(iteration, trials, m, r, **info)
                if r.get("ended"):  # stopped by the rung table, or diverged: its end is said now
                    self.on_trial_complete(iteration, trials, m, **info)
            return
        ep = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
        self.epochs[trial.trial_id] = ep
        if result.get("diverged"):
            why = str(result.get("diverged_reason", "") or "non-finite loss")[:120]
            self._out(f"{self._label(trial)} diverged at epoch {ep}: {why}")
            return
        v = self._value(result)
        if ep in self.rung_epochs and v is not None:
            self._out(f"{self._label(trial)} epoch {ep} (rung): {self.metric} {v:.4g}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self._each_open_member(self.on_trial_complete, iteration, trials, trial, **info):
            return
        self.done.add(trial.trial_id)
        result = trial.last_result or {}
        if result.get("diverged"):  # said when it was reported
            return
        ep = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
        v = self._value(result)
        val = f"{self.metric} {v:.4g}" if v is not None else f"no {self.metric}"
        if ep >= self.budget:
            best = ""
            if v is not None and self._better(v):
                self.best = (v, f"{self._label(trial)} {self._config_text(trial.config)}".strip())
                best = " (best so far)"
            self._out(f"{self._label(trial)} finished {ep} epochs: {val}{best}")
        else:
            self._out(f"{self._label(trial)} stopped by {self.scheduler} at epoch {ep}: {val}")

    def on_trial_error(self, iteration, trials, trial, **info):
        if self._each_open_member(self.on_trial_error, iteration, trials, trial, **info):
            return
        self.done.add(trial.trial_id)
        from .tracking import failure_reason

        text = ""
        try:
            if getattr(trial, "error_file", None):
                text = Path(trial.error_file).read_text()
        except OSError:
            pass
        kind, why = failure_reason(text)
        self._out(f"{self._label(trial)} failed ({'out of memory' if kind == 'oom' else 'error'}): {why[:200]}")

    def on_step_end(self, iteration, trials, **info):
        if time.time() - self.last_progress >= self.interval:
            self._progress(trials)

    def on_experiment_end(self, trials, **info):
        self._progress(trials, force=True)

    # ---- the progress line ---------------------------------------------------------------------------------------
    def progress_line(self, trials) -> str:
        trials = _expand(trials)  # a pack's members count as the trials they are
        # a trial that just completed may still say RUNNING while the callbacks run: count it by our own record
        done = len(self.done | {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")})
        running = sum(1 for t in trials if t.status == "RUNNING" and t.trial_id not in self.done)
        pending = max(0, self.num_samples - done - running)
        elapsed = time.time() - self.t0
        spent = sum(self.epochs.values())
        left = pending * self.budget + sum(max(0, self.budget - self.epochs.get(t.trial_id, 0)) for t in trials
                                           if t.status == "RUNNING" and t.trial_id not in self.done)
        if done >= self.num_samples or (running == 0 and pending == 0):
            eta = "done"
        elif spent > 0:  # epochs of all trials together per second, concurrency included
            eta = f"ETA <= {clock(elapsed / spent * left)}"
        else:
            eta = "ETA -"
        best = (f"best {self.metric} {self.best[0]:.4g} ({self.best[1]})" if self.best
                else "no full-budget trial yet")
        return (f"progress: {done}/{self.num_samples} done, {running} running, {pending} pending | {best} | "
                f"{clock(elapsed)}, {eta}")

    def _progress(self, trials, force: bool = False) -> None:
        if not trials and not force:
            return
        self.last_progress = time.time()
        self._out(self.progress_line(trials))


def callbacks(verbose: int, *, metric: str, mode: str, num_samples: int, budget: int, space=None,
              scheduler: str = "asha", grace_period: int = 1, reduction_factor: float = 3.0, phase: str = "",
              rename: dict[str, str] | None = None) -> list:
    """The progress callback for a sweep's verbosity (0 quiet, 1 events: the default, 2 Ray's own output)."""
    if verbose != 1:
        return []
    searched = tuple(sorted({p.config_key for p in space.params})) if space is not None else ()
    rung_epochs = rungs(grace_period, reduction_factor, budget) if scheduler in ("asha", "hyperband") else set()
    return [ProgressCallback(metric=metric, mode=mode, num_samples=num_samples, budget=budget, searched=searched,
                             scheduler=scheduler, rung_epochs=rung_epochs, phase=phase, rename=None)]
