"""Search spaces: every space validates, every seed point matches its source table, conditions hold, smoke runs.

The expected tables below are transcribed from PAPERS.md independently of the ``spaces`` modules, so a typo in
either shows up as a mismatch.
"""
from __future__ import annotations

import pytest
import torch

from rnns.errors import ConfigError
from spaces.base import Param, SeedPoint, Space, smoke_config
from spaces.registry import check_config, describe, get_space, missing_names, spaces, validate

EXPECTED_SPACES = {
    "stair/psmnist", "stair/ptb_char150", "stair/ptb_char300", "stair/copy",
    "nnrnn/copy", "nnrnn/psmnist", "nnrnn/ptb_char150", "nnrnn/ptb_char300",
    "exprnn/copy1000", "exprnn/copy2000", "exprnn/smnist", "exprnn/pmnist",
    "urlstm/copy", "urlstm/adding", "urlstm/smnist", "urlstm/psmnist", "urlstm/scifar", "urlstm/wikitext103",
    "rru/jsb", "rru/nottingham", "rru/musedata", "rru/piano_midi", "rru/ptb_word", "rru/ptb_char", "rru/text8",
    "rru/enwik8", "rru/imdb", "rru/smnist", "rru/psmnist",
    "lru/scifar", "lru/listops", "lru/imdb", "lru/copy",
    "rescaled/scifar", "rescaled/listops", "rescaled/imdb",
}
PAPER_SPACES = sorted(n for n in spaces() if n.split("/")[0] in {"stair", "nnrnn", "exprnn", "urlstm", "rru", "lru",
                                                                  "rescaled"})


def _skip_if_unregistered(space: Space) -> None:
    missing = missing_names(space)
    if missing:
        pytest.skip(f"{space.name}: not registered yet: {', '.join(missing)}")


def test_every_paper_space_is_listed():
    assert EXPECTED_SPACES <= set(spaces())


@pytest.mark.parametrize("name", sorted(spaces()))
def test_space_validates(name):
    space = spaces()[name]
    _skip_if_unregistered(space)
    validate(space)
    text = describe(space)
    assert name in text and all(p.name in text for p in space.params)


def test_unknown_space_suggests():
    with pytest.raises(ConfigError, match=r"unknown space 'stair/psmnst' \(did you mean 'stair/psmnist'\?\)"):
        get_space("stair/psmnst")


# ---- seed points against their source tables (PAPERS.md, transcribed here) ----------------------------------------

def _seed(space_name: str, seed_name: str) -> dict:
    space = spaces()[space_name]
    matches = [s for s in space.seeds if s.name == seed_name]
    assert len(matches) == 1, f"{space_name}: seed point {seed_name!r} missing or repeated"
    return space.seed_config(matches[0])


def _assert_row(space_name: str, seed_name: str, model: str, expected: dict) -> None:
    cfg = _seed(space_name, seed_name)
    assert cfg["model"] == model
    for k, v in expected.items():
        got = cfg.get(k)
        if isinstance(v, float) and got is not None and not isinstance(got, str):
            assert got == pytest.approx(v, rel=1e-12), f"{space_name} {seed_name}: {k} {got} != {v}"
        else:
            assert got == v, f"{space_name} {seed_name}: {k} {got!r} != {v!r}"


