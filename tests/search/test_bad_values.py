"""Values are checked before Ray starts: every --set value, every seed point and every value a space can sample,
against the parameter's domain and the component that consumes it (a dry construction on the CPU). A bad value is
one line naming the key, the value and the valid range; the CLI exits 2 and writes nothing.

The table of these cases and their messages is in docs/reliability.md ("Bad values")."""
from __future__ import annotations

import copy

import pytest

import run_search
from conftest import run_cli
from rnns.errors import ConfigError
from search import sweep
from search.preflight import fmt_value
from spaces.base import Param, SeedPoint

# (space, models, KEY=VALUE as typed after --set, what the one line must also say)
BAD = [
    ("demo/copy", "", "lr=-1", "valid: a number > 0"),
    ("demo/copy", "", "lr=0", "valid: a number > 0"),
    ("demo/copy", "", "lr=nan", "not a finite number"),
    ("demo/copy", "", "lr=NaN", "not a finite number"),
    ("demo/copy", "", "lr=inf", "not a finite number"),
    ("demo/copy", "", "lr=-Infinity", "not a finite number"),
    ("demo/copy", "", "lr=1e999", "not a finite number"),
    ("demo/copy", "", "lr=fast", "not a number"),
    ("demo/copy", "", "alpha=1.5", "valid: a number in (0, 1)"),
    ("demo/copy", "", "alpha=0", "valid: a number in (0, 1)"),
    ("demo/copy", "", "alpha=1", "valid: a number in (0, 1)"),
    ("demo/copy", "", "hidden_size=0", "valid: a whole number >= 1"),
    ("demo/copy", "", "hidden_size=-64", "valid: a whole number >= 1"),
    ("demo/copy", "", "hidden_size=2.5", "not a whole number"),
    ("demo/copy", "", "hidden_size=true", "not a number"),
    ("demo/copy", "", "hidden_size=big", "not a number"),
    ("demo/copy", "", "dropout=1", "valid: a number in [0, 1)"),
    ("demo/copy", "", "momentum=-0.1", "valid: a number in [0, 1)"),
    ("demo/copy", "", "weight_decay=-1e-4", "valid: a number >= 0"),
    ("demo/copy", "", "grad_clip=-1", "valid: a number >= 0"),
    ("demo/copy", "", "max_loss=0", "valid: a number > 0"),
    ("demo/copy", "", "warmup_epochs=-1", "valid: a number >= 0"),
    ("demo/copy", "", "lr_min=-1", "valid: a number >= 0"),
    ("demo/copy", "", "betas=[0.9]", "pair of numbers"),
    ("demo/copy", "", "batch_size=0", "valid: a whole number >= 1"),
    ("demo/copy", "", "n_val=-3", "valid: a whole number >= 1"),
    ("demo/copy", "", "delay=0", "valid: a whole number >= 1"),
    ("demo/copy", "lstm", "forget_bias=high", "not a number"),
    ("demo/copy", "rnn", "rinit=nosuchinit", "unknown rinit 'nosuchinit'"),
    ("demo/copy", "rnn", "iinit=glorot_typo", "unknown iinit"),
    ("demo/copy", "rnn", "nonlin=sigmoidx", "unknown nonlin"),
    ("demo/copy", "", "optimizer=adagrad", "unknown optimizer"),
    ("demo/copy", "", "schedule=linear", "unknown schedule"),
    ("stair/copy", "srnn", "rho=nsquared", "unknown rho 'nsquared'"),
    ("stair/copy", "nnrnn", "hidden_size=7", "even hidden_size"),
    ("stair/copy", "rnn_orth", "rinit=xavier", "orthogonal rinit"),
    ("stair/copy", "nnrnn", "delta=-1", "valid: a number >= 0"),
]


def _experiment(space, models, overrides, **kw):
    return sweep.Experiment(space=space, models=tuple(m for m in models.split(",") if m), overrides=overrides, **kw)


@pytest.mark.parametrize("space,models,item,says", BAD, ids=[f"{b[0]}:{b[2]}" for b in BAD])
def test_bad_set_value_is_refused_with_key_value_and_range(space, models, item, says):
    overrides = run_search._overrides([item])  # parsed exactly as the command line parses it
    key, text = item.split("=", 1)
    with pytest.raises(ConfigError) as e:
        sweep.validate(_experiment(space, models, overrides))
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{key}={fmt_value(overrides[key])} " in msg, msg  # the key and the value as given
    assert says in msg, msg


def test_good_values_still_pass():
    ok = run_search._overrides(["lr=0.001", "alpha=0.9", "hidden_size=16", "betas=[0.9, 0.98]", "grad_clip=0",
                                "batch_size=4", "dropout=0", "momentum=0.5"])
    sweep.validate(_experiment("demo/copy", "", ok))
    sweep.validate(_experiment("stair/copy", "srnn", run_search._overrides(["rho=n2", "hidden_size=16"])))


def _patched_space(monkeypatch, edit):
    space = copy.deepcopy(sweep.load_space("demo/copy"))
    edit(space)
    monkeypatch.setattr(sweep, "load_space", lambda name: space)
    return space


def test_space_value_outside_the_domain(monkeypatch):
    def edit(s):
        s.params = tuple(Param("lr", "uniform", -0.01, 0.01) if p.name == "lr" else p for p in s.params)

    _patched_space(monkeypatch, edit)
    with pytest.raises(ConfigError, match=r"space 'demo/copy' parameter 'lr' \(uniform \[-0.01, 0.01\]\): "
                                          r"lr=-0.01 is out of range; valid: a number > 0"):
        sweep.validate(_experiment("demo/copy", "", {}))


def test_space_choice_a_component_refuses(monkeypatch):
    def edit(s):
        s.params = tuple(Param("nonlin", "choice", choices=("tanh", "softsign"), when={"model": ("rnn",)})
                         if p.name == "nonlin" else p for p in s.params)

    _patched_space(monkeypatch, edit)
    with pytest.raises(ConfigError, match=r"parameter 'nonlin'.*nonlin='softsign' is refused by model 'rnn': "
                                          r"unknown nonlin 'softsign'"):
        sweep.validate(_experiment("demo/copy", "", {}))


def test_seed_point_outside_the_domain(monkeypatch):
    def edit(s):
        s.seeds = (SeedPoint({"model": "lstm", "lr": 1e-3, "alpha": 2.0, "hidden_size": 64}, "made up", "bad-alpha"),)

    _patched_space(monkeypatch, edit)
    with pytest.raises(ConfigError, match=r"published configuration 'bad-alpha' of space 'demo/copy': alpha=2.0 is "
                                          r"out of range; valid: a number in \(0, 1\)"):
        sweep.validate(_experiment("demo/copy", "", {}))


@pytest.mark.parametrize("item", ["lr=-1", "rinit=nosuchinit", "lr=1e999"])
def test_cli_exit_2_one_line_nothing_written(item, tmp_path, cli_env):
    p = run_cli(["sweep", "--model", "rnn", "--set", item, "--samples", "1"], cwd=tmp_path, env=cli_env, timeout=300)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --set "), p.stderr
    assert item.split("=")[0] in lines[0]
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())  # no results folder, no mlruns.db
