"""The driver's write spool (search.tracking.RunWriter with a journal) in isolation, on sqlite stores: the same
trial events written live (the reference) and through an outage (journaled, then replayed) give the same record;
replaying a journal twice changes nothing; a bad journal is refused in one line before anything is written. The
end-to-end outage (a server killed mid-sweep, never back, replayed with the CLI) is test_tracking_lost.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException

from reliability_helpers import CLI, QUIET_ENV, ROOT
from rnns.errors import ConfigError
from search import tracking as T


class _Down:
    """An MLflow client whose server is away: every call fails as the HTTP client's do."""

    def __getattr__(self, name):
        def fail(*a, **k):
            raise MlflowException("API request to endpoint failed: connection refused")
        return fail


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """An MLflow sqlite store with its schema (made once: creating the schema takes seconds)."""
    path = tmp_path_factory.mktemp("template") / "mlruns.db"
    T.client(f"sqlite:///{path}")
    return path


def _store(template, path):
    shutil.copy(template, path)
    uri = f"sqlite:///{path}"
    c = T.client(uri)
    exp = T.ensure_experiment(c, "copy", uri)
    parent = c.create_run(exp, run_name="sw", tags={T.KIND: "sweep", T.SWEEP: "sw"}).info.run_id
    return uri, c, exp, parent


def _trial(tid, lr, epochs=None, error=False):
    return SimpleNamespace(trial_id=tid, config={"model": "rnn", "lr": lr}, error_file=None,
                           last_result={"epoch": epochs} if epochs else {})


def _events(cb, outage=None, back=None):
    """A fixed story of two trials; ``outage``/``back``: called before event k."""
    a, b = _trial("t_a", 0.01), _trial("t_b", 0.1)
    story = [("start", a), ("result", a, 1), ("start", b), ("result", a, 2), ("result", b, 1), ("end", a, 2),
             ("result", b, 2), ("error", b, 2)]
    for k, ev in enumerate(story):
        if outage and k == outage[0]:
            outage[1]()
        if back and k == back[0]:
            back[1]()
        if ev[0] == "start":
            cb.on_trial_start(0, [], ev[1])
        elif ev[0] == "result":
            res = {"epoch": ev[2], "val_loss": 1.0 / ev[2] + ev[1].config["lr"], "train_loss": 2.0 / ev[2]}
            ev[1].last_result = res
            cb.on_trial_result(0, [], ev[1], res)
        elif ev[0] == "end":
            cb.on_trial_complete(0, [], ev[1])
        else:
            cb.on_trial_error(0, [], ev[1])


def _callback(uri, exp, parent, spool=None):
    cb = T.MlflowTrialCallback(uri=uri, experiment_id=exp, parent_run_id=parent, sweep="sw", task="copy",
                               full_budget=2)
    cb._w = T.RunWriter(uri, retry_seconds=0.0, spool=spool)
    return cb


def _go_down(w):
    w._live = w._mapped._live = _Down()
    w._answers = lambda: False


def _come_back(w, c):
    w._live = w._mapped._live = c
    w._answers = lambda: True


def record(c, exp, parent, times=False):
    """The sweep's child runs by trial id: status, tags, params, every metric value by step (and, with ``times``,
    timestamps, start and end times)."""
    out = {}
    for r in c.search_runs([exp], filter_string=f"tags.`{T.PARENT}` = '{parent}'", max_results=100):
        hist = {k: sorted((m.step, m.value) + ((m.timestamp,) if times else ())
                          for m in c.get_metric_history(r.info.run_id, k)) for k in r.data.metrics}
        out[r.data.tags[T.TRIAL_ID]] = {
            "status": r.info.status, "name": r.info.run_name, "params": r.data.params, "metrics": hist,
            "tags": {k: v for k, v in r.data.tags.items() if k != T.PARENT and not k.startswith("mlflow.source")},
            **({"start": r.info.start_time, "end": r.info.end_time} if times else {})}
    return out


def test_writes_journaled_through_an_outage_replay_to_the_record_written_live(empty_db, tmp_path):
    uri_a, c_a, exp_a, par_a = _store(empty_db, tmp_path / "a.db")
    _events(_callback(uri_a, exp_a, par_a))
    reference = record(c_a, exp_a, par_a)
    assert len(reference) == 2 and reference["t_a"]["status"] == "FINISHED" and reference["t_b"]["status"] == "FAILED"

    uri_b, c_b, exp_b, par_b = _store(empty_db, tmp_path / "b.db")
    journal = tmp_path / T.SPOOL_NAME
    cb = _callback(uri_b, exp_b, par_b, spool=journal)
    _events(cb, outage=(1, lambda: _go_down(cb.w)))  # down after trial a's start: never back (the driver ends)
    assert len(record(c_b, exp_b, par_b)) == 1, "trial b started during the outage: only in the journal"
    lines = journal.read_text().splitlines()
    assert json.loads(lines[0])["call"] == "header" and cb.w.spooled == len(lines) - 1 >= 7

    assert T.replay(journal, uri_b)[0] == len(lines) - 1
    first = record(c_b, exp_b, par_b, times=True)
    assert record(c_b, exp_b, par_b) == reference
    T.replay(journal, uri_b)  # again: the same record, timestamps and end times included
    assert record(c_b, exp_b, par_b, times=True) == first


