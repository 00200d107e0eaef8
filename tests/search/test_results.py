"""`best` and `compare` read MLflow alone and set each model's best beside its paper's number."""
from __future__ import annotations

import json

from search import results, tracking
import pytest

from rnns.errors import ConfigError

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
            t = c.create_run(exp, tags={tracking.KIND: "trial", tracking.MODEL: model, tracking.SWEEP: "s1"})
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


# ---- comparable results only, machine-readable output (issue 15, items 7 and 8) -----------------------------------
def _best(c, exp, tmp_path, *, sweep, space, model, val, seeds, delay, epochs, tag_group=True):
    cfg = {"task": "copy_nnrnn", "model": model, "lr": 1e-3, "delay": delay, "epochs": epochs}
    tags = {tracking.KIND: "best", tracking.BEST: "true", tracking.MODEL: model, tracking.SWEEP: sweep,
            tracking.TAG + "space": space, tracking.TAG + "metric": "val_loss", tracking.TAG + "mode": "min"}
    if tag_group:
        tags[results.GROUP] = results.group_of(space, "copy_nnrnn", cfg)
    r = c.create_run(exp, tags=tags)
    c.log_metric(r.info.run_id, "val_loss_mean", val)
    c.log_metric(r.info.run_id, "seeds", float(seeds))
    rec = {"task": "copy_nnrnn", "space": space, "model": model, "metric": "val_loss", "config": cfg, "sweep": sweep,
           "seeds": [{"seed": i + 1, "val_loss": val} for i in range(seeds)]}
    p = tmp_path / r.info.run_id / "best_config.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(rec))
    c.log_artifact(r.info.run_id, str(p))
    return r.info.run_id


def _sweep(c, exp, sweep, models, trials):
    c.create_run(exp, tags={tracking.KIND: "sweep", tracking.SWEEP: sweep, tracking.TAG + "models": models,
                            tracking.TAG + "scheduler": "asha"})
    for model, status, epoch, extra in trials:
        t = c.create_run(exp, tags={tracking.KIND: "trial", tracking.MODEL: model, tracking.SWEEP: sweep,
                                    tracking.STATUS: status, **extra})
        c.log_metric(t.info.run_id, "epoch", float(epoch))
        c.log_metric(t.info.run_id, "budget_used", float(epoch))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """The issue's case: demo/copy (delay 20, 6 epochs, two seeds confirmed; ASHA stopped every LSTM trial), then a
    1-epoch nnrnn/copy sweep at delay 200 whose one-seed loss is lower only because the task differs, and a
    comparable demo sweep with a better single estimate."""
    tmp_path = tmp_path_factory.mktemp("mixed")
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    c = tracking.client(uri)
    exp = tracking.ensure_experiment(c, "copy_nnrnn", uri)
    _sweep(c, exp, "demo", "lstm,rnn", [("rnn", "completed", 6, {}), ("lstm", "stopped_early", 1, {}),
                                        ("lstm", "stopped_early", 3, {}),
                                        ("lstm", "diverged", 2, {tracking.TAG + "diverged_reason": "loss nan"})])
    ids = {"demo": _best(c, exp, tmp_path, sweep="demo", space="demo/copy", model="rnn", val=0.05, seeds=2, delay=20,
                         epochs=6)}
    _sweep(c, exp, "demo-single", "rnn", [("rnn", "completed", 6, {})])
    ids["demo-single"] = _best(c, exp, tmp_path, sweep="demo-single", space="demo/copy", model="rnn", val=0.04,
                               seeds=1, delay=20, epochs=6, tag_group=False)  # an older record: group from its file
    _sweep(c, exp, "long", "rnn,lstm", [("rnn", "completed", 1, {}),
                                        ("lstm", "failed", 1, {tracking.TAG + "failure_reason": "CUDA out of memory"})])
    ids["long"] = _best(c, exp, tmp_path, sweep="long", space="nnrnn/copy", model="rnn", val=0.03, seeds=1,
                        delay=200, epochs=1)
    return c, ids, uri, tmp_path


def test_best_ranks_only_comparable_sweeps_and_prefers_confirmed(mixed):
    c, ids, *_ = mixed
    rep = results.best_report(c, "copy_nnrnn", sweep="demo")
    assert [r["run_id"] for r in rep["rows"]] == [ids["demo"]]  # not the delay-200 run, not the one-seed estimate
    assert rep["rows"][0]["confirmed"] and rep["rows"][0]["sweep"] == "demo"
    assert rep["scope"]["groups"] == ["demo/copy | delay=20, n_test=1000, n_val=1000, onehot=False, updates=100 | "
                                      "6 epochs"]  # task options with their defaults filled in; batch size left out
    why = {x["model"]: x["reason"] for x in rep["without_full_budget"]}
    assert why == {"lstm": "2 stopped by ASHA at epoch 1, 3; 1 diverged (loss nan)"}
    text = results.best_table(c, "copy_nnrnn", sweep="demo")
    assert "lstm: no result: 2 stopped by ASHA at epoch 1, 3; 1 diverged (loss nan)" in text
    assert "0.0300" not in text and "0.0400" not in text


