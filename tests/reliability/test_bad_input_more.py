"""Bad input beyond tests/search/test_bad_input.py: a malformed space module, broken data files given to a sweep with
--data-dir, and a ``reproduce`` of a best run that does not exist. Each is one clear line (a ConfigError; through the
CLI: ``error: ...`` on stderr, exit status 2) and nothing is half-written."""
from __future__ import annotations

import hashlib
import shutil
import sys
import textwrap

import numpy as np
import pytest

from conftest import DATA, processes_under, run_cli
from rnns.errors import ConfigError


def _one_line_exit_2(p, expected: str | list[str]) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-2000:]
    for e in [expected] if isinstance(expected, str) else expected:
        assert e in lines[0], lines[0]
    return lines[0]


def _declare(root, rel: str) -> None:
    """List a file's sha256 in <root>/SHA256SUMS: the user vouches for a non-standard copy, so only the format
    checks stand between it and a sweep."""
    sha = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    with open(root / "SHA256SUMS", "a") as f:
        f.write(f"{sha}  ./{rel}\n")


# ---- a malformed space module --------------------------------------------------------------------------------------
BROKEN = textwrap.dedent('''
    from spaces.base import Param, Space

    _BASE = dict(paper="demo", task="copy_nnrnn", models=("lstm", "rnn"), budget=2,
                 fixed={"optimizer": "rmsprop", "epochs": 2})
    SPACES = (
        Space(name="broken/inverted", params=(Param("lr", "loguniform", 3e-2, 1e-4),), **_BASE),
        Space(name="broken/unknown", params=(Param("lr_ortho", "loguniform", 1e-4, 1e-2),), **_BASE),
    )
''')


@pytest.fixture
def broken_module(tmp_path, monkeypatch):
    """A module ``spaces.zz_broken`` (as a contributor would add one) found by the registry's discovery."""
    import spaces
    import spaces.registry as reg

    (tmp_path / "zz_broken.py").write_text(BROKEN)
    monkeypatch.setattr(spaces, "__path__", [*spaces.__path__, str(tmp_path)])
    monkeypatch.setattr(reg, "_SPACES", None)
    monkeypatch.setattr(reg, "_VALID", set())
    yield reg
    sys.modules.pop("spaces.zz_broken", None)


@pytest.mark.parametrize("name,expected", [
    ("broken/inverted", r"space 'broken/inverted', parameter 'lr': range \[0.03, 0.0001\] is inverted"),
    ("broken/unknown", r"space 'broken/unknown': unknown parameter 'lr_ortho' for model 'lstm'"),
], ids=["inverted-range", "unknown-parameter"])
def test_malformed_space_module_is_refused_by_the_registry(broken_module, name, expected):
    reg = broken_module
    assert name in reg.spaces(), "the module was discovered"
    with pytest.raises(ConfigError, match=expected) as e:
        reg.get_space(name)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError):
        reg.validate(reg.spaces()[name])
    assert reg.get_space("demo/copy").name == "demo/copy", "a broken module does not break the others"


# ---- broken data files through the CLI -----------------------------------------------------------------------------
@pytest.fixture
def data_env(cli_env, tmp_path):
    env = {**cli_env, "RNNSWEEP_CACHE": str(tmp_path / "cache")}
    env.pop("RNNSWEEP_DATA", None)  # only --data-dir says where the files are
    return env


def _sweep_on(space: str, data_dir, cwd, env):
    cwd.mkdir()
    p = run_cli(["sweep", "--space", space, "--data-dir", str(data_dir), "--samples", "1", "--max-budget", "1",
                 "--quiet"], cwd=cwd, env=env, timeout=300)
    assert not list(cwd.iterdir()), f"half-written output: {list(cwd.iterdir())}"
    assert processes_under(env["RAY_TMPDIR"]) == [], "Ray was started for data that cannot be read"
    return p


MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
               "t10k-labels-idx1-ubyte.gz")


@pytest.mark.skipif(not (DATA / "MNIST" / "raw").is_dir(), reason=f"MNIST not found under {DATA}")
@pytest.mark.parametrize("declared", [False, True], ids=["cut-download", "cut-but-declared"])
def test_cut_mnist_gz(tmp_path, data_env, declared):
    root = tmp_path / "data"
    (root / "MNIST" / "raw").mkdir(parents=True)
    for n in MNIST_FILES:
        shutil.copy(DATA / "MNIST" / "raw" / n, root / "MNIST" / "raw" / n)
    cut = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    if declared:
        _declare(root, "MNIST/raw/t10k-images-idx3-ubyte.gz")
    p = _sweep_on("exprnn/smnist", root, tmp_path / "work", data_env)
    # undeclared: the checksum names the file; declared: the gzip reader finds the cut
    _one_line_exit_2(p, ["t10k-images-idx3-ubyte.gz", "gzip" if declared else "sha256"])


