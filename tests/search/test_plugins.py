"""Own cells and spaces without forking (search.plugins): a plugin file registers a cell and a space, a real sweep
ships it to its Ray workers (separate processes), the parent run records it; a bad plugin is one line."""
from __future__ import annotations

import pytest

from conftest import ROOT, run_cli
from rnns.errors import ConfigError

EXAMPLE = ROOT / "docs" / "examples" / "my_cells.py"


def test_sweep_with_a_plugin_cell_and_space(tmp_path, cli_env):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    args = ["sweep", "--space", "mine/copy", "--samples", "2", "--confirm-top", "1", "--confirm-seeds", "1",
            "--storage", str(tmp_path / "res"), "--mlflow-uri", uri, "--name", "mine", "--quiet"]
    r = run_cli(args, tmp_path, cli_env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown space 'mine/copy'" in r.stderr
    r = run_cli(args + ["--plugin", str(EXAMPLE)], tmp_path, cli_env)
    assert r.returncode == 0, r.stderr[-3000:]
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("copy_nnrnn")
    runs = c.search_runs([exp.experiment_id], filter_string="tags.`rnnsweep.kind` = 'trial'")
    assert len(runs) == 2
    assert all(x.data.tags["rnnsweep.status"] in ("completed", "stopped_early") for x in runs)  # trained by workers
    assert {x.data.params["model"] for x in runs} == {"leaky_rnn"}
    parent = c.search_runs([exp.experiment_id], filter_string="tags.`rnnsweep.kind` = 'sweep'")[0]
    assert parent.data.tags["rnnsweep.plugins"].startswith("my_cells.py sha256:")
    assert [a.path for a in c.list_artifacts(parent.info.run_id, "plugins")] == ["plugins/my_cells.py"]
    assert c.search_runs([exp.experiment_id], filter_string="tags.`rnnsweep.kind` = 'best'")  # confirmed, tested


def _plugin(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name,text,msg", [
    ("syntax.py", "x = 1\ndef f(:\n", r"plugin syntax\.py failed to load \(line 2\): SyntaxError"),
    ("raises.py", "import math\n\nraise ValueError('no config here')\n", r"plugin raises\.py failed to load \(line 3\): "
                                                                         r"ValueError: no config here"),
    ("dup.py", "from rnns.registry import register_cell\nfrom rnns.base import Cell\n\n@register_cell('lstm', "
               "paper='x')\nclass L(Cell):\n    pass\n", r"plugin dup\.py failed to load \(line 4\): RuntimeError: cell "
                                                        r"name 'lstm' registered twice"),
    ("badspace.py", "from spaces.base import Space\nSPACES = (Space(name='bad/copy', paper='x', task='copy_nnrnn', "
                    "models=('no_such_cell',)),)\n", r"plugin badspace\.py: .*no_such_cell"),
    ("notspace.py", "SPACES = ('demo/copy',)\n", r"plugin notspace\.py: SPACES \(from notspace\.py\) holds a str"),
    ("samespace.py", "from spaces.registry import get_space\nimport dataclasses\n"
                     "SPACES = (dataclasses.replace(get_space('demo/copy')),)\n",
     r"space 'demo/copy' \(from samespace\.py\) already exists"),
])
def test_bad_plugins_are_one_line(tmp_path, name, text, msg):
    from search.plugins import load_plugins, read_plugins

    with pytest.raises(ConfigError, match=msg) as e:
        load_plugins(read_plugins([_plugin(tmp_path, name, text)]))
    assert "\n" not in str(e.value)


def test_plugin_files_checked(tmp_path):
    from search.plugins import read_plugins

    with pytest.raises(ConfigError, match="no such file"):
        read_plugins([tmp_path / "missing.py"])
    with pytest.raises(ConfigError, match="a plugin is a Python file"):
        read_plugins([_plugin(tmp_path, "cells.txt", "x = 1")])
    (tmp_path / "dir.py").mkdir()
    with pytest.raises(ConfigError, match="no such file"):
        read_plugins([tmp_path / "dir.py"])


def test_loading_twice_is_idempotent(tmp_path):
    from search.plugins import load_plugins, read_plugins

    p = _plugin(tmp_path, "twice.py", "from rnns.registry import register_cell\nfrom rnns.base import Cell\n\n"
                                      "@register_cell('plugin_twice_cell', paper='x')\nclass C(Cell):\n    pass\n")
    first = load_plugins(read_plugins([p]))
    assert len(first) == 1 and load_plugins(read_plugins([p])) == []
    from rnns.registry import cells

    assert "plugin_twice_cell" in cells()