# PAPERS 5.5, Stair README (srnn/sRNN, 2021): hidden, lr, lr_orth, RMSprop alpha, delta, Tdecay, A init
STAIR_2021 = {
    "psmnist": {
        "srnn": dict(hidden_size=512, lr=5e-5, alpha=0.99, rinit="random"),
        "srnn_exp": dict(hidden_size=512, lr=5e-4, lr_orth=5e-5, alpha=0.99, rinit="cayley"),
        "srnn_nn": dict(hidden_size=512, lr=2e-4, lr_orth=2e-5, alpha=0.99, delta=0.1, Tdecay=1e-4, rinit="cayley"),
    },
    "ptb_char150": {
        "srnn": dict(hidden_size=1024, lr=1e-4, alpha=0.9, rinit="random"),
        "srnn_exp": dict(hidden_size=1024, lr=5e-3, lr_orth=1e-4, alpha=0.9, rinit="cayley"),
        "srnn_nn": dict(hidden_size=1024, lr=8e-4, lr_orth=8e-5, alpha=0.9, delta=1.0, Tdecay=1e-4, rinit="cayley"),
    },
    "ptb_char300": {
        "srnn": dict(hidden_size=1024, lr=1e-4, alpha=0.9, rinit="random"),
        "srnn_exp": dict(hidden_size=1024, lr=5e-3, lr_orth=1e-4, alpha=0.9, rinit="cayley"),
        "srnn_nn": dict(hidden_size=1024, lr=8e-4, lr_orth=6e-5, alpha=0.9, delta=1e-4, Tdecay=1e-4, rinit="cayley"),
    },
    "copy": {
        "srnn": dict(hidden_size=128, lr=2e-4, alpha=0.99, rinit="random"),
        "srnn_exp": dict(hidden_size=128, lr=1e-3, lr_orth=1e-4, alpha=0.99, rinit="henaff"),
        "srnn_nn": dict(hidden_size=128, lr=5e-4, lr_orth=1e-6, alpha=0.99, delta=1e-4, Tdecay=1e-4, rinit="henaff"),
    },
}
# the 2022 README's changes to those rows
STAIR_2022 = {
    "psmnist": {"srnn": dict(lr=5e-5), "srnn_exp": dict(lr=4.5e-4), "srnn_nn": dict(lr=3e-4)},
    "ptb_char150": {"srnn": dict(lr=3e-4), "srnn_exp": dict(lr=4.5e-3), "srnn_nn": dict(lr=8.5e-4, delta=1e-4)},
    "ptb_char300": {"srnn": dict(lr=2e-4), "srnn_exp": dict(lr=6e-3), "srnn_nn": dict(lr=2e-4, delta=1.0)},
}
# PAPERS 5.2: best rho per model (2022 README)
STAIR_RHO = {
    "psmnist": {"srnn": "alpha", "srnn_exp": "alpha", "srnn_nn": "n"},
    "ptb_char150": {"srnn": "n2", "srnn_exp": "expn", "srnn_nn": "alpha"},
    "ptb_char300": {"srnn": "alpha", "srnn_exp": "alpha", "srnn_nn": "expn"},
    "copy": {"srnn": "expn", "srnn_exp": "expn", "srnn_nn": "alpha"},
}
# README example commands (sMNIST_nvar.py --permute)
STAIR_COMMANDS = {
    "srnn": dict(rho="log2n", lr=5e-5, hidden_size=512, alpha=0.9, rinit="random"),
    "srnn_exp": dict(rho="expn", lr=5e-4, lr_orth=5e-5, alpha=0.99, rinit="cayley"),
    "srnn_nn": dict(rho="n2", lr=2e-4, lr_orth=2e-5, alpha=0.99, delta=0.1, Tdecay=1e-4, rinit="cayley"),
}
# baseline rows quoted for the Stair tables
STAIR_BASELINES = {
    ("psmnist", "rnn"): dict(lr=1e-4, alpha=0.9, rinit="xavier", hidden_size=512),
    ("psmnist", "rnn_orth"): dict(lr=5e-5, alpha=0.99),
    ("psmnist", "exprnn"): dict(lr=5e-4, lr_orth=5e-5),
    ("psmnist", "nnrnn"): dict(lr=2e-4, lr_orth=2e-5, delta=0.1, Tdecay=1e-4),
    ("ptb_char150", "exprnn"): dict(lr=5e-3, lr_orth=1e-4),
    ("ptb_char150", "nnrnn"): dict(lr=8e-4, lr_orth=8e-5, delta=1.0),
    ("ptb_char300", "exprnn"): dict(lr=5e-3, lr_orth=1e-4),
    ("ptb_char300", "nnrnn"): dict(lr=8e-4, lr_orth=8e-5, delta=1.0),
}


