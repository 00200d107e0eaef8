"""Schedulers and searchers by name (one registry each; an unknown name lists the valid ones).

Schedulers (``time_attr`` is the trial's reported iteration: one epoch, or one block of updates for streaming
synthetic tasks; ``max_t`` is the space's full budget in those units):

| name      | what it does                                      | options (defaults)                                 |
|-----------|---------------------------------------------------|----------------------------------------------------|
| asha      | async successive halving; stops the worst trials  | grace_period (1), reduction_factor (3), max_t      |
| hyperband | synchronous HyperBand brackets                    | reduction_factor (3), max_t                         |
| median    | stops a trial below the median of others so far   | grace_period (1), min_samples_required (3)          |
| pbt       | population-based training (mutates lr, restarts   | perturbation_interval (2); mutates loguniform      |
|           | from the better trials' checkpoints)              | params of the space                                 |
| fifo      | no early stopping                                 |                                                     |

Searchers:

| name    | what it does                                                                                   |
|---------|------------------------------------------------------------------------------------------------|
| tpe     | Optuna TPE, define-by-run (conditional parameters); fidelity-correct with ASHA (see below)     |
| cmaes   | Optuna CMA-ES (independent sampling for categorical/conditional parameters)                    |
| random  | Ray Tune random search over the space's Tune domains                                           |
| grid    | every grid point of the space, in order                                                        |

Fidelity rule: a trial that an early-stopping scheduler ended before the full budget, or that diverged, reaches
Optuna as PRUNED with its intermediate values, never as a COMPLETE trial scored at its low-fidelity value. TPE
then ranks it below every complete trial, as Optuna does for trials its own pruners stop.
"""
from __future__ import annotations

from typing import Any

from rnns.errors import ConfigError, unknown
from spaces.base import Space

from .space_adapter import SEED_ATTR, DefineByRun, grid_points, seed_configs, seed_param_values, tune_param_space
from .train import DIVERGED, EPOCH

SCHEDULERS = ("asha", "hyperband", "median", "pbt", "fifo")
SEARCHERS = ("tpe", "cmaes", "random", "grid")


def build_scheduler(name: str, *, metric: str, mode: str, max_t: int, grace_period: int = 1,
                    reduction_factor: float = 3, space: Space | None = None, seed: int = 0):
    from ray.tune import schedulers as S

    if name not in SCHEDULERS:
        raise unknown("scheduler", name, SCHEDULERS)
    if max_t < 1 or grace_period < 1 or grace_period > max_t:
        raise ConfigError(f"scheduler budget: need 1 <= grace_period ({grace_period}) <= max_t ({max_t})")
    if reduction_factor <= 1:
        raise ConfigError(f"reduction_factor must be > 1, got {reduction_factor}")
    # metric and mode come from the TuneConfig (Tune refuses them twice)
    common = dict(time_attr=EPOCH)
    if name == "asha":
        return S.ASHAScheduler(max_t=max_t, grace_period=grace_period, reduction_factor=reduction_factor, **common)
    if name == "hyperband":
        return S.HyperBandScheduler(max_t=max_t, reduction_factor=reduction_factor, **common)
    if name == "median":
        return S.MedianStoppingRule(grace_period=grace_period, min_samples_required=3, **common)
    if name == "pbt":
        import random as _random

        from ray import tune

        mutations = {k: tune.loguniform(*bounds) for k, bounds in pbt_bounds(space).items()}
        if not mutations:
            raise ConfigError("pbt needs at least one unconditional log-uniform parameter (such as lr) to mutate")
        _random.seed(seed)
        return S.PopulationBasedTraining(perturbation_interval=max(1, grace_period), hyperparam_mutations=mutations,
                                         **common)
    return S.FIFOScheduler()



def _fidelity_optuna_class():
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    class FidelityOptunaSearch(OptunaSearch):
        """OptunaSearch that tells Optuna PRUNED for trials that did not reach the full budget."""

        def __init__(self, *a, full_budget: int, seed_points: list[dict] = (), **kw):
            super().__init__(*a, **kw)
            self.full_budget = int(full_budget)
            # published configurations first, each marked so define-by-run can apply its own fixed settings
            for i, params in enumerate(seed_points):
                self._ot_study.enqueue_trial(params, user_attrs={SEED_ATTR: i}, skip_if_exists=False)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
            partial = bool(result) and (result.get(DIVERGED, 0) or int(result.get(EPOCH, 0)) < self.full_budget)
            if trial_id in self._ot_trials and trial_id not in self._completed_trials and partial and not error:
                self._report_last(trial_id, result)
                try:
                    self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
                finally:
                    self._completed_trials.add(trial_id)
                return
            super().on_trial_complete(trial_id, result, error)

        def _report_last(self, trial_id: str, result: dict) -> None:
            """Tune hands the result on which a scheduler stops a trial to on_trial_complete only (not to
            on_trial_result): it becomes the trial's last intermediate value, which TPE ranks pruned trials by. A
            diverged result's metric is a placeholder, not a measurement: not reported."""
            import math

            from ray.tune.result import TRAINING_ITERATION

            value, step = result.get(self.metric), result.get(TRAINING_ITERATION)
            if result.get(DIVERGED) or not isinstance(value, (int, float)) or step is None \
                    or not math.isfinite(value):
                return
            ot = self._ot_trials[trial_id]
            if int(step) not in self._ot_study._storage.get_trial(ot._trial_id).intermediate_values:
                ot.report(float(value), int(step))

    return FidelityOptunaSearch