def test_mat_file_with_missing_keys(tmp_path, data_env):
    import scipy.io

    root = tmp_path / "data"
    (root / "music").mkdir(parents=True)
    roll = np.zeros((10, 88), np.uint8)
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = roll, roll
    scipy.io.savemat(root / "music" / "JSB_Chorales.mat", {"traindata": cell, "validdata": cell})
    _declare(root, "music/JSB_Chorales.mat")
    p = _sweep_on("rru/jsb", root, tmp_path / "work", data_env)
    _one_line_exit_2(p, ["JSB_Chorales.mat", "no key 'testdata'"])


def test_ptb_file_with_a_wrong_encoding(tmp_path, data_env):
    root = tmp_path / "data"
    (root / "ptb").mkdir(parents=True)
    words = " ".join(["the", "cat", "sat", "on", "a", "mat", "<unk>", "N"] * 40)
    for split in ("train", "valid", "test"):
        text = (words + "\n") * 20
        data = text.encode("utf-8")
        if split == "valid":
            data = text.encode("latin-1") + "caf\u00e9 na\u00efve\n".encode("latin-1")  # not UTF-8
        (root / "ptb" / f"ptb.{split}.txt").write_bytes(data)
        _declare(root, f"ptb/ptb.{split}.txt")
    p = _sweep_on("rru/ptb_word", root, tmp_path / "work", data_env)
    _one_line_exit_2(p, ["ptb.valid.txt", "not UTF-8"])


# ---- reproduce of a best run that does not exist ---------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    """An MLflow store with the task's experiment: one best run for lstm whose artifact is gone, nothing else."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    c = MlflowClient(tracking_uri=uri)
    exp = c.create_experiment("copy_nnrnn", artifact_location=(tmp_path / "mlartifacts").as_uri())
    run = c.create_run(exp, tags={"rnnsweep.kind": "best", "rnnsweep.best": "true", "rnnsweep.model": "lstm",
                                  "rnnsweep.metric": "val_loss", "rnnsweep.mode": "min"})
    c.log_metric(run.info.run_id, "val_loss_mean", 0.5)
    c.set_terminated(run.info.run_id)
    return c, exp, run.info.run_id


def _snapshot(c, exp):
    return sorted((r.info.run_id, r.info.status, tuple(sorted(r.data.tags.items())))
                  for r in c.search_runs([exp], max_results=1000)), [e.name for e in c.search_experiments()]


@pytest.mark.parametrize("args,expected", [
    (["--task", "copy_lru"], "no sweep recorded for task 'copy_lru'"),
    (["--task", "copy_nnrnn", "--model", "rnn"], "unknown model with a best configuration"),
    (["--task", "copy_nnrnn", "--model", "lstm"], "has no readable best_config.json"),
], ids=["no-such-task", "no-best-for-model", "artifact-gone"])
def test_reproduce_of_a_run_that_does_not_exist(store, tmp_path, cli_env, args, expected):
    c, exp, _ = store
    before = _snapshot(c, exp)
    p = run_cli(["reproduce", *args], cwd=tmp_path, env=cli_env, timeout=180)
    _one_line_exit_2(p, expected)
    assert _snapshot(c, exp) == before, "reproduce changed the record"
    assert {x.name for x in tmp_path.iterdir()} <= {"mlruns.db", "mlartifacts"}


# ---- --resume of a sweep Tune cannot restore -----------------------------------------------------------------------
def test_resume_without_tune_state_is_refused_not_restarted(tmp_path, cli_env, ray_tmp):
    """A results folder without Tune's experiment state (a driver killed before the first trial): resuming it
    would start every trial again under the same name (each trial twice in MLflow), so it is refused."""
    (tmp_path / "results" / "half").mkdir(parents=True)
    p = run_cli(["sweep", "--resume", "--name", "half", "--storage", str(tmp_path / "results"), "--quiet"],
                cwd=tmp_path, env=cli_env, timeout=180)
    _one_line_exit_2(p, ["sweep 'half'", "no Tune experiment state"])
    assert {x.name for x in tmp_path.iterdir()} == {"results"} and not list((tmp_path / "results" / "half").iterdir())
    assert processes_under(ray_tmp) == []