@pytest.mark.parametrize("task", sorted(STAIR_2021))
def test_stair_rows(task):
    space = f"stair/{task}"
    for model, row in STAIR_2021[task].items():
        _assert_row(space, f"2021-{model}", model, {**row, "rho": STAIR_RHO[task][model]})
        if model in STAIR_2022.get(task, {}):
            _assert_row(space, f"2022-{model}", model, {**row, **STAIR_2022[task][model],
                                                        "rho": STAIR_RHO[task][model]})
    changed = {s.name for s in spaces()[space].seeds if s.name.startswith("2022-")}
    assert changed == {f"2022-{m}" for m in STAIR_2022.get(task, {})}
    if task == "psmnist":
        for model, row in STAIR_COMMANDS.items():
            _assert_row(space, f"command-{model}", model, row)
    for (t, model), row in STAIR_BASELINES.items():
        if t == task:
            _assert_row(space, f"baseline-{model}", model, row)


def test_stair_fixed_settings():
    assert spaces()["stair/copy"].task_options == {"delay": 200, "batch_size": 10, "updates": 100}
    assert spaces()["stair/psmnist"].task_options["batch_size"] == 100
    for bptt in (150, 300):
        s = spaces()[f"stair/ptb_char{bptt}"]
        assert s.task_options == {"bptt": bptt, "batch_size": 128} and s.fixed["embed_dim"] == 200
        assert s.base_config("srnn")["seq_len"] == bptt and s.base_config("srnn")["alpha_init"] == 0.98
    assert spaces()["stair/copy"].base_config("srnn_nn")["seq_len"] == 220
    assert spaces()["stair/psmnist"].base_config("srnn_exp")["seq_len"] == 784


# PAPERS 5.5, nnRNN table (supplement, and the README's updated runs); budget rows: 18.9K, 269K, ~1.32M parameters
NNRNN = {
    "copy": {
        "nnrnn": ("nnrnn", dict(hidden_size=128, alpha=0.99, lr=5e-4, lr_orth=1e-6, delta=1e-4, Tdecay=1e-6,
                                rinit="henaff")),
        "nnrnn-readme": ("nnrnn", dict(rinit="cayley", lr=5e-4)),
        "exprnn": ("exprnn", dict(hidden_size=128, alpha=0.99, lr=1e-3, lr_orth=1e-4, rinit="henaff")),
        "exprnn-budget": ("exprnn", dict(param_budget=18_900, hidden_size=None, lr=1e-3, lr_orth=1e-4)),
        "lstm": ("lstm", dict(hidden_size=128, alpha=0.99, lr=5e-4)),
        "lstm-budget": ("lstm", dict(param_budget=18_900, hidden_size=None, lr=1e-3)),
        "rnn_orth": ("rnn_orth", dict(hidden_size=128, alpha=0.99, lr=2e-4, rinit="random")),
        "rnn": ("rnn", dict(hidden_size=128, alpha=0.9, lr=1e-3, rinit="xavier")),
    },
    "psmnist": {
        "nnrnn": ("nnrnn", dict(hidden_size=512, alpha=0.99, lr=1.5e-4, lr_orth=1.5e-5, delta=0.15, Tdecay=1e-4,
                                rinit="cayley")),
        "nnrnn-readme": ("nnrnn", dict(lr=2e-4, lr_orth=2e-5, delta=0.1)),
        "exprnn": ("exprnn", dict(hidden_size=512, alpha=0.99, lr=5e-4, lr_orth=5e-5, rinit="cayley")),
        "exprnn-budget": ("exprnn", dict(param_budget=269_000, hidden_size=None)),
        "lstm": ("lstm", dict(hidden_size=512, alpha=0.9, lr=5e-4)),
        "lstm-readme": ("lstm", dict(hidden_size=512, alpha=0.99, lr=5e-4)),
        "lstm-budget": ("lstm", dict(param_budget=269_000, alpha=0.9, lr=5e-4)),
        "rnn_orth": ("rnn_orth", dict(hidden_size=512, alpha=0.99, lr=5e-5)),
        "rnn": ("rnn", dict(hidden_size=512, alpha=0.9, lr=1e-4)),
    },
    "ptb_char150": {
        "nnrnn": ("nnrnn", dict(hidden_size=1024, optimizer="adam", betas=(0.0, 0.9), lr=2e-3, lr_orth=2e-4,
                                delta=1e-4, Tdecay=1e-5, rinit="cayley", grad_clip=10.0)),
        "exprnn": ("exprnn", dict(hidden_size=1024, alpha=0.9, lr=1e-3, rinit="cayley")),
        "exprnn-budget": ("exprnn", dict(param_budget=1_320_000, lr=8e-3, lr_orth=8e-4)),
        "rnn": ("rnn", dict(hidden_size=1024, alpha=0.9, lr=1e-5, rinit="xavier")),
        "rnn_orth": ("rnn_orth", dict(hidden_size=1024, alpha=0.9, lr=1e-4, rinit="cayley")),
    },
    "ptb_char300": {
        "nnrnn": ("nnrnn", dict(hidden_size=1024, optimizer="adam", lr=2e-3, lr_orth=2e-4, Tdecay=1e-6,
                                grad_clip=5.0)),
        "exprnn": ("exprnn", dict(hidden_size=1024, lr=1e-3)),
        "rnn": ("rnn", dict(lr=1e-5)),
        "rnn_orth": ("rnn_orth", dict(lr=1e-4)),
    },
}


