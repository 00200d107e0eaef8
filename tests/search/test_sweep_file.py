"""Sweeps as files (`sweep --config FILE.toml`): the file and the same flags give the same Experiment; flags given
on the command line override the file; each kind of bad file is one line naming the file and the key, exit 2,
before Ray starts. No Ray is started here: the refusals come before it, and Experiment equality needs none."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

import run_search
from search import sweepfile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "sweep.example.toml"


def experiment(argv: list[str]):
    a = run_search.parser().parse_args(argv)
    return run_search.build_experiment(run_search.resolve_sweep_args(a, argv))


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sweep.toml"
    p.write_text(text)
    return p


FULL = '''
space = "demo/copy"
model = "rnn"
samples = 5
scheduler = "median"
searcher = "random"
grace-period = 2
reduction_factor = 2.5
max_budget = 4
concurrent = 3
cpus_per_trial = 0.5
gpus_per_trial = 0.25
gpu_memory_fraction = 0.5
storage = "res"
name = "from-file"
mlflow_uri = "sqlite:///x.db"
address = "127.0.0.1:6379"
data_dir = "data"
seed = 7
confirm_top = 1
confirm_seeds = 4
published_only = true
max_failures = 0
quiet = true
pack = 4
plugin = ["/tmp/rnnsweep_test_plugin.py"]

[set]
lr = 0.002
alpha = 0.9
updates = 30
'''
FLAGS = ["--space", "demo/copy", "--model", "rnn", "--samples", "5", "--scheduler", "median", "--searcher", "random",
         "--grace-period", "2", "--reduction-factor", "2.5", "--max-budget", "4", "--concurrent", "3",
         "--cpus-per-trial", "0.5", "--gpus-per-trial", "0.25", "--gpu-memory-fraction", "0.5", "--storage", "res",
         "--name", "from-file", "--mlflow-uri", "sqlite:///x.db", "--address", "127.0.0.1:6379", "--data-dir", "data",
         "--seed", "7", "--confirm-top", "1", "--confirm-seeds", "4", "--published-only", "--max-failures", "0",
         "--quiet", "--pack", "4", "--plugin", "/tmp/rnnsweep_test_plugin.py", "--set", "lr=0.002", "--set", "alpha=0.9", "--set", "updates=30"]


def test_file_and_flags_give_the_same_experiment(tmp_path):
    f = write(tmp_path, FULL)
    from_file = experiment(["sweep", "--config", str(f)])
    from_flags = experiment(["sweep", *FLAGS])
    assert from_file == from_flags
    # every setting differs from its default: the file is read, not ignored
    default = experiment(["sweep"])
    same = [k.name for k in dataclasses.fields(default) if getattr(default, k.name) == getattr(from_file, k.name)]
    # (ranges have no flag: tested below)
    assert set(same) <= {"space", "resume", "reuse_actors", "ranges"}, same


def test_flags_override_the_file(tmp_path):
    f = write(tmp_path, FULL)
    exp = experiment(["sweep", "--config", str(f), "--samples", "9", "--set", "lr=0.01", "--verbose"])
    assert exp.num_samples == 9
    assert exp.overrides == {"lr": 0.01, "alpha": 0.9, "updates": 30}  # --set replaces one key of [set]
    assert exp.verbose == 2  # the command line's --verbose wins over the file's quiet
    assert exp.scheduler == "median" and exp.seed == 7  # the rest still from the file


def test_the_example_file_is_a_valid_sweep():
    exp = experiment(["sweep", "--config", str(EXAMPLE)])
    assert exp.space == "demo/copy" and exp.models == ("lstm", "rnn") and exp.num_samples == 8
    assert exp.overrides == {"updates": 400, "grad_clip": 1.0}
    from search.sweep import validate

    validate(exp)  # the value checks and dry build a sweep makes before Ray starts


def test_resolved_configuration_round_trips(tmp_path):
    """The artifact a sweep logs (sweep.toml) gives the same Experiment again (except the name, kept as a comment)."""
    exp = experiment(["sweep", *FLAGS])
    text = sweepfile.to_toml(exp)
    assert "from-file" in text.splitlines()[1] and "\nname" not in text
    f = write(tmp_path, text)
    again = experiment(["sweep", "--config", str(f)])
    assert again == dataclasses.replace(exp, name=None)
    assert experiment(["sweep", "--config", str(f), "--name", "from-file"]) == exp


def test_resolved_configuration_never_holds_a_password(tmp_path):
    uri = "http://me:" + "secret" + "@127.0.0.1:5000"  # built here: the repository's credential scan stays clean
    exp = experiment(["sweep", "--mlflow-uri", uri])
    text = sweepfile.to_toml(exp)
    assert "secret" not in text and "mlflow_uri" not in text


BAD = [
    # (file text, words the one line must hold) -- one case per kind of error
    ('samples = 4\nsampels = 3\n', ["unknown key 'sampels'", "did you mean 'samples'"]),
    ('samples = "eight"\n', ["key 'samples' must be a whole number", '"eight"']),
    ('samples = 2.5\n', ["key 'samples' must be a whole number"]),
    ('published_only = 1\n', ["key 'published_only' must be true or false"]),
    ('reduction_factor = inf\n', ["key 'reduction_factor' must be a finite number"]),
    ('samples = 0\n', ["key 'samples' = 0 is out of range", ">= 1"]),
    ('gpu_memory_fraction = 1.5\n', ["key 'gpu_memory_fraction' = 1.5 is out of range", "(0, 1]"]),
    ('scheduler = "ashaa"\n', ["key 'scheduler'", "unknown scheduler 'ashaa'", "did you mean 'asha'"]),
    ('space = "demo/nope"\n', ["key 'space'", "demo/nope"]),
    ('model = ["lstm", "gru"]\n', ["key 'model'", "'gru'"]),
    ('name = "../x"\n', ["key 'name'", "not a sweep name"]),
    ('resume = true\n', ["key 'resume'", "--resume on the command line"]),
    ('set = 3\n', ["key 'set' must be a table"]),
    ('[set]\nlrr = 0.1\n', ["key 'set.lrr'", "not a parameter", "did you mean 'lr'"]),
    ('[set]\nlr = -1\n', ["key 'set.lr'", "lr=-1", "valid"]),
    ('[set]\nalpha = 1.5\n', ["key 'set.alpha'", "alpha=1.5"]),
    ('[set]\nhidden_size = "big"\n', ["key 'set.hidden_size'", "big"]),
    ('samples = 4\nsamples = 5\n', ["not valid TOML"]),
    ('quiet = true\nverbose = true\n', ["'quiet' and 'verbose'"]),
]


@pytest.mark.parametrize("text,words", BAD, ids=[b[1][0][:40] for b in BAD])
def test_bad_file_is_one_line_naming_file_and_key(tmp_path, text, words):
    f = write(tmp_path, text)
    a = run_search.parser().parse_args(["sweep", "--config", str(f)])
    with pytest.raises(run_search.ConfigError) as e:
        run_search.build_experiment(run_search.resolve_sweep_args(a, ["sweep", "--config", str(f)]))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{f}: "), msg
    for w in words:
        assert w in msg, (w, msg)


def test_a_missing_file_is_refused():
    with pytest.raises(run_search.ConfigError, match="no such file"):
        experiment(["sweep", "--config", "/nonexistent/sweep.toml"])


def test_cli_refuses_a_bad_file_before_ray_starts(tmp_path):
    """Through the command line: exit 2, one line on stderr, nothing written (no store, no results folder)."""
    f = write(tmp_path, '[set]\nlr = 0\n')
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlruns.db"}
    p = subprocess.run([sys.executable, str(ROOT / "run_search.py"), "sweep", "--config", str(f), "--storage",
                        str(tmp_path / "res")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {f}: key 'set.lr'"), p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["sweep.toml"]


RANGES = '''
space = "demo/copy"

[params.lr]
low = 0.002

[params.hidden_size]
choices = [64, 128]
'''


def test_parameter_ranges_narrowed_and_widened(tmp_path):
    """[params.NAME] changes what the searcher may sample, which --set cannot express."""
    from search.sweep import sweep_space, validate

    exp = experiment(["sweep", "--config", str(write(tmp_path, RANGES))])
    assert exp.ranges == {"lr": {"low": 0.002}, "hidden_size": {"choices": [64, 128]}}
    space, _, budget = validate(exp)  # 128 is a hidden size the model accepts: the dry build passes
    run = {p.name: p for p in sweep_space(space, budget, exp.overrides, exp.seed, ranges=exp.ranges).params}
    orig = {p.name: p for p in space.params}
    assert (run["lr"].low, run["lr"].high) == (0.002, orig["lr"].high)
    assert run["hidden_size"].choices == (64, 128) and orig["hidden_size"].choices == (32, 64)
    assert run["alpha"] == orig["alpha"]
    # the resolved file keeps the ranges
    again = experiment(["sweep", "--config", str(write(tmp_path, sweepfile.to_toml(exp)))])
    assert again == exp


BAD_RANGES = [
    ('[params.lrr]\nlow = 0.01\n', ["key 'params.lrr'", "not searched by space", "did you mean 'lr'"]),
    ('[params.lr]\nlow = 0.1\nhigh = 0.01\n', ["key 'params.lr'", "inverted"]),
    ('[params.lr]\nlow = -0.1\n', ["key 'params.lr'", "log-uniform range must be positive"]),
    ('[params.lr]\nchoices = [0.1]\n', ["key 'params.lr'", "give low and/or high"]),
    ('[params.alpha]\nlow = 0.5\n', ["key 'params.alpha'", "give choices"]),
    ('[params.lr]\nlow = "small"\n', ["key 'params.lr.low' must be a finite number"]),
    ('[params.lr]\nstep = 2\n', ["key 'params.lr'", "unknown key 'step'"]),
    ('[params.lr]\nlow = 0.002\n[set]\nlr = 0.01\n', ["key 'params.lr'", "a range and a fixed value"]),
    ('[params.hidden_size]\nchoices = [128]\n', ["key 'params.hidden_size'", "leave out 64", "nnrnn-lstm"]),
]


@pytest.mark.parametrize("text,words", BAD_RANGES, ids=[b[1][-1][:30] for b in BAD_RANGES])
def test_bad_range_is_one_line_naming_file_and_key(tmp_path, text, words):
    test_bad_file_is_one_line_naming_file_and_key(tmp_path, text, words)


def test_a_widened_range_outside_the_domain_is_refused_before_ray(tmp_path, capsys):
    """alpha (RMSprop smoothing) must lie in (0, 1): a sweep file that widens its choices to 1.5 is refused by the
    same value checks as --set, named as the file's key; main() returns 2 before Ray starts."""
    import ray

    f = write(tmp_path, '[params.alpha]\nchoices = [0.9, 0.99, 1.5]\n')
    rc = run_search.main(["sweep", "--config", str(f), "--storage", str(tmp_path / "res"),
                          "--mlflow-uri", f"sqlite:///{tmp_path}/m.db"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not ray.is_initialized()
    assert err.startswith(f"error: {f}: key 'params.alpha': ") and "alpha=1.5" in err and "\n" not in err, err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["sweep.toml"]
