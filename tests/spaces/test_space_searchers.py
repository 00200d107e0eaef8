"""Every space in the registry works with every searcher: 20 sampled configurations each are valid trial
configurations whose conditional parameters appear only where they apply, and each builds its model; one
configuration per space trains one step on tiny shapes (real data where shipped, small generated files otherwise)."""
from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "datasets"))
from tiny_data import built, tiny_root  # noqa: E402

from conftest import data_marks  # noqa: E402

from rnns.model import SequenceModel  # noqa: E402
from search.config import known_keys, split_config  # noqa: E402
from search.space_adapter import (DefineByRun, grid_points, rename_map, seed_param_values, to_config,  # noqa: E402
                                  tune_param_space)
from search.train import Trainer  # noqa: E402
from spaces.base import smoke_config  # noqa: E402
from spaces.registry import spaces  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACES = sorted(spaces())
# a space on a task that reads the shipped data (MNIST, PTB, music) skips, with the reason, where that data is absent
SPACE_PARAMS = [pytest.param(n, marks=data_marks(spaces()[n].task)) for n in SPACES]
N = 20


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    import torchvision

    mp = pytest.MonkeyPatch()
    # torchvision checks the md5 of the real CIFAR batches; the generated ones cannot match it
    mp.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    # the Trainer builds its task through the session memo: real datasets are loaded once, not once per model
    import search.train

    mp.setattr(search.train, "build_task", lambda name, *, data_dir=None, seed=0, device="cpu", allow_test=False,
               **opts: built(name, data_dir, **opts))
    yield tiny_root(tmp_path_factory.mktemp("data"))
    mp.undo()


def _optuna_samples(space, sampler):
    models = tuple(space.models)
    pairs = seed_param_values(space, models)
    dbr = DefineByRun(space, models, [full for _, full in pairs])
    study = optuna.create_study(sampler=sampler)
    for i, (params, _) in enumerate(pairs):
        study.enqueue_trial(params, user_attrs={"rnnsweep_seed_point": i})
    out = []
    for i in range(N):
        t = study.ask()
        constants = dbr(t)
        out.append({**t.params, **constants})
        study.tell(t, float(i % 7))
    return out


def _random_samples(space):
    from ray.tune.search.variant_generator import generate_variants

    ps = tune_param_space(space, tuple(space.models))
    out = []
    while len(out) < N:
        for _, spec in generate_variants({"config": ps}):
            out.append(dict(spec["config"]))
    return out[:N]


def _samples(space, searcher):
    if searcher == "tpe":
        return _optuna_samples(space, optuna.samplers.TPESampler(seed=0))
    if searcher == "cmaes":
        return _optuna_samples(space, optuna.samplers.CmaEsSampler(seed=0, warn_independent_sampling=False))
    if searcher == "random":
        return _random_samples(space)
    return grid_points(space, tuple(space.models), N)


def _check_conditions(space, cfg):
    for p in space.params:
        writers = [q for q in space.params if q.config_key == p.config_key]
        applies = any(q.applies(cfg) for q in writers)
        assert (p.config_key in cfg) == applies, (space.name, p.name, cfg.get("model"))


@pytest.mark.parametrize("searcher", ["tpe", "cmaes", "random", "grid"])
@pytest.mark.parametrize("name", SPACE_PARAMS)
def test_samples_are_valid_configurations(name, searcher, data_root):
    space = spaces()[name]
    samples = _samples(space, searcher)
    assert samples
    rename = rename_map(space)
    spec = None
    for raw in samples:
        cfg = to_config(raw, rename)
        assert cfg["task"] == space.task and cfg["model"] in space.models
        _check_conditions(space, cfg)
        split_config(cfg)  # every key belongs to the task, the model, the optimiser or the trainer
        small = smoke_config(space, cfg, known_keys(space.task, cfg["model"]))
        sc = split_config(small)
        if spec is None:
            spec = built(space.task, data_root, **sc.task_opts).spec
        opts = dict(sc.model_opts)
        if "hidden_size" not in opts:
            opts["hidden_size"] = 8
        SequenceModel(sc.model, spec.input_size, spec.output_size, spec.readout,
                      token_input=spec.input_kind == "tokens", **opts)


@pytest.mark.parametrize("name", SPACE_PARAMS)
def test_one_training_step_per_model(name, data_root):
    space = spaces()[name]
    models = tuple(space.models)
    seen = set()
    for raw in _optuna_samples(space, optuna.samplers.RandomSampler(seed=1)):
        cfg = to_config(raw, rename_map(space))
        if cfg["model"] in seen:
            continue
        seen.add(cfg["model"])
        small = smoke_config(space, cfg, known_keys(space.task, cfg["model"]))
        small.update(max_batches=1, epochs=1)
        small.pop("param_budget", None)
        small.setdefault("hidden_size", 8)
        tr = Trainer(small, data_dir=data_root, device="cpu")
        out = tr.train_epoch()
        assert out["train_loss"] == out["train_loss"], (name, cfg["model"])  # finite, not NaN
        tr.evaluate("val")
    assert seen, name
    assert seen <= set(models)
