"""Start-up work done once: the task a sweep validates with (search.preflight's dry build) is the one its metric is
read from and its disk estimate uses; it used to be built again for the metric (a full read of a file-backed task)."""
from __future__ import annotations

import pytest

import datasets.base as B
from search import preflight
from search import sweep as S


@pytest.fixture
def builds(monkeypatch):
    calls = []
    real = B.build_task

    def counted(task, *a, **k):
        calls.append(task)
        return real(task, *a, **k)

    monkeypatch.setattr(B, "build_task", counted)
    monkeypatch.setattr(preflight, "_SPECS", {})
    return calls


def test_the_metric_and_the_disk_estimate_reuse_the_validation_build(builds):
    exp = S.Experiment(space="demo/copy", num_samples=2, max_budget=1, overrides={"updates": 2, "n_val": 10})
    space, models, budget = S.validate(exp)
    n = len(builds)
    assert n >= 1
    metric, mode = S._task_metric(space, exp.data_dir)
    assert (metric, mode) == ("loss", "min") and len(builds) == n, "the metric came from another build"
    run_space = S.sweep_space(space, budget, exp.overrides, exp.seed)
    assert S.sweep_disk_need(exp, space, run_space, models, budget) > 0 and len(builds) == n


def test_without_a_validation_build_the_metric_builds_the_task(builds):
    space = S.load_space("demo/copy")
    assert S._task_metric(space, None) == ("loss", "min") and len(builds) == 1
    assert preflight.built_spec(space.task, None) is None  # the metric's own small build is not a preflight build
