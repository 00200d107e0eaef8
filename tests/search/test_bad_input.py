"""Bad input through the CLI: one clear line on stderr, exit status 2, and nothing half-written."""
from __future__ import annotations

import pytest

from conftest import run_cli

CASES = [
    (["sweep", "--space", "demo/cpy"], "unknown space 'demo/cpy' (did you mean 'demo/copy'?)"),
    (["sweep", "--model", "lstmm"], "did you mean 'lstm'?"),
    (["sweep", "--samples", "0"], "--samples must be >= 1"),
    (["sweep", "--samples", "-3"], "--samples must be >= 1"),
    (["sweep", "--set", "lr_ortho=1e-3"], "did you mean 'lr_orth'?"),
    (["sweep", "--scheduler", "ashaa"], "unknown scheduler 'ashaa'"),
    (["sweep", "--searcher", "tp"], "unknown searcher 'tp'"),
    (["sweep", "--max-budget", "0"], "budget"),
    (["sweep", "--grace-period", "9", "--max-budget", "2"], "--grace-period must be between 1 and the budget"),
    (["sweep", "--resume"], "--resume needs the --name"),
    (["sweep", "--mlflow-uri", "http://127.0.0.1:9"], "is unreachable"),
    (["sweep", "--mlflow-uri", "mysql://nowhere/db"], "unsupported tracking URI"),
    (["sweep", "--address", "127.0.0.1:1"], "no Ray cluster answers at '127.0.0.1:1'"),
    (["sweep", "--address", "nonsense"], "is not HOST:PORT"),
    (["best", "--task", "copy_nnrnn"], "no MLflow store"),
    (["compare", "--task", "copy_nnrnn"], "no MLflow store"),
    (["reproduce", "--task", "copy_nnrnn"], "no MLflow store"),
    (["reproduce", "--published", "demo/copy:nope"], "unknown published configuration"),
    (["spaces", "show", "stair/psmnst"], "did you mean 'stair/psmnist'?"),
]


@pytest.mark.parametrize("args,expected", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_one_line_exit_2_nothing_written(args, expected, tmp_path, cli_env):
    p = run_cli(args, cwd=tmp_path, env=cli_env, timeout=120)
    assert p.returncode == 2, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-2000:]
    assert expected in lines[0]
    left = {x.name for x in tmp_path.iterdir()}
    assert not left, f"half-written output: {left}"
