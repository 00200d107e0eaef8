"""Static security checks of the repository (the loopback binding of every server the project starts is checked on
real processes in test_trial_faults.py):

* no unpickling of untrusted data: every ``pickle``-family load, ``torch.load`` without ``weights_only=True``,
  ``np.load(allow_pickle=True)`` or unsafe ``yaml.load`` in the project's code is an error, except the documented
  ones listed in ``ALLOWED`` (each checked to still be the restricted form);
* no credentials in any file of the repository (tracked, or new and not ignored), cluster.yaml included.
"""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

# (file, what): the documented exceptions (docs/reliability.md, "Untrusted pickles")
ALLOWED = {
    # note-list pickles of the music datasets: opened only when the sha256 is a known one or the user passes
    # allow_pickle=True, and then through an Unpickler whose find_class admits containers and numpy arrays only
    ("datasets/music.py", "Unpickler subclass _PlainUnpickler"),
    # the searcher state Ray Tune itself pickles into --storage and unpickles on --resume (OptunaSearch.restore):
    # the pack searcher's own save/restore of it, and the Optuna study export reading Tune's newest copy
    ("search/pack_tune.py", "pickle.load"),
    ("search/study.py", "pickle.load"),
}

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "marshal", "shelve"}
LOADERS = {"load", "loads", "open", "Unpickler"}


def repo_files() -> list[Path]:
    """Tracked files plus new ones git does not ignore (what a commit would carry)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", "rnnsweep_results", "mlartifacts"}
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    return [ROOT / n for n in sorted(set(names)) if (ROOT / n).is_file()]


def python_files() -> list[Path]:
    return [p for p in repo_files() if p.suffix == ".py"]


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _const(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_loads(path: Path) -> list[tuple[int, str]]:
    """(line, what) for every unsafe deserialisation in a Python file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases: dict[str, str] = {}  # import name -> module (import pickle as pk; from pickle import loads)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for b in node.bases:
                full = _dotted(b)
                head, _, rest = full.partition(".")
                full = aliases.get(head, head) + (f".{rest}" if rest else "")
                if full.endswith("Unpickler"):
                    methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                    what = f"Unpickler subclass {node.name}"
                    found.append((node.lineno, what if "find_class" in methods else what + " without find_class"))
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        full = aliases.get(head, head) + (f".{rest}" if rest else "")
        mod, _, fn = full.rpartition(".")
        if mod.split(".")[0] in PICKLE_MODULES and fn in LOADERS:
            found.append((node.lineno, full))
        elif full in ("pandas.read_pickle", "pd.read_pickle") or fn == "read_pickle" and mod.startswith("pandas"):
            found.append((node.lineno, full))
        elif full == "torch.load" and not _const(_kw(node, "weights_only"), True):
            found.append((node.lineno, "torch.load without weights_only=True"))
        elif full in ("numpy.load", "np.load") and _const(_kw(node, "allow_pickle"), True):
            found.append((node.lineno, "numpy.load with allow_pickle=True"))
        elif full in ("yaml.unsafe_load", "yaml.full_load"):
            found.append((node.lineno, full))
        elif full == "yaml.load":
            loader = _dotted(_kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else ast.Constant(None)))
            if not loader.endswith(("SafeLoader", "CSafeLoader")):
                found.append((node.lineno, "yaml.load without SafeLoader"))
    return found


def test_the_scanner_finds_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle as pk\nimport torch, yaml, numpy as np\nfrom dill import loads\n"
                   "pk.load(open('x', 'rb'))\ntorch.load('m.pt')\ntorch.load('m.pt', weights_only=False)\n"
                   "torch.load('m.pt', weights_only=True)\nnp.load('a.npy', allow_pickle=True)\nnp.load('a.npy')\n"
                   "yaml.load(s)\nyaml.load(s, Loader=yaml.SafeLoader)\nloads(b'')\n"
                   "class U(pk.Unpickler):\n    pass\n")
    assert sorted(unsafe_loads(bad)) == [
        (4, "pickle.load"), (5, "torch.load without weights_only=True"), (6, "torch.load without weights_only=True"),
        (8, "numpy.load with allow_pickle=True"), (10, "yaml.load without SafeLoader"), (12, "dill.loads"),
        (13, "Unpickler subclass U without find_class")]