def test_a_server_that_comes_back_gets_the_journal_first_then_the_live_writes(empty_db, tmp_path):
    uri_a, c_a, exp_a, par_a = _store(empty_db, tmp_path / "a.db")
    _events(_callback(uri_a, exp_a, par_a))
    uri_b, c_b, exp_b, par_b = _store(empty_db, tmp_path / "b.db")
    journal = tmp_path / T.SPOOL_NAME
    cb = _callback(uri_b, exp_b, par_b, spool=journal)
    # trial b starts during the outage (a journal run id), and its later results are written live under its real id
    _events(cb, outage=(1, lambda: _go_down(cb.w)), back=(4, lambda: _come_back(cb.w, c_b)))
    assert cb.w.spooled == 0 and not journal.exists(), "the journal is removed once every entry is written"
    assert record(c_b, exp_b, par_b) == record(c_a, exp_a, par_a)
    assert not any(r.info.run_id.startswith("spool-") for r in c_b.search_runs([exp_b]))


def test_a_journal_cut_off_mid_line_replays_what_was_acknowledged(empty_db, tmp_path):
    uri, c, exp, par = _store(empty_db, tmp_path / "b.db")
    journal = tmp_path / T.SPOOL_NAME
    cb = _callback(uri, exp, par, spool=journal)
    _events(cb, outage=(0, lambda: _go_down(cb.w)))
    text = journal.read_text()
    journal.write_text(text + '{"call": "set_tag", "run": "x", "ke')  # the driver killed while writing a line
    T.replay(journal, uri)
    assert {k: v["status"] for k, v in record(c, exp, par).items()} == {"t_a": "FINISHED", "t_b": "FAILED"}


@pytest.mark.parametrize("content", ["", "not json\n", '{"call": "set_tag", "run": "r", "key": "k", "value": "v"}\n',
                                     '{"call": "header"}\n[1, 2]\n'])
def test_a_bad_journal_is_refused_before_anything_is_written(empty_db, tmp_path, content):
    uri, c, exp, par = _store(empty_db, tmp_path / "b.db")
    p = tmp_path / "j.jsonl"
    p.write_text(content)
    with pytest.raises(ConfigError):
        T.replay(p, uri)
    with pytest.raises(ConfigError, match="no MLflow write journal"):
        T.replay(tmp_path, uri)


def test_a_journal_replayed_into_another_store_is_refused_before_anything_is_written(empty_db, tmp_path):
    uri, c, exp, par = _store(empty_db, tmp_path / "b.db")
    journal = tmp_path / T.SPOOL_NAME
    cb = _callback(uri, exp, par, spool=journal)
    _events(cb, outage=(0, lambda: _go_down(cb.w)))
    other = tmp_path / "other.db"
    shutil.copy(empty_db, other)  # a store without the sweep's experiment and parent run
    with pytest.raises(ConfigError, match="does not have: replay it into the store the sweep wrote to"):
        T.replay(journal, f"sqlite:///{other}")
    c2 = T.client(f"sqlite:///{other}")
    assert [e.name for e in c2.search_experiments()] == ["Default"] and not c2.search_runs(["0"])


def test_replay_command(empty_db, tmp_path, capsys):
    uri, c, exp, par = _store(empty_db, tmp_path / "b.db")
    journal = tmp_path / T.SPOOL_NAME
    cb = _callback(uri, exp, par, spool=journal)
    _events(cb, outage=(0, lambda: _go_down(cb.w)))
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    # the journal names its store; afterwards it is renamed (a --resume does not replay it again)
    p = subprocess.run([sys.executable, CLI, "replay", str(journal)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "replayed" in p.stdout, p.stderr[-2000:]
    done = journal.with_name(journal.name + ".replayed")
    assert done.is_file() and not journal.exists()
    before = record(c, exp, par, times=True)
    assert {k: v["status"] for k, v in before.items()} == {"t_a": "FINISHED", "t_b": "FAILED"}
    import run_search

    assert run_search.main(["replay", str(done), "--mlflow-uri", uri]) == 0  # by hand, again: nothing changes
    assert record(c, exp, par, times=True) == before and done.is_file()
    capsys.readouterr()
    assert run_search.main(["replay", str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no MLflow write journal"), err


def test_resume_makes_the_writes_a_killed_driver_spooled(empty_db, tmp_path):
    from search import sweep as S

    uri, c, exp, par = _store(empty_db, tmp_path / "b.db")
    journal = tmp_path / "res" / "sw" / T.SPOOL_NAME
    journal.parent.mkdir(parents=True)
    cb = _callback(uri, exp, par, spool=journal)
    _events(cb, outage=(0, lambda: _go_down(cb.w)))
    del cb  # the driver is gone; its journal is all that is left
    assert S.replay_left_spool(str(tmp_path / "res"), "sw", uri) > 0
    assert {k: v["status"] for k, v in record(c, exp, par).items()} == {"t_a": "FINISHED", "t_b": "FAILED"}
    assert not journal.exists() and journal.with_name(journal.name + ".replayed").is_file()
    assert S.replay_left_spool(str(tmp_path / "res"), "sw", uri) == 0  # nothing left to make


def test_the_next_sweep_under_the_same_storage_names_a_journal_left_waiting(tmp_path):
    from search import sweep as S

    (tmp_path / "res" / "old").mkdir(parents=True)
    (tmp_path / "res" / "old" / T.SPOOL_NAME).write_text('{"call": "header"}\n')
    (tmp_path / "res" / "done").mkdir()
    (tmp_path / "res" / "done" / (T.SPOOL_NAME + ".replayed")).write_text('{"call": "header"}\n')
    lines = S.spool_notices(str(tmp_path / "res"), "new")
    assert len(lines) == 1 and "'old'" in lines[0] and f"replay {tmp_path / 'res' / 'old' / T.SPOOL_NAME}" in lines[0]
    assert S.spool_notices(str(tmp_path / "res"), "old") == []  # its own is replayed by --resume instead
    assert S.spool_notices(str(tmp_path / "none"), "new") == []
