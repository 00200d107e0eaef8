"""Trial packs on the Ray Tune side: K member configurations of one shape trained as one Tune trial.

A pack is one Tune trial whose config holds its members (``{"pack": <json list of {id, config}>, "model": ...}``);
:class:`search.pack.PackTrainer` trains them as one batched model. Each member stays a trial of its own for
everyone else:

- the searcher: :class:`PackSearcher` wraps the sweep's searcher (Optuna TPE/CMA-ES), asks it for one
  configuration per member under the member's own id, groups the suggestions by shape signature
  (:func:`search.pack.signature`; configurations that cannot share a pack run in packs of their own) and hands
  each member's intermediate results and end back under that id: a member that ASHA stopped or that diverged
  reaches Optuna as PRUNED (the fidelity rule of :mod:`search.algorithms`). Random and grid points are grouped
  up front (:func:`group_points`).
- the scheduler: ASHA's rule is applied per member by a :class:`Rungs` table shared by every pack of the sweep (a
  named Ray actor): after each epoch a pack reports each member's metric and drops the members the table stops,
  exactly when Tune's ASHA would stop a trial with that result (same milestones, same cutoff). At the Tune level a
  pack sweep runs under FIFO: a pack ends when its last member ends.
- the record: :class:`search.tracking.MlflowTrialCallback` writes one child run per member (tag ``rnnsweep.pack``
  names its pack) and the sweep's result rows are the members' rows (:func:`member_rows`), so ``best``,
  ``compare``, the confirmation stage and ``reproduce`` see members as trials.

Each report of a pack carries every member's latest metrics under ``members`` (a member that ended keeps its last
ones, flagged ``ended``), so the last result alone says how every member ended.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

from rnns.errors import ConfigError

PACK = "pack"  # the config key holding a pack's members (JSON text: Tune treats lists in configs as grid specs)
MEMBERS = "members"  # the result key holding each member's metrics
PACK_SCHEDULERS = ("asha", "fifo")
META_FILE = "pack.json"


# ---- config encoding --------------------------------------------------------------------------------------------
def pack_config(members: list[tuple[str, dict]]) -> dict[str, Any]:
    model = members[0][1].get("model", "trial")
    return {PACK: json.dumps([{"id": i, "config": c} for i, c in members], sort_keys=True, default=str),
            "model": model}


def members_of(config: dict | None) -> list[tuple[str, dict]] | None:
    """[(member id, member config)] of a pack's Tune config, or None for an ordinary trial's."""
    if not config or not isinstance(config.get(PACK), str):
        return None
    return [(m["id"], m["config"]) for m in json.loads(config[PACK])]


def is_pack(config: dict | None) -> bool:
    return members_of(config) is not None


def member_signature(config: dict, rename: dict[str, str] | None = None) -> str:
    from .pack import signature
    from .space_adapter import to_config

    return signature(to_config(dict(config), rename))


def _group(items: list[tuple[str, dict]], k: int, sig: Callable[[dict], str]) -> list[list[tuple[str, dict]]]:
    buckets: dict[str, list[tuple[str, dict]]] = {}
    packs = []
    for mid, cfg in items:
        b = buckets.setdefault(sig(cfg), [])
        b.append((mid, cfg))
        if len(b) == k:
            packs.append(list(b))
            b.clear()
    packs.extend(b for b in buckets.values() if b)
    return packs


def group_points(points: list[dict], k: int, rename: dict[str, str] | None = None) -> list[dict]:
    """Preset points (random or grid search) as pack configs: up to ``k`` points of one shape signature per pack,
    in the order the points come (a pack is complete as soon as it has ``k`` members)."""
    items = [(f"p{i:05d}", {kk: v for kk, v in p.items() if v is not None}) for i, p in enumerate(points)]
    return [pack_config(g) for g in _group(items, k, lambda c: member_signature(c, rename))]


# ---- the searcher --------------------------------------------------------------------------------------------
def pack_searcher_class():
    from ray.tune.search import Searcher

    class PackSearcher(Searcher):
        """Packs of up to ``k`` members, each member a trial of the wrapped searcher (see the module docstring).

        ``total``: members in all (the sweep's --samples); then FINISHED. Each suggest draws from the wrapped
        searcher until one signature has ``k`` members waiting, or ``2 k`` draws were made (the fullest group
        then runs as a smaller pack); members drawn but not packed wait for the next pack."""

        def __init__(self, inner, *, k: int, total: int, metric: str, mode: str,
                     rename: dict[str, str] | None = None):
            super().__init__(metric=metric, mode=mode)
            self.inner, self.k, self.total, self.rename = inner, int(k), int(total), rename or {}
            self.drawn = 0
            self.waiting: dict[str, list[tuple[str, dict]]] = {}
            self.packs: dict[str, list[str]] = {}  # pack trial id -> member ids
            self.done: set[str] = set()  # member ids already told to the wrapped searcher as complete
            self.inner_finished = False

        def set_search_properties(self, metric, mode, config, **spec):
            self.inner.set_search_properties(metric, mode, config, **spec)
            return super().set_search_properties(metric, mode, config, **spec)

        def _draw(self, pack_id: str) -> bool:
            from ray.tune.search import Searcher as S

            if self.drawn >= self.total or self.inner_finished:
                return False
            mid = f"{pack_id}_m{self.drawn}"
            cfg = self.inner.suggest(mid)
            if cfg is None or cfg == S.FINISHED:
                self.inner_finished = cfg == S.FINISHED
                return False
            self.drawn += 1
            self.waiting.setdefault(member_signature(cfg, self.rename), []).append((mid, cfg))
            return True

        def suggest(self, trial_id: str):
            from ray.tune.search import Searcher as S

            draws = 0
            while (not any(len(b) >= self.k for b in self.waiting.values()) and draws < 2 * self.k
                   and self._draw(trial_id)):
                draws += 1
            full = [s for s, b in self.waiting.items() if b]
            if not full:
                return S.FINISHED if (self.drawn >= self.total or self.inner_finished) else None
            sig = max(full, key=lambda s: len(self.waiting[s]))
            members, self.waiting[sig] = self.waiting[sig][:self.k], self.waiting[sig][self.k:]
            self.packs[trial_id] = [m for m, _ in members]
            return pack_config(members)

        def _tell(self, mid: str, r: dict | None, error: bool = False) -> None:
            if mid in self.done:
                return
            self.done.add(mid)
            self.inner.on_trial_complete(mid, r, error=error)

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            epoch = int(result.get("epoch", 0) or 0)
            for mid, r in (result.get(MEMBERS) or {}).items():
                if mid in self.done or int(r.get("epoch", 0) or 0) != epoch or self.metric not in r:
                    continue
                self.inner.on_trial_result(mid, {**r, "training_iteration": epoch})
                if r.get("ended"):  # stopped by the rung table or diverged: Optuna learns it now
                    self._tell(mid, r)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            got = (result or {}).get(MEMBERS) or {}
            for mid in self.packs.get(trial_id, list(got)):
                self._tell(mid, got.get(mid), error=error and mid not in got)

        def get_state(self) -> dict:
            own = {k: v for k, v in self.__dict__.items() if k != "inner"}
            return {"own": own, "inner": self.inner.__dict__.copy()}

        def set_state(self, state: dict) -> None:
            self.__dict__.update(state["own"])
            self.inner.__dict__.update(state["inner"])

        def save(self, checkpoint_path: str) -> None:
            with open(checkpoint_path, "wb") as f:
                pickle.dump(self.get_state(), f)

        def restore(self, checkpoint_path: str) -> None:
            with open(checkpoint_path, "rb") as f:
                self.set_state(pickle.load(f))

    return PackSearcher


# ---- per-member ASHA ---------------------------------------------------------------------------------------------
class Rungs:
    """Tune's asynchronous successive halving rule (one bracket, as ``ASHAScheduler``) applied to members.

    Milestones ``grace_period * rf**i`` up to ``max_t`` (a member reporting ``max_t`` epochs has ended). The first time a member reports at or past a milestone it
    has not been recorded at (largest milestone first), its value is compared with the cutoff of the values already
    recorded there (the ``(1 - 1/rf)`` percentile, signs flipped for ``min``) and recorded; below the cutoff it is
    stopped. This is ``ray.tune.schedulers.async_hyperband._Bracket.on_result``'s rule, kept per member."""

    def __init__(self, *, mode: str, max_t: int, grace_period: int = 1, reduction_factor: float = 3):
        if mode not in ("min", "max"):
            raise ConfigError(f"mode must be min or max, got {mode!r}")
        self.sign = 1.0 if mode == "max" else -1.0
        self.rf, self.max_t = float(reduction_factor), int(max_t)
        # the milestones exactly as _Bracket computes them (floats; the last may equal max_t, where a member ends)
        n = int(math.log(max_t / grace_period) / math.log(self.rf) + 1)
        self.milestones: list[float] = [grace_period * self.rf ** k for k in reversed(range(n))]
        self.recorded: dict[float, dict[str, float]] = {m: {} for m in self.milestones}

    def cutoff(self, values: list[float]) -> float | None:
        import numpy as np

        if not values:
            return None
        import warnings

        with warnings.catch_warnings():  # all-NaN at a rung gives NaN (no stop), as Tune's cutoff does
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(np.nanpercentile(values, (1 - 1 / self.rf) * 100))

    def report(self, results: dict[str, tuple[int, float]]) -> list[str]:
        """``{member: (epoch, metric)}`` -> the members to stop now (in the order given)."""
        stop = []
        for mid, (epoch, value) in results.items():
            v = self.sign * float(value)
            if epoch >= self.max_t:  # the full budget: the member ends there (ASHA stops it without recording)
                continue
            for m in self.milestones:  # largest first
                if epoch < m or mid in self.recorded[m]:
                    continue
                c = self.cutoff(list(self.recorded[m].values()))
                if c is not None and v < c:
                    stop.append(mid)
                self.recorded[m][mid] = v
                break
        return stop


def rungs_actor_name(sweep: str) -> str:
    return f"rnnsweep-rungs-{sweep}"


def start_rungs(sweep: str, **kw):
    """The sweep's rung table as a named Ray actor (in the driver; it lives until ray.shutdown)."""
    import ray

    actor = ray.remote(num_cpus=0)(Rungs).options(name=rungs_actor_name(sweep), get_if_exists=True).remote(**kw)
    ray.get(actor.report.remote({}))  # started and answering before the first pack asks it
    return actor


# ---- memory ------------------------------------------------------------------------------------------------------
ACTIVATION_FACTOR = 24  # tensors of width H saved per step and layer by a packed step loop (gates, states, vmap)


def pack_bytes(pack) -> int:
    """An upper estimate of a pack's memory: weights, gradients and two optimiser slots per member, and the
    activations one update keeps for backward (batch x steps x width x layers x ``ACTIVATION_FACTOR`` per member)."""
    import torch

    first = next(iter(pack.members.values()))
    n = len(pack.alive or pack.ids)
    params = sum(p.numel() * p.element_size() for p in first.model.parameters())
    batch = next(iter(first._batches("train", 0)))
    x = batch.x
    B, T = int(x.shape[0]), int(x.shape[1]) if x.dim() > 1 else 1
    width = max([int(first.hidden_size or 0)] + [int(getattr(c, "output_size", 0)) for c in first.model.cells()])
    layers = max(1, len(first.model.cells()))
    elem = torch.finfo(torch.get_default_dtype()).bits // 8
    return n * (4 * params + B * T * width * layers * ACTIVATION_FACTOR * elem)


def free_bytes(device) -> int | None:
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_pack_memory(pack, fraction: float | None = None) -> None:
    """Refuse a pack whose estimate (:func:`pack_bytes`) exceeds 80% of the device's free memory (or of its share
    ``fraction`` of a GPU), in one line that says which --pack would fit."""
    import torch

    need = pack_bytes(pack)
    free = free_bytes(pack.device)
    if free is None:
        return
    if fraction and torch.device(pack.device).type == "cuda":
        free = min(free, int(fraction * torch.cuda.get_device_properties(pack.device).total_memory))
    room = int(0.8 * free)
    if need > room:
        n = len(pack.alive or pack.ids)
        fit = max(1, int(room // max(1, need // n)))
        raise ConfigError(f"a pack of {n} members needs about {need / 2**30:.2f} GiB, {free / 2**30:.2f} GiB free on "
                          f"{pack.device}: use --pack {fit} or fewer")


# ---- the trainable -------------------------------------------------------------------------------------------
def save_pack(pack, directory: str | Path) -> None:
    """Each member's trainer state as an ordinary trial checkpoint (``members/<id>/``, with its digest), and the
    pack's own state beside them: a member's checkpoint is read exactly as a single trial's."""
    import torch

    from .trainable import CheckpointError, save_state

    d = Path(directory)
    sd = pack.state_dict()
    for mid, msd in sd["members"].items():
        (d / MEMBERS / mid).mkdir(parents=True, exist_ok=True)
        save_state(msd, d / MEMBERS / mid)
    rest = {k: v for k, v in sd.items() if k != "members"}
    try:
        torch.save(rest, d / "pack.pt")
    except (OSError, RuntimeError) as e:
        raise CheckpointError(f"could not write the pack checkpoint in {d} ({type(e).__name__}): is the disk "
                              "full?") from None
    (d / META_FILE).write_text(json.dumps({"members": sorted(sd["members"])}))


def load_pack(pack, directory: str | Path) -> None:
    import torch

    from .trainable import read_checkpoint

    d = Path(directory)
    meta = json.loads((d / META_FILE).read_text())
    rest = torch.load(d / "pack.pt", map_location=pack.device, weights_only=True)
    members = {mid: read_checkpoint(d / MEMBERS / mid) for mid in meta["members"]}
    pack.load_state_dict({**rest, "members": members})


def member_checkpoint_dir(directory: str | Path, member: str) -> Path:
    return Path(directory) / MEMBERS / member


def train_pack(config: dict[str, Any], *, data_dir: str | None = None, device: str | None = None,
               cpus_per_trial: int | None = 1, gpu_memory_fraction: float | None = None,
               rename: dict[str, str] | None = None, rungs: str | None = None, plugins=(), **_ignored) -> None:
    """Tune function trainable of a pack (bind the keyword arguments with ``tune.with_parameters``)."""
    import torch
    from ray import tune

    from .pack import PackTrainer
    from .space_adapter import to_config
    from .trainable import WORST, _threads
    from .train import DIVERGED, DIVERGED_REASON, EPOCH, val_key

    members = members_of(config)
    if members is None:  # an ordinary trial in a pack sweep (the confirmation stage)
        from .trainable import train_trial

        return train_trial(config, data_dir=data_dir, device=device, cpus_per_trial=cpus_per_trial,
                           gpu_memory_fraction=gpu_memory_fraction, rename=rename, plugins=plugins)
    from .plugins import load_plugins

    load_plugins(plugins)
    _threads(cpus_per_trial)
    if gpu_memory_fraction and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(float(gpu_memory_fraction))
    ids = [m for m, _ in members]
    pack = PackTrainer([to_config(dict(c), rename) for _, c in members], data_dir=data_dir, device=device, ids=ids)
    check_pack_memory(pack, gpu_memory_fraction)
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            load_pack(pack, d)
    table = None
    if rungs:
        import ray

        table = ray.get_actor(rungs)
    first = pack.members[ids[0]]
    spec = first.task.spec
    metric = val_key(spec.metric)
    worst = -WORST if spec.mode == "max" else WORST
    latest: dict[str, dict[str, Any]] = {}
    while pack.alive and pack.epoch < pack.epochs:
        got = pack.run_epoch()
        for mid, m in got.items():
            m = dict(m)
            if m.get(DIVERGED):
                m.setdefault(metric, worst)
                m.setdefault(f"best_val_{spec.metric}", worst)
                m.update(ended=1, end_reason="diverged")
            latest[mid] = m
        if table is not None:
            # diverged members too, at their worst value, as Tune's ASHA sees a diverged trial's last report
            import ray

            seen = {mid: (int(latest[mid][EPOCH]), float(latest[mid][metric])) for mid in got}
            for mid in ray.get(table.report.remote(seen)):
                if mid in pack.alive:
                    pack.drop(mid)
                    latest[mid].update(ended=1, end_reason="stopped")
        for mid in list(latest):
            if mid not in pack.alive and not latest[mid].get("ended"):
                latest[mid].update(ended=1, end_reason=str(pack.ended.get(mid, "ended")))
        alive_vals = [latest[m][metric] for m in pack.alive if m in latest]
        best = (max if spec.mode == "max" else min)(alive_vals or [worst])
        out = {EPOCH: pack.epoch, metric: best, f"best_val_{spec.metric}": best, "pack_size": len(ids),
               "pack_alive": len(pack.alive), DIVERGED: int(all(latest[m].get(DIVERGED) for m in latest)),
               MEMBERS: {m: dict(v) for m, v in latest.items()}}
        if out[DIVERGED]:
            out[DIVERGED_REASON] = "every member of the pack diverged"
        with tempfile.TemporaryDirectory() as d:
            save_pack(pack, d)
            tune.report(out, checkpoint=tune.Checkpoint.from_directory(d))


# ---- results ---------------------------------------------------------------------------------------------------
def member_rows(result, rename: dict[str, str] | None = None) -> list[dict[str, Any]] | None:
    """The sweep's result rows of one Tune result of a pack (one row per member), or None for an ordinary trial."""
    from .space_adapter import to_config

    members = members_of(result.config)
    if members is None:
        return None
    last = (result.metrics or {}).get(MEMBERS) or {}
    hist = result.metrics_dataframe
    rows = []
    for mid, cfg in members:
        m = dict(last.get(mid) or {})
        h = None
        if hist is not None:
            pre = f"{MEMBERS}/{mid}/"
            cols = {c: c[len(pre):] for c in hist.columns if c.startswith(pre)}
            if cols:
                h = hist[list(cols)].rename(columns=cols).dropna(how="all")
                if "epoch" in h:
                    h = h.drop_duplicates(subset="epoch")
        rows.append({"config": to_config(dict(cfg), rename), "metrics": m, "error": result.error is not None and not m,
                     "checkpoint": result.checkpoint, "member": mid, "trial_id": mid, "history": h,
                     "pack": (result.metrics or {}).get("trial_id")})
    return rows


def check_pack_options(k: int, scheduler: str, searcher: str) -> None:
    if k < 1:
        raise ConfigError(f"--pack must be >= 1, got {k}")
    if k > 1 and scheduler not in PACK_SCHEDULERS:
        raise ConfigError(f"--pack {k} works with the schedulers {', '.join(PACK_SCHEDULERS)} (members are stopped "
                          f"one by one by ASHA's rule), not {scheduler!r}: use --scheduler asha, or --pack 1")


def default_pack_env() -> int:
    return int(os.environ.get("RNNSWEEP_PACK", "1") or 1)