def test_no_unpickling_of_untrusted_data():
    problems, seen = [], set()
    for p in python_files():
        rel = str(p.relative_to(ROOT))
        for line, what in unsafe_loads(p):
            if (rel, what) in ALLOWED:
                seen.add((rel, what))
            else:
                problems.append(f"{rel}:{line}: {what}")
    assert not problems, "unsafe deserialisation (add weights_only=True, or document an exception): " + \
        "; ".join(problems)
    assert seen == ALLOWED, f"documented exceptions no longer there (update ALLOWED and the docs): {ALLOWED - seen}"


def test_checkpoints_are_read_with_weights_only():
    src = (ROOT / "search" / "trainable.py").read_text()
    assert "weights_only=True" in src and "read_checkpoint" in (ROOT / "search" / "sweep.py").read_text()


# ---- credentials ---------------------------------------------------------------------------------------------------
SECRETS = {
    "AWS access key id": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS secret access key": r"(?i)aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}\b",
    "GitHub token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})\b",
    "Slack token": r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    "private key": r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----",
    "Google API key": r"\bAIza[0-9A-Za-z_\-]{35}\b",
    "Hugging Face token": r"\bhf_[A-Za-z0-9]{34,}\b",
    "API secret key": r"\bsk-(?:proj-)?[A-Za-z0-9]{32,}\b",
    "password in a URL": r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?![A-Z_]+@|<|\$\{|\*+@)[^/\s:@'\"]{3,}@",
    "secret assigned a literal": r"(?i)\b(?:password|passwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)"
                                 r"\s*[:=]\s*['\"][A-Za-z0-9/+=_\-]{12,}['\"]",
}


def test_the_secret_patterns_catch_examples():
    examples = {"AWS access key id": "AKIA" + "ABCDEFGHIJKLMNOP", "GitHub token": "ghp_" + "a" * 36,
                "private key": "-----BEGIN RSA " + "PRIVATE KEY-----", "password in a URL": "postgresql://bob:" +
                "hunter22@db:5432/x", "secret assigned a literal": "api_key = '" + "Zx9" * 5 + "'"}
    for name, text in examples.items():
        assert re.search(SECRETS[name], text), name
    assert not re.search(SECRETS["password in a URL"], "postgresql://USER:PASSWORD@HOST:5432/mlflow")


def test_no_credentials_in_the_repository():
    pats = {k: re.compile(v) for k, v in SECRETS.items()}
    hits = []
    files = repo_files()
    assert any(p.name == "cluster.yaml" for p in files) or not (ROOT / "cluster.yaml").exists()
    for p in files:
        try:
            text = p.read_text(errors="strict")
        except (UnicodeDecodeError, OSError):
            continue  # binary
        for name, pat in pats.items():
            for m in pat.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                hits.append(f"{p.relative_to(ROOT)}:{line}: {name}")
    assert not hits, "credentials in the repository: " + "; ".join(hits)


@pytest.mark.skipif(not (ROOT / "cluster.yaml").is_file(), reason="no cluster.yaml")
def test_cluster_yaml_names_no_key_material():
    import yaml

    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())

    def walk(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{path}[{i}]")
        else:
            yield path, node

    for path, value in walk(cfg):
        key = path.rsplit(".", 1)[-1].lower()
        if re.search(r"secret|password|passwd|access_key|token|private_key|credential", key) and value:
            # a path to a file kept outside the repository (file_mounts, ssh_private_key) or an ${ENV} reference
            assert isinstance(value, str) and re.match(r"^(~|/|\./|\$)", value), f"{path} holds a literal value"
        assert "PRIVATE KEY" not in str(value), f"{path}: key material"
