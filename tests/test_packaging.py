"""`pip install .` gives every module of the four packages and the `rnnsweep` console script."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_holds_every_module_and_the_console_script(tmp_path):
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in the environment")
    src = tmp_path / "src"  # a copy, so that setuptools' build/ and egg-info never land in the checkout
    for pkg in ("search", "spaces", "rnns", "datasets"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "README.md", "run_search.py"):
        shutil.copy(ROOT / f, src / f)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(tmp_path), str(src)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = tmp_path.glob("rnnsweep-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    want = {str(p.relative_to(ROOT)) for pkg in ("search", "spaces", "rnns", "datasets")
            for p in (ROOT / pkg).glob("*.py")} | {"run_search.py"}
    assert want <= names, sorted(want - names)
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rnnsweep = run_search:main" in zipfile.ZipFile(whl).read(ep).decode()
