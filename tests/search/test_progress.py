"""The default sweep view: one compact line per trial event and a progress line (search.progress), on fake trials."""
from __future__ import annotations

import io
import types

from search.progress import ProgressCallback, callbacks, clock, rungs


def _trial(tid, model, **cfg):
    return types.SimpleNamespace(trial_id=tid, config={"model": model, **cfg}, status="PENDING", last_result={},
                                 error_file=None)


def test_events_and_progress_lines(tmp_path):
    out = io.StringIO()
    cb = ProgressCallback(metric="val_loss", mode="min", num_samples=4, budget=6, searched=("lr", "hidden_size"),
                          rung_epochs=rungs(1, 3, 6), stream=out, interval=1e9)
    a, b, c, d = _trial("a", "rnn", lr=1e-3, hidden_size=64), _trial("b", "lstm", lr=3e-2), _trial("c", "rnn"), \
        _trial("d", "rnn")
    trials = [a, b, c, d]
    for t in (a, b):
        t.status = "RUNNING"
        cb.on_trial_start(0, trials, t)
    cb.on_trial_result(0, trials, b, {"epoch": 1, "val_loss": 0.25})
    b.status, b.last_result = "TERMINATED", {"epoch": 1, "val_loss": 0.25}
    cb.on_trial_complete(0, trials, b)
    for ep in range(1, 7):
        cb.on_trial_result(0, trials, a, {"epoch": ep, "val_loss": 0.1 / ep})
    a.status, a.last_result = "TERMINATED", {"epoch": 6, "val_loss": 0.1 / 6}
    cb.on_trial_complete(0, trials, a)
    c.status = "RUNNING"
    cb.on_trial_start(0, trials, c)
    cb.on_trial_result(0, trials, c, {"epoch": 2, "diverged": True, "diverged_reason": "loss is nan at step 3",
                                      "val_loss": 1e9})
    c.status, c.last_result = "TERMINATED", {"epoch": 2, "diverged": True}
    cb.on_trial_complete(0, trials, c)
    err = tmp_path / "error.txt"
    err.write_text("Traceback ...\nRuntimeError: CUDA out of memory. Tried to allocate 2 GiB\n")
    d.status, d.error_file = "ERROR", str(err)
    cb.on_trial_start(0, trials, d)
    cb.on_trial_error(0, trials, d)
    cb.on_step_end(0, trials)  # within the interval: no progress line
    cb.interval = 0
    cb.on_step_end(0, trials)
    lines = [ln.split("] ", 1)[1] for ln in out.getvalue().splitlines()]
    assert lines[0] == "#1 rnn started: hidden_size=64 lr=0.001"
    assert lines[1] == "#2 lstm started: lr=0.03"
    assert "#2 lstm epoch 1 (rung): val_loss 0.25" in lines
    assert "#2 lstm stopped by ASHA at epoch 1: val_loss 0.25" in lines
    assert "#1 rnn epoch 3 (rung): val_loss 0.03333" in lines
    assert "#1 rnn finished 6 epochs: val_loss 0.01667 (best so far)" in lines
    assert "#3 rnn diverged at epoch 2: loss is nan at step 3" in lines
    assert "#4 rnn failed (out of memory): RuntimeError: CUDA out of memory. Tried to allocate 2 GiB" in lines
    prog = [ln for ln in lines if ln.startswith("progress:")]
    assert len(prog) == 1
    assert prog[-1].startswith("progress: 4/4 done, 0 running, 0 pending | best val_loss 0.01667 (#1 rnn hidden_size=64"
                               " lr=0.001) |") and prog[-1].endswith(", done")
    assert len(lines) == 12  # 4 started, 3 rung, stopped, finished, diverged, failed, one progress line
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()  # plain lines for a log