@pytest.mark.parametrize("task", sorted(NNRNN))
def test_nnrnn_rows(task):
    space = f"nnrnn/{task}"
    for seed_name, (model, row) in NNRNN[task].items():
        _assert_row(space, seed_name, model, row)
    assert {s.name for s in spaces()[space].seeds} == set(NNRNN[task])
    assert "alpha" not in _seed(space, "nnrnn") or not task.startswith("ptb")  # Adam: no RMSprop alpha


# PAPERS 5.5, expRNN README: copy hidden 190 henaff 2e-4/2e-5; MNIST hidden -> lr (lr_orth = lr/10), Cayley
EXPRNN_MNIST = {"smnist": {170: 7e-4, 360: 5e-4, 512: 3e-4}, "pmnist": {170: 1e-3, 360: 7e-4, 512: 5e-4}}


def test_exprnn_rows():
    for length in (1000, 2000):
        s = spaces()[f"exprnn/copy{length}"]
        assert s.task_options["lag"] == length
        _assert_row(s.name, "exprnn", "exprnn", dict(hidden_size=190, rinit="henaff", lr=2e-4, lr_orth=2e-5))
    for key, rows in EXPRNN_MNIST.items():
        assert spaces()[f"exprnn/{key}"].task_options["batch_size"] == 128
        for n, lr in rows.items():
            _assert_row(f"exprnn/{key}", f"exprnn-{n}", "exprnn",
                        dict(hidden_size=n, lr=lr, lr_orth=lr / 10, rinit="cayley", iinit="kaiming"))


# PAPERS 3.2, r0mainK YAML defaults
URLSTM = {
    "copy": (dict(hidden_size=256), dict(batch_size=10)),
    "adding": (dict(hidden_size=256), dict(batch_size=10)),
    "smnist": (dict(hidden_size=1024), dict(batch_size=50)),
    "psmnist": (dict(hidden_size=1024), dict(batch_size=50)),
    "scifar": (dict(hidden_size=1024), dict(batch_size=50)),
    "wikitext103": (dict(hidden_size=3072, embed_dim=1024, dropout=0.3), dict(batch_size=128, bptt=128)),
}