def test_default_scope_is_the_latest_sweep_and_any_sweep_widens(mixed):
    c, ids, *_ = mixed
    rep = results.best_report(c, "copy_nnrnn")
    assert rep["scope"]["sweep"] == "long" and [r["run_id"] for r in rep["rows"]] == [ids["long"]]
    assert rep["without_full_budget"] == [{"model": "lstm", "reason": "1 failed (CUDA out of memory)"}]
    wide = results.best_report(c, "copy_nnrnn", any_sweep=True)
    assert [r["run_id"] for r in wide["rows"]] == [ids["demo"]]  # a confirmed mean outranks single estimates
    assert results.best_runs(c, "copy_nnrnn", sweep="demo-single")["rnn"].info.run_id == ids["demo"]
    with pytest.raises(ConfigError, match="no best run of sweep 'dem'"):
        results.best_report(c, "copy_nnrnn", sweep="dem")


def test_compare_counts_only_comparable_trials(mixed):
    c, ids, *_ = mixed
    rows = results.compare_rows(c, "copy_nnrnn", sweep="demo")
    assert len(rows) == 1 and rows[0]["sweep"] == "demo" and rows[0]["seeds"] == 2
    assert rows[0]["trials"] == 2 and rows[0]["epochs_spent"] == 12.0  # demo + demo-single rnn trials, not long's


def _cli(args, capsys):
    import run_search

    rc = run_search.main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_best_and_compare_json_csv_and_out(mixed, capsys, tmp_path):
    c, ids, uri, _ = mixed
    rc, out, _ = _cli(["best", "--task", "copy_nnrnn", "--mlflow-uri", uri, "--sweep", "demo", "--format", "json"],
                      capsys)
    assert rc == 0
    data = json.loads(out)
    assert set(data) == {"task", "scope", "rows", "without_full_budget"}
    assert set(data["rows"][0]) == set(results.BEST_FIELDS) and data["rows"][0]["run_id"] == ids["demo"]
    rc, out, _ = _cli(["compare", "--task", "copy_nnrnn", "--mlflow-uri", uri, "--sweep", "demo", "--format", "json"],
                      capsys)
    assert rc == 0 and list(json.loads(out)[0]) == list(results.COMPARE_FIELDS)
    rc, out, _ = _cli(["compare", "--task", "copy_nnrnn", "--mlflow-uri", uri, "--format", "csv"], capsys)
    assert rc == 0 and out.splitlines()[0] == ",".join(results.COMPARE_FIELDS) and len(out.splitlines()) == 2
    import csv

    row = next(csv.DictReader(out.splitlines()))
    assert row["confirmed"] == "false" and row["val_se"] == ""  # JSON-style booleans, not Python's; no "None"
    rc, out, err = _cli(["compare", "--task", "copy_nnrnn", "--mlflow-uri", uri, "--sweep", "demo", "--out",
                         str(tmp_path / "x.json")], capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "x.json").read_text())[0]["val_mean"] == 0.05
    rc, out, err = _cli(["compare", "--task", "copy_nnrnn", "--mlflow-uri", uri, "--out", str(tmp_path / "x.xlsx")],
                        capsys)
    assert rc == 2 and out == "" and "--out must end in" in err and not (tmp_path / "x.xlsx").exists()


def test_data_says_yes_no_and_hides_unneeded_alternatives(tmp_path, capsys):
    (tmp_path / "text8").mkdir()
    (tmp_path / "text8" / "text8.zip").write_bytes(b"PK")
    rc, out, _ = _cli(["data", "--data-dir", str(tmp_path)], capsys)
    assert rc == 0
    assert not any(w in out.split() for w in ("True", "False", "None"))
    rows = [ln.split() for ln in out.splitlines()[2:]]
    assert ["text8", "text8/text8.zip", "yes", "unknown"] in rows
    assert not any(r[1] == "text8/text8" for r in rows)  # the unpacked file is an alternative, not missing
    assert any(r[1] == "enwik8/enwik8" and r[2:4] == ["no", "(or"] for r in rows)


def test_best_run_carries_the_sweep_name_without_confirmation(monkeypatch):
    from search import sweep

    seen = {}
    monkeypatch.setattr(sweep, "_write_best", lambda c, **kw: seen.setdefault("name", kw["name"]))
    rows = [{"config": {"model": "rnn", "seed": 0}, "metrics": {"val_loss": 0.1, "epoch": 6}, "error": None,
             "checkpoint": None}]
    monkeypatch.setattr(sweep, "_ranked", lambda rows, *a: rows)
    monkeypatch.setattr(sweep, "_score", lambda r, m: 0.1)
    sweep.tag_without_confirmation(None, exp_id="1", parent="p", name="demo-copy-20261202", space=None, rows=rows,
                                   models=("rnn",), metric_name="loss", mode="min", budget=6,
                                   exp=sweep.Experiment(space="demo/copy"))
    assert seen["name"] == "demo-copy-20261202"
