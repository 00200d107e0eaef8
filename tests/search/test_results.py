"""`best` and `compare` read MLflow alone and set each model's best beside its paper's number."""
from __future__ import annotations

import json

from search import results, tracking
import pytest

from spaces.published import PUBLISHED, published_for


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("store")
    return _store(tmp_path), tmp_path


def _store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    c = tracking.client(uri)
    exp = tracking.ensure_experiment(c, "jsb", uri)
    for model, val, test in (("rru", 7.9, 8.0), ("lstm", 8.4, 8.5)):
        for _ in range(2):
            t = c.create_run(exp, tags={tracking.KIND: "trial", tracking.MODEL: model})
            c.log_metric(t.info.run_id, "budget_used", 5.0)
        r = c.create_run(exp, tags={tracking.KIND: "best", tracking.BEST: "true", tracking.MODEL: model,
                                    tracking.SWEEP: "s1", tracking.TAG + "metric": "val_nll",
                                    tracking.TAG + "mode": "min"})
        rid = r.info.run_id
        for k, v in (("val_nll_mean", val), ("val_nll_se", 0.01), ("test_nll_mean", test), ("test_nll_se", 0.02)):
            c.log_metric(rid, k, v)
        rec = {"task": "jsb", "model": model, "metric": "val_nll", "config": {"task": "jsb", "model": model, "lr": 1e-3},
               "seeds": [{"seed": 1, "val_nll": val}]}
        p = tmp_path / model / "best_config.json"
        p.parent.mkdir()
        p.write_text(json.dumps(rec))
        c.log_artifact(rid, str(p))
    # a worse, older best for rru must not win
    old = c.create_run(exp, tags={tracking.KIND: "best", tracking.BEST: "true", tracking.MODEL: "rru",
                                  tracking.TAG + "metric": "val_nll", tracking.TAG + "mode": "min"})
    c.log_metric(old.info.run_id, "val_nll_mean", 9.9)
    return c


def test_compare_has_papers_numbers_and_budget(store):
    c, tmp_path = store
    rows = {r["model"]: r for r in results.compare_rows(c, "jsb")}
    assert rows["rru"]["published"] == 7.72 and rows["lstm"]["published"] == 8.33
    assert rows["rru"]["val_mean"] == 7.9 and rows["rru"]["test_mean"] == 8.0
    assert rows["rru"]["trials"] == 2 and rows["rru"]["epochs_spent"] == 10.0
    text = results.compare_table(list(rows.values()))
    assert "7.72" in text and "RRU README" in text
    results.write_compare(list(rows.values()), str(tmp_path / "c.md"))
    md = (tmp_path / "c.md").read_text().splitlines()
    assert md[0].startswith("| model |") and md[1].startswith("|---") and len(md) == 4
    results.write_compare(list(rows.values()), str(tmp_path / "c.csv"))
    assert (tmp_path / "c.csv").read_text().splitlines()[0].startswith("model,")


def test_best_table_picks_the_best_tagged_run(store):
    c, _ = store
    text = results.best_table(c, "jsb")
    assert "7.9000 ± 0.0100" in text and "9.9" not in text


def test_published_lookup_respects_task_options():
    assert published_for("ptb_char", "nnrnn", {"bptt": 300}).value == 1.42
    assert published_for("ptb_char", "nnrnn", {"bptt": 150}).value == 1.40
    assert published_for("ptb_char", "rru", {"bptt": 150}).value == 1.27
    assert published_for("copy_nnrnn", "lstm") is None
    assert all(0 < p.value for p in PUBLISHED)