@pytest.mark.parametrize("task", sorted(URLSTM))
def test_urlstm_defaults(task):
    s = spaces()[f"urlstm/{task}"]
    fixed, topts = URLSTM[task]
    assert s.fixed["optimizer"] == "adamw" and s.fixed["grad_clip"] == 1.0
    assert {k: s.fixed[k] for k in fixed} == fixed and {k: s.task_options[k] for k in topts} == topts
    assert set(s.models) == {"ur_lstm", "u_lstm", "r_lstm", "lstm"}
    for m in s.models:
        row = dict(lr=1e-3, weight_decay=0.01, **({"forget_bias": 1.0} if m in ("lstm", "r_lstm") else {}))
        _assert_row(s.name, f"r0mainK-{m}", m, row)
        assert "code defaults" in s.seed(f"r0mainK-{m}").source or "not tuned" in s.seed(f"r0mainK-{m}").source


# PAPERS 4.3, RRU script defaults: batch, layers, budget, output, lr, clip multiplier, dropout, relu layers, middle
RRU_GROUPS = {
    "music": dict(batch=16, layers=1, budget=5_000_000, out=64, lr=1e-3, clip=1.5, dropout=0.5, relu=1, middle=2.0),
    "lm": dict(batch=64, layers=2, budget=48_000_000, out=128, lr=1e-3, clip=10.0, dropout=0.7, relu=2, middle=4.0),
    "imdb": dict(batch=64, layers=2, budget=2_000_000, out=64, lr=1e-3, clip=5.0, dropout=0.5, relu=2, middle=2.0),
    "mnist": dict(batch=64, layers=2, budget=70_000, out=64, lr=1e-3, clip=5.0, dropout=0.7, relu=1, middle=2.0),
}
RRU_TASKS = {"jsb": "music", "nottingham": "music", "musedata": "music", "piano_midi": "music", "ptb_word": "lm",
             "ptb_char": "lm", "text8": "lm", "enwik8": "lm", "imdb": "imdb", "smnist": "mnist", "psmnist": "mnist"}


@pytest.mark.parametrize("task", sorted(RRU_TASKS))
def test_rru_defaults(task):
    s, g = spaces()[f"rru/{task}"], RRU_GROUPS[RRU_TASKS[task]]
    assert s.task_options["batch_size"] == g["batch"]
    assert s.fixed["num_layers"] == g["layers"] and s.fixed["clip_multiplier"] == g["clip"]
    assert s.fixed["optimizer"] == "rradam"
    assert s.model_fixed["rru"] == {"out_size": g["out"], "relu_layers": g["relu"]}
    assert "hidden_size" not in s.fixed  # equal-parameter comparison: the trainer solves the hidden size
    _assert_row(s.name, "default-rru", "rru", dict(param_budget=g["budget"], lr=g["lr"], dropout=g["dropout"],
                                                   middle=g["middle"]))
    _assert_row(s.name, "default-gru", "gru", dict(param_budget=g["budget"], lr=g["lr"], dropout=g["dropout"]))
    assert all("code defaults" in sp.source for sp in s.seeds)
    if task == "ptb_char":
        assert s.task_options["bptt"] == 512 and s.fixed["embed_dim"] == 16
    if task == "ptb_word":
        assert s.task_options["bptt"] == 64 and s.fixed["embed_dim"] == 64
    if task == "imdb":
        assert s.fixed["embed_dim"] == 64
    # PAPERS 4.4 hyperopt distributions
    assert (s.param("dropout").low, s.param("dropout").high) == (0.0, 0.8)
    assert (s.param("lr").kind, s.param("lr").low, s.param("lr").high) == ("loguniform", 1e-4, 1e-2)
    assert (s.param("middle").low, s.param("middle").high) == (0.1, 8.0)
    assert (s.param("forget_bias").low, s.param("forget_bias").high) == (-3.0, 3.0)
    assert (s.param("rank").kind, s.param("rank").low, s.param("rank").high) == ("int", 40, 90)
    assert s.param("rounds").choices == (5, 6)
    if RRU_TASKS[task] == "music":
        assert (s.param("param_budget").low, s.param("param_budget").high) == (1_000_000, 15_000_000)