def pbt_bounds(space: Space | None) -> dict[str, tuple[float, float]]:
    """The parameters PBT mutates: the space's unconditional log-uniform ones (learning rates, decays)."""
    return {p.config_key: (p.low, p.high) for p in (space.params if space else ())
            if p.kind == "loguniform" and not p.when}


def pbt_mutable(space: Space) -> tuple[str, ...]:
    return tuple(pbt_bounds(space))


def build_searcher(name: str, space: Space, models: tuple[str, ...], *, metric: str, mode: str, seed: int,
                   full_budget: int, max_concurrent: int, include_seeds: bool = True,
                   num_samples: int | None = None, pack: int = 1,
                   rename: dict[str, str] | None = None) -> tuple[Any, dict, int]:
    """(search_alg, param_space, number of points known in advance: seeds, or the whole grid).

    ``pack`` > 1: trial packs (:mod:`search.pack_tune`): Optuna's suggestions are drawn one per member and grouped
    by shape; random and grid points are grouped up front (the count returned is then the number of packs)."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    if name not in SEARCHERS:
        raise unknown("searcher", name, SEARCHERS)
    seeds = seed_configs(space, models) if include_seeds else []
    if name in ("tpe", "cmaes"):
        import optuna

        sampler = (optuna.samplers.TPESampler(seed=seed) if name == "tpe"
                   else optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False))
        pairs = seed_param_values(space, models) if include_seeds else []
        alg = _fidelity_optuna_class()(DefineByRun(space, models, [full for _, full in pairs]), metric=metric,
                                       mode=mode, sampler=sampler, full_budget=full_budget,
                                       seed_points=[params for params, _ in pairs])
        points = pairs
        if pack > 1:
            from .pack_tune import pack_searcher_class

            alg = pack_searcher_class()(alg, k=pack, total=num_samples or 1, metric=metric, mode=mode, rename=rename)
        return ConcurrencyLimiter(alg, max_concurrent=max_concurrent), {}, len(points)
    if name == "random":
        # Tune's own random sampler draws the configurations (conditional parameters through sample_from); they
        # run as preset points after the seed points, because Tune cannot mix presets with sample_from domains
        n = num_samples or 1
        pts = ([c for c, _, _ in seeds] + random_points(space, models, max(0, n - len(seeds)), seed))[:n]
        return _preset_search(pts, max_concurrent, pack, rename)
    limit = None if num_samples is None else max(0, num_samples - len(seeds))
    pts = [c for c, _, _ in seeds] + grid_points(space, models, limit)
    return _preset_search(pts, max_concurrent, pack, rename)


def _preset_search(pts: list[dict], max_concurrent: int, pack: int, rename: dict[str, str] | None):
    """Tune's variant generator over preset points; with ``pack`` > 1 the points grouped into packs. The count
    returned is the number of points (members); ``alg.rnnsweep_trials`` is the number of Tune trials."""
    from ray.tune.search import BasicVariantGenerator

    n = len(pts)
    if pack > 1:
        from .pack_tune import group_points

        pts = group_points(pts, pack, rename)
    alg = BasicVariantGenerator(points_to_evaluate=pts, max_concurrent=max_concurrent)
    alg.rnnsweep_trials = len(pts)
    return alg, preset_space(pts), n


def random_points(space: Space, models: tuple[str, ...], n: int, seed: int) -> list[dict]:
    """``n`` configurations drawn by Ray Tune's variant generator from the space's Tune domains."""
    import random as _random

    import numpy as np
    from ray.tune.search.variant_generator import generate_variants

    ps = tune_param_space(space, models)
    state = np.random.get_state(), _random.getstate()
    np.random.seed(seed % (2**32))  # sample_from bodies draw from numpy's global generator
    _random.seed(seed)
    try:
        out = []
        while len(out) < n:
            for _, spec in generate_variants({"config": ps}, random_state=np.random.RandomState(seed + len(out))):
                out.append({k: v for k, v in spec["config"].items() if v is not None})
        return out[:n]
    finally:
        np.random.set_state(state[0])
        _random.setstate(state[1])


def preset_space(points: list[dict]) -> dict:
    """Tune applies preset points on top of a param_space that must hold every key: None = not applicable, so a
    conditional key of one point never leaks into another."""
    return {k: None for p in points for k in p}