def test_eta_is_an_upper_bound_from_the_budget(monkeypatch):
    import search.progress as P

    now = [1000.0]
    monkeypatch.setattr(P.time, "time", lambda: now[0])
    cb = ProgressCallback(metric="val_acc", mode="max", num_samples=3, budget=10, stream=io.StringIO())
    t = _trial("a", "rnn")
    t.status = "RUNNING"
    now[0] += 20
    cb.on_trial_result(0, [t], t, {"epoch": 2, "val_acc": 0.5})  # 2 epochs in 20 s: 10 s per epoch
    # left: 8 epochs of the running trial + 2 pending trials x 10 epochs = 28 epochs -> 280 s
    assert cb.progress_line([t]).endswith("0:20, ETA <= 4:40")


def test_views():
    assert callbacks(0, metric="m", mode="min", num_samples=1, budget=1) == []  # --quiet: the summary only
    assert callbacks(2, metric="m", mode="min", num_samples=1, budget=1) == []  # --verbose: Ray's own output
    assert len(callbacks(1, metric="m", mode="min", num_samples=1, budget=1)) == 1
    assert rungs(1, 3, 27) == {1, 3, 9} and rungs(2, 2, 8) == {2, 4} and clock(3725) == "1:02:05"


def test_confirmation_lines_name_the_seed():
    out = io.StringIO()
    cb = ProgressCallback(metric="val_loss", mode="min", num_samples=2, budget=3, searched=("lr",), phase="confirm",
                          stream=out)
    t = _trial("a", "lstm", lr=1e-3, seed=2)
    cb.on_trial_start(0, [t], t)  # not printed: the configuration is known
    t.status, t.last_result = "TERMINATED", {"epoch": 3, "val_loss": 0.5}
    cb.on_trial_complete(0, [t], t)
    lines = [ln.split("] ", 1)[1] for ln in out.getvalue().splitlines()]
    assert lines == ["confirm #1 lstm seed 2 finished 3 epochs: val_loss 0.5 (best so far)"]


def test_pack_members_are_shown_as_trials():
    """A trial pack prints one line per member, numbered as trials, and its members count in the progress line."""
    from search.pack_tune import pack_config

    out = io.StringIO()
    cb = ProgressCallback(metric="val_loss", mode="min", num_samples=3, budget=3, searched=("lr",),
                          rung_epochs=rungs(1, 3, 3), stream=out, interval=1e9)
    p = types.SimpleNamespace(trial_id="p", config=pack_config([("p_m0", {"model": "rnn", "lr": 0.1}),
                                                                 ("p_m1", {"model": "rnn", "lr": 0.2}),
                                                                 ("p_m2", {"model": "rnn", "lr": 0.3})]),
                              status="RUNNING", last_result={}, error_file=None)
    cb.on_trial_start(0, [p], p)
    r1 = {"epoch": 1, "val_loss": 0.2, "members": {
        "p_m0": {"epoch": 1, "val_loss": 0.2}, "p_m1": {"epoch": 1, "val_loss": 0.5, "ended": 1},
        "p_m2": {"epoch": 1, "diverged": 1, "diverged_reason": "non-finite loss", "ended": 1}}}
    p.last_result = r1
    cb.on_trial_result(0, [p], p, r1)
    assert cb.progress_line([p]).startswith("progress: 2/3 done, 1 running, 0 pending")
    r3 = {"epoch": 3, "val_loss": 0.1, "members": {**r1["members"], "p_m0": {"epoch": 3, "val_loss": 0.1}}}
    cb.on_trial_result(0, [p], p, r3)
    p.status, p.last_result = "TERMINATED", r3
    cb.on_trial_complete(0, [p], p)
    lines = [ln.split("] ", 1)[1] for ln in out.getvalue().splitlines()]
    assert lines[:3] == ["#1 rnn started: lr=0.1", "#2 rnn started: lr=0.2", "#3 rnn started: lr=0.3"]
    assert "#2 rnn stopped by ASHA at epoch 1: val_loss 0.5" in lines
    assert "#3 rnn diverged at epoch 1: non-finite loss" in lines
    assert lines[-1] == "#1 rnn finished 3 epochs: val_loss 0.1 (best so far)"
    assert len(lines) == 8  # 3 started, 2 rung lines (epoch 1), stopped, diverged, finished
    assert cb.progress_line([p]).startswith("progress: 3/3 done, 0 running, 0 pending | best val_loss 0.1")