# PAPERS 2.3, LRU Table 9 with the Table 8 rings: depth, H, N, batch, lr factor, wd, dropout, r_min, r_max
LRU_TABLE_9 = {
    "scifar": (6, 512, 384, 50, 0.25, 0.05, 0.1, 0.9, 0.999),
    "listops": (6, 128, 256, 32, 0.5, 0.05, 0.0, 0.0, 0.99),
    "imdb": (6, 256, 192, 32, 0.1, 0.05, 0.1, 0.5, 0.9),
}
LRU_README_EPOCHS = {"copy": 4, "scifar": 180, "listops": 40, "imdb": 35}


@pytest.mark.parametrize("task", sorted(LRU_README_EPOCHS))
def test_lru_rows(task):
    s = spaces()[f"lru/{task}"]
    assert s.fixed["block"] == "residual" and s.fixed["norm"] == "batch" and s.fixed["optimizer"] == "adamw"
    if task in LRU_TABLE_9:
        depth, h, n, batch, lf, wd, drop, r_min, r_max = LRU_TABLE_9[task]
        _assert_row(s.name, "table9", "lru", dict(num_layers=depth, embed_dim=h, hidden_size=n, batch_size=batch,
                                                  lr_factor=lf, weight_decay=wd, dropout=drop, r_min=r_min,
                                                  r_max=r_max, max_phase=6.28))
        assert s.task_options["batch_size"] == batch
    # minimal-LRU CLI defaults (README commands change only --epochs)
    _assert_row(s.name, "readme", "lru", dict(num_layers=4, embed_dim=256, hidden_size=128, r_min=0.0, r_max=1.0,
                                              batch_size=64, lr=1e-3, lr_factor=0.5, dropout=0.1, weight_decay=0.05))
    assert s.seed("readme").run_length["epochs"] == LRU_README_EPOCHS[task]
    assert all(c == pytest.approx(1e-3 * 2 ** round(__import__("math").log2(c / 1e-3))) for c in s.param("lr").choices)
    if task == "scifar":
        assert _seed(s.name, "table9")["lr"] == 0.004  # Table 5's fixed lr


# PAPERS 1.5, Rescaled README commands: d_model, d_hidden, lr_factor, warmup, epochs, batch, dropout
RESCALED = {
    "scifar": (512, 384, 0.025, 18, 180, 50, 0.1),
    "listops": (256, 192, 0.05, 5, 50, 32, 0.0),
    "imdb": (192, 256, 0.025, 7, 65, 32, 0.1),
}


@pytest.mark.parametrize("task", sorted(RESCALED))
def test_rescaled_rows(task):
    h, n, lf, warm, epochs, batch, drop = RESCALED[task]
    name = f"rescaled/{task}"
    _assert_row(name, "readme", "diag_rnn", dict(embed_dim=h, hidden_size=n, lr_factor=lf, batch_size=batch,
                                                 dropout=drop, A_init="fixed", num_layers=6, lr=1e-3,
                                                 weight_decay=0.05))
    s = spaces()[name]
    assert s.seed("readme").run_length == {"epochs": epochs, "warmup_epochs": warm}
    assert set(s.models) == {"diag_rnn", "linear_rnn", "lru"}
    assert all(v > 163 for v in s.param("hidden_size").choices)


# ---- conditions ----------------------------------------------------------------------------------------------------

ONLY_FOR = {
    "lr_orth": {"exprnn", "nnrnn", "srnn_exp", "srnn_nn"},
    "delta": {"nnrnn", "srnn_nn"},
    "Tdecay": {"nnrnn", "srnn_nn"},
    "rho": {"srnn", "srnn_exp", "srnn_nn", "srnn_lstm"},
    "nonlin": {"rnn", "rnn_orth", "srnn"},
    "rinit": {"rnn", "rnn_orth", "exprnn", "nnrnn", "srnn", "srnn_exp", "srnn_nn"},
    "iinit": {"rnn", "rnn_orth", "exprnn", "nnrnn", "srnn", "srnn_exp", "srnn_nn"},
    "middle": {"rru"},
    "forget_bias": {"lstm", "r_lstm"},
    "rank": {"mogrifier_lstm"},
    "rounds": {"mogrifier_lstm"},
    "r_min": {"lru"}, "r_max": {"lru"}, "max_phase": {"lru"},
    "A_init": {"lru", "linear_rnn", "diag_rnn"},
}
A_INIT = {"diag_rnn": {"glorot", "halved_glorot", "fixed", "identity", "uniform"},
          "linear_rnn": {"glorot", "halved_glorot", "fixed", "identity"},
          "lru": {"ring", "glorot", "halved_glorot", "fixed"}}


