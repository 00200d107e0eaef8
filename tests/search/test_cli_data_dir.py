"""`run_search.py sweep --data-dir` hands the sweep an absolute path: Ray runs every trial in its own working
directory, where a relative data root would point nowhere."""
from __future__ import annotations

import os

import run_search
from rnns.errors import ConfigError


def test_relative_data_dir_becomes_absolute(monkeypatch, tmp_path):
    import search.sweep as sw

    seen = {}

    def fake_run_sweep(exp):
        seen["data_dir"] = exp.data_dir
        raise ConfigError("stop here")

    monkeypatch.setattr(sw, "run_sweep", fake_run_sweep)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    assert run_search.main(["sweep", "--space", "demo/copy", "--data-dir", "data"]) == 2
    assert seen["data_dir"] == os.path.join(str(tmp_path), "data") and os.path.isabs(seen["data_dir"])
    assert run_search.main(["sweep", "--space", "demo/copy"]) == 2
    assert seen["data_dir"] is None
