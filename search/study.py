"""The sweep's Optuna study, exported to sqlite when the sweep ends (TPE and CMA-ES searchers).

During a sweep the study stays in memory: it is the searcher's state, which Tune pickles into the experiment folder
(``searcher-state-<session>.pkl``) and restores on ``--resume``. A database study passed to the searcher moved on
without that pickle (enqueued seed points, told results) and a resumed trial then received another trial's
parameters, so the database is written only from the state Tune itself keeps: when the sweep ends (finished, failed
or interrupted), the newest saved searcher state (or, where there is none, the searcher the driver holds) is copied
into ``<storage>/<sweep>/optuna.db``, study name = the sweep's name. The copy is made in a temporary file and moved
into place, so a reader never sees half a study, and a resumed sweep's export replaces the earlier one.

Each exported trial carries the user attribute ``tune_trial_id`` (the MLflow child run's tag ``rnnsweep.trial_id``).
Trials a scheduler stopped early or that diverged are PRUNED with their intermediate values, as the searcher told
Optuna (search.algorithms); enqueued seed points that never ran are left out.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

STUDY_FILE = "optuna.db"
TRIAL_ATTR = "tune_trial_id"


def _newest_state(folder: Path) -> dict | None:
    files = sorted(folder.glob("searcher-state-*.pkl"), key=lambda p: p.stat().st_mtime)
    for f in reversed(files):
        try:
            with open(f, "rb") as fh:
                state = pickle.load(fh)
        except Exception:  # noqa: BLE001 - a damaged file: try the previous one
            continue
        if isinstance(state, dict) and "_ot_study" in state:
            return state
    return None


def _live_state(search_alg: Any) -> dict | None:
    s = search_alg
    while s is not None and not hasattr(s, "_ot_study") and hasattr(s, "searcher"):
        s = s.searcher
    return s.__dict__ if s is not None and hasattr(s, "_ot_study") else None


def _fit_distributions(trials: list) -> None:
    """Make every trial's distributions hold its own values, as a database study requires: a published seed point
    keeps its own values when a sweep file narrows a range ([params.lr] low above the paper's lr), which the study
    in memory took as they were. A numeric range is widened for that trial; a choice gets the union of the choices
    and values over all trials (Optuna requires one set of choices per parameter)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    choices: dict[str, list] = {}
    for t in trials:
        for k, d in t.distributions.items():
            if isinstance(d, CategoricalDistribution):
                seen = choices.setdefault(k, [])
                for c in (*d.choices, *([t.params[k]] if k in t.params else [])):
                    if not any(type(c) is type(x) and c == x for x in seen):
                        seen.append(c)
    for t in trials:
        dists = dict(t.distributions)
        for k, d in dists.items():
            v = t.params.get(k)
            if isinstance(d, CategoricalDistribution):
                dists[k] = CategoricalDistribution(choices[k])
            elif isinstance(d, (FloatDistribution, IntDistribution)) and v is not None and not d.low <= v <= d.high \
                    and d.step in (None, 1):
                dists[k] = type(d)(low=min(d.low, v), high=max(d.high, v), log=d.log, step=d.step)
        t.distributions = dists


def export_study(search_alg: Any, experiment_dir: str | Path, name: str) -> str | None:
    """Write the study to ``experiment_dir/optuna.db`` (study ``name``); returns its sqlite URL, or None when there
    is no Optuna searcher state to export."""
    import optuna
    from optuna.trial import TrialState

    folder = Path(experiment_dir)
    state = _newest_state(folder) if folder.is_dir() else None
    if state is None:
        state = _live_state(search_alg)
    if state is None or not folder.is_dir():
        return None
    study = state["_ot_study"]
    by_number = {t.number: tid for tid, t in (state.get("_ot_trials") or {}).items()}
    trials = []
    for t in study.get_trials(deepcopy=True):
        if t.state == TrialState.WAITING:
            continue  # an enqueued seed point that Tune never started
        if t.number in by_number:
            t.set_user_attr(TRIAL_ATTR, by_number[t.number])
        trials.append(t)
    _fit_distributions(trials)
    dest = folder / STUDY_FILE
    fd, tmp = tempfile.mkstemp(prefix=".optuna-", suffix=".db", dir=folder)
    os.close(fd)
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}")
        out = optuna.create_study(storage=storage, study_name=name, directions=study.directions)
        for k, v in study.user_attrs.items():
            out.set_user_attr(k, v)
        out.add_trials(trials)
        storage.engine.dispose()  # the file is closed before it is moved into place
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return f"sqlite:///{dest.resolve()}"