@pytest.mark.parametrize("name", PAPER_SPACES)
def test_conditional_parameters_apply_only_where_they_should(name):
    s = spaces()[name]
    for m in s.models:
        live = s.params_for(s.base_config(m))
        for p in live:
            allowed = ONLY_FOR.get(p.config_key)
            assert allowed is None or m in allowed, f"{name}: {p.config_key} sampled for {m}"
            if p.config_key == "A_init":
                assert set(p.choices) == A_INIT[m]
        assert len({p.config_key for p in live}) == len(live), f"{name}: two parameters set one key for {m}"


def test_nnrnn_ptb_alpha_only_for_rmsprop_models():
    s = spaces()["nnrnn/ptb_char150"]
    assert s.base_config("nnrnn")["optimizer"] == "adam"
    assert "alpha" not in {p.name for p in s.params_for(s.base_config("nnrnn"))}
    assert "alpha" in {p.name for p in s.params_for(s.base_config("exprnn"))}


def test_seed_helpers_split_params_and_overrides():
    s = spaces()["nnrnn/copy"]
    seed = s.seed("exprnn-budget")
    assert s.seed_overrides(seed) == {"hidden_size": None, "param_budget": 18_900}
    assert s.seed_params(seed)["lr_orth"] == 1e-4 and "delta" not in s.seed_params(seed)
    r = spaces()["rescaled/scifar"]
    assert r.seed_params(r.seed("readme"))["A_init_diag"] == "fixed"
    sampled = {"model": "lru", "A_init_diag": None, "A_init_dense": None, "A_init_lru": "ring", "lr": 1e-3}
    assert r.keyed(sampled) == {"model": "lru", "A_init": "ring", "lr": 1e-3}


# ---- validation errors on a deliberately broken space ---------------------------------------------------------------

def _space(**kw) -> Space:
    base = dict(name="test/broken", paper="test", task="copy_nnrnn", models=("lstm",),
                params=(Param("lr", "loguniform", 1e-4, 1e-2),), fixed={"hidden_size": 16})
    return Space(**{**base, **kw})


def _needs(*names: str) -> None:
    from rnns.registry import cells

    missing = [n for n in names if n not in cells()]
    if missing:
        pytest.skip(f"cells not registered yet: {', '.join(missing)}")


