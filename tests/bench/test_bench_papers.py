"""bench/bench_papers.py without running a sweep: data-dir resolution, the claims' verdicts, the document."""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_papers as bp  # noqa: E402


def test_data_dir_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RNNSWEEP_DATA", raising=False)
    assert bp.resolve_data_dir("data") == str(tmp_path / "data")
    assert bp.resolve_data_dir(None) is None
    monkeypatch.setenv("RNNSWEEP_DATA", "rel")
    assert bp.resolve_data_dir(None) == str(tmp_path / "rel")


def _r(model, val, test=None):
    return {"model": model, "best_val": val, "test": test, "curve": [(100, val)], "updates": 100}


def test_copy200_verdicts():
    base = 10 * math.log(8) / 220
    res = {"nnrnn": _r("nnrnn", 0.05), "exprnn": _r("exprnn", 0.05), "lstm": _r("lstm", 0.094), "rnn": _r("rnn", 0.2)}
    ok, overall = bp.check_copy200(res, base)
    assert overall and all(ok.values())
    res["lstm"] = _r("lstm", 0.02)  # an LSTM solving it contradicts the figure's claim
    ok, overall = bp.check_copy200(res, base)
    assert not ok["lstm"] and not overall
    res["lstm"] = _r("lstm", 0.094)
    res["exprnn"] = _r("exprnn", 0.093)  # stuck at the baseline: not reached
    assert not bp.check_copy200(res, base)[1]


def test_adding_and_lru_and_jsb_verdicts():
    ok, overall = bp.check_adding({"u": _r("ur_lstm", 0.01), "l": _r("lstm", 0.05)}, 1 / 6)
    assert overall and ok == {"u": True, "l": None}  # the LSTM is the comparison, not a claim
    assert not bp.check_adding({"u": _r("ur_lstm", 0.06), "l": _r("lstm", 0.05)}, 1 / 6)[1]
    assert not bp.check_adding({"u": _r("ur_lstm", 0.16), "l": _r("lstm", 0.17)}, 1 / 6)[1]  # at the baseline
    assert bp.check_lru_copy({"readme": _r("lru", 0.9996)}, 0.5)[1]
    assert not bp.check_lru_copy({"readme": _r("lru", 0.8)}, 0.5)[1]
    ok, overall = bp.check_jsb({"g": _r("gru", 8.0, 8.5), "r": _r("rru", 8.0, 8.5)}, 11.0)
    assert ok["g"] and not ok["r"] and not overall
    assert not bp.check_jsb({"g": _r("gru", 8.0, None)}, 11.0)[1]


def test_render_table_and_sections():
    res = {"name": "copy200", "space": "nnrnn/copy", "metric": "loss", "baseline": 0.0945, "baseline_strategy": "b",
           "results": {"nnrnn": _r("nnrnn", 0.05)}, "verdicts": {"nnrnn": True}, "overall": False, "claim": "c",
           "paper": {"nnrnn": "well below"}, "budget_note": "n", "wall_s": 75.0, "command": "cmd", "date": "d",
           "load_avg": 1.0, "cpus": 2}
    text = bp.render([res])
    assert "| copy200 | nnrnn (nnrnn) | well below | 0.05 loss | 47% better | - | 100 | 1m15s | reached |" in text
    assert "Overall: **not reached**" in text and "img/repro_copy200.png" in text


def test_unknown_reproduction_is_one_line_exit_2(capsys):
    assert bp.main(["--only", "nope"]) == 2
    assert "unknown reproduction 'nope'" in capsys.readouterr().err


def test_seed_name_tells_budget_variants_apart():
    seeds = [({"model": "exprnn", "hidden_size": 128, "lr": 1e-3}, "", "exprnn"),
             ({"model": "exprnn", "hidden_size": None, "param_budget": 18900, "lr": 1e-3}, "", "exprnn-budget")]
    assert bp.seed_name(seeds, "exprnn", {"hidden_size": "128", "lr": "0.001"}) == "exprnn"
    assert bp.seed_name(seeds, "exprnn", {"param_budget": "18900", "lr": "0.001"}) == "exprnn-budget"
    assert bp.seed_name(seeds, "lstm", {"lr": "0.001"}) == "lstm"


def test_an_interrupted_run_is_not_written(monkeypatch, tmp_path, capsys):
    """Ctrl-C stops Tune gracefully and run_sweep returns: a trial short of its epochs must not become a result."""
    def fake_run_one(rep, **kw):
        r = _r("lru", 0.9)
        r["complete"] = False
        return {"name": rep.name, "metric": "accuracy", "epochs": 4, "results": {"readme": r},
                "verdicts": {"readme": False}, "overall": False, "wall_s": 1.0}

    monkeypatch.setattr(bp, "run_one", fake_run_one)
    monkeypatch.setattr(bp, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(bp, "DOC", tmp_path / "reproductions.md")
    assert bp.main(["--only", "lru_copy", "--workdir", str(tmp_path)]) == 1
    assert "nothing written" in capsys.readouterr().err
    assert not (tmp_path / "results").exists() and not (tmp_path / "reproductions.md").exists()


def test_allow_partial_writes_a_marked_result(monkeypatch, tmp_path):
    def fake_run_one(rep, **kw):
        r = _r("lru", 0.9)
        r["complete"] = False
        return {"name": rep.name, "space": rep.space, "metric": "accuracy", "mode": "max", "epochs": 4,
                "baseline": 0.5, "baseline_strategy": "coin", "results": {"readme": r}, "verdicts": {"readme": False},
                "overall": False, "wall_s": 1.0, "claim": "c", "paper": {}, "budget_note": "b", "command": "cmd",
                "date": "d", "load_avg": 1.0, "cpus": 2}

    monkeypatch.setattr(bp, "run_one", fake_run_one)
    monkeypatch.setattr(bp, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(bp, "DOC", tmp_path / "reproductions.md")
    monkeypatch.setattr(bp, "IMG", tmp_path / "img")
    assert bp.main(["--only", "lru_copy", "--workdir", str(tmp_path), "--allow-partial"]) == 0
    assert "Note: stopped before the budget" in (tmp_path / "reproductions.md").read_text()