def _one_line_error(space: Space, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as e:
        validate(space)
    assert "\n" not in str(e.value)


def test_broken_unknown_parameter():
    _needs("lstm")
    _one_line_error(_space(params=(Param("learning_rate", "loguniform", 1e-4, 1e-2),)),
                    r"unknown parameter 'learning_rate' for model 'lstm'")


def test_broken_inverted_range():
    _needs("lstm")
    _one_line_error(_space(params=(Param("lr", "loguniform", 1e-2, 1e-4),)), r"inverted")
    with pytest.raises(ConfigError, match="inverted"):
        Param("dropout", "uniform", 0.5, 0.1).validate("x")


def test_broken_rescaled_glorot_with_small_hidden():
    _needs("diag_rnn")
    _one_line_error(_space(models=("diag_rnn",), fixed={"hidden_size": 128, "A_init": "fixed"}, params=()),
                    r"rescaled Glorot .*hidden_size 128")
    _one_line_error(_space(models=("diag_rnn",), fixed={}, params=(
        Param("A_init", "choice", choices=("glorot", "fixed")), Param("hidden_size", "choice", choices=(128, 256)))),
        r"rescaled Glorot .*hidden_size 128")
    _one_line_error(_space(models=("diag_rnn",), fixed={"hidden_size": 256}, params=(), seeds=(
        SeedPoint({"model": "diag_rnn", "A_init": "fixed", "hidden_size": 128}, "test", "small"),)),
        r"seed point 'small'.*rescaled Glorot")
    with pytest.raises(ConfigError, match="rescaled Glorot"):
        check_config({"A_init": "fixed", "hidden_size": 163})
    check_config({"A_init": "fixed", "hidden_size": 164})


def test_broken_seed_points():
    _needs("lstm")
    _one_line_error(_space(seeds=(SeedPoint({"model": "lstm", "lr": 1.0}, "test", "big"),)), r"outside the space")
    _one_line_error(_space(seeds=(SeedPoint({"model": "lstm", "lrr": 1e-3}, "test", "typo"),)),
                    r"unknown key 'lrr'.*did you mean 'lr'")
    _one_line_error(_space(seeds=(SeedPoint({"model": "gru", "lr": 1e-3}, "test", "other"),)), r"names model 'gru'")


def test_broken_conditions_and_fixed_keys():
    _needs("lstm", "rnn")
    _one_line_error(_space(params=(Param("nonlin", "choice", choices=("tanh",)),), models=("lstm", "rnn")),
                    r"unknown parameter 'nonlin' for model 'lstm'")
    _one_line_error(_space(params=(Param("forget_bias", "uniform", 0, 1, when={"model": ("gru",)}),)),
                    r"conditioned on model 'gru'")
    _one_line_error(_space(params=(Param("hidden_size", "choice", choices=(8, 16)),)), r"both a fixed setting")
    _one_line_error(_space(task_options={"dealy": 5}), r"no option 'dealy'.*did you mean 'delay'")


# ---- smoke: every space's configurations build a model; synthetic spaces train one step ----------------------------

def _smoke_configs(space: Space):
    from search.config import known_keys

    cfgs = [(f"{m}", space.base_config(m)) for m in space.models]
    cfgs += [(f"seed {s.name}", space.seed_config(s)) for s in space.seeds]
    for label, cfg in cfgs:
        for p in space.params_for(cfg):  # fill what a searcher would sample with a valid value
            cfg.setdefault(p.config_key, p.default if p.default is not None else p.grid_values()[0])
        yield label, smoke_config(space, cfg, known_keys(space.task, cfg["model"]))


@pytest.mark.parametrize("name", PAPER_SPACES)
def test_smoke_configs_build_a_model(name):
    from rnns.model import SequenceModel
    from search.config import split_config

    space = spaces()[name]
    _skip_if_unregistered(space)
    torch.manual_seed(0)
    for label, cfg in _smoke_configs(space):
        sc = split_config(cfg)
        assert "param_budget" not in sc.train_opts and sc.model_opts["hidden_size"] <= 8, label
        model = SequenceModel(sc.model, 3, 2, "last", **sc.model_opts)
        out, _ = model(torch.randn(2, 5, 3))
        assert out.shape == (2, 2) and torch.isfinite(out).all(), f"{name} {label}"


SYNTHETIC = ("copy_nnrnn", "copy_lru", "copy_exprnn", "copy_urlstm", "adding")


@pytest.mark.parametrize("name", [n for n in PAPER_SPACES if spaces()[n].task in SYNTHETIC])
def test_smoke_one_training_step(name):
    from search.train import Trainer

    space = spaces()[name]
    _skip_if_unregistered(space)
    for label, cfg in _smoke_configs(space):
        trainer = Trainer(cfg, device="cpu")
        metrics = trainer.run_epoch()
        assert metrics["epoch"] == 1, f"{name} {label}"


def test_docs_list_every_space():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "spaces.md").read_text()
    for name in PAPER_SPACES:
        paper, task = name.split("/")
        assert name in text or (f"`{paper}/" in text and task in text), f"docs/spaces.md does not mention {name}"
