"""Sweeps as files: ``run_search.py sweep --config sweep.toml``.

A sweep file (TOML, read with the standard library's ``tomllib``) holds what the ``sweep`` flags hold, under the
flags' names (``grace_period`` or ``grace-period``), with the ``--set`` values as a ``[set]`` table; a flag given on
the command line overrides the file (``--set K=V`` overrides that one key of ``[set]``). Unknown keys, wrong types
and bad values are refused in one line naming the file and the key, before Ray starts. Each sweep logs its resolved
configuration as the artifact ``sweep.toml`` of its parent run: ``sweep --config`` of that file runs the same sweep
again (under a new name unless ``--name`` is given). Example: docs/sweep.example.toml.
"""
from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from rnns.errors import ConfigError, suggest

# file key -> (argparse dest, type, check or None, what a good value is)
_INT, _NUM, _STR, _BOOL = "a whole number", "a number", "a string", "true or false"
KEYS: dict[str, tuple[str, str, Any, str]] = {
    "space": ("space", _STR, None, ""),
    "model": ("model", "a model name or a list of them", None, ""),
    "samples": ("samples", _INT, lambda v: v >= 1, ">= 1"),
    "scheduler": ("scheduler", _STR, None, ""),
    "searcher": ("searcher", _STR, None, ""),
    "grace_period": ("grace_period", _INT, lambda v: v >= 1, ">= 1"),
    "reduction_factor": ("reduction_factor", _NUM, lambda v: v > 1, "> 1"),
    "max_budget": ("max_budget", _INT, lambda v: v >= 1, ">= 1 (epochs of a full trial)"),
    "concurrent": ("concurrent", _INT, lambda v: v >= 1, ">= 1"),
    "cpus_per_trial": ("cpus_per_trial", _NUM, lambda v: v > 0, "> 0"),
    "gpus_per_trial": ("gpus_per_trial", _NUM, lambda v: v >= 0, ">= 0"),
    "gpu_memory_fraction": ("gpu_memory_fraction", _NUM, lambda v: 0 < v <= 1, "in (0, 1]"),
    "storage": ("storage", _STR, lambda v: v != "", "a path or URI"),
    "name": ("name", _STR, None, ""),
    "mlflow_uri": ("mlflow_uri", _STR, lambda v: v != "", "a tracking URI"),
    "address": ("address", _STR, lambda v: v != "", "HOST:PORT of a Ray cluster"),
    "data_dir": ("data_dir", _STR, lambda v: v != "", "a folder"),
    "seed": ("seed", _INT, None, ""),
    "confirm_top": ("confirm_top", _INT, lambda v: v >= 0, ">= 0"),
    "confirm_seeds": ("confirm_seeds", _INT, lambda v: v >= 1, ">= 1"),
    "published_only": ("published_only", _BOOL, None, ""),
    "max_failures": ("max_failures", _INT, lambda v: v >= 0, ">= 0"),
    "pack": ("pack", _INT, lambda v: v >= 1, ">= 1 (configurations per trial pack; 1 = off)"),
    "plugin": ("plugin", "a plugin file or a list of them (paths relative to the sweep file)", None, ""),
    "set": ("set", "a table of KEY = VALUE", None, ""),
    "params": ("ranges", "tables [params.NAME] of low/high or choices", None, ""),
    "quiet": ("quiet", _BOOL, None, ""),
    "verbose": ("verbose", _BOOL, None, ""),
}
NOT_IN_FILE = {"resume": "resume is an action, not a setting of the sweep: give --resume on the command line",
               "config": "a sweep file cannot include another one"}


def _type_ok(kind: str, v: Any) -> bool:
    if kind == _INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == _NUM:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if kind == _STR:
        return isinstance(v, str)
    if kind == _BOOL:
        return isinstance(v, bool)
    return True


def _shown(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (str, list, dict, bool)) else str(v)


def _set_value_ok(v: Any) -> bool:
    if isinstance(v, list):
        return all(_set_value_ok(x) for x in v)
    return isinstance(v, (str, int, float, bool))


def load(path: str | Path) -> dict[str, Any]:
    """The file's settings by argparse dest (``model`` as a comma-separated string, ``set`` as a dict), checked for
    unknown keys, types and plain ranges; raises ConfigError naming the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {path}: no such file (a sweep file in TOML, see docs/sweep.example.toml)")
    try:
        with open(p, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the sweep file ({e})") from None
    out: dict[str, Any] = {}
    for key, v in raw.items():
        k = key.replace("-", "_")
        if k in NOT_IN_FILE:
            raise ConfigError(f"{path}: key {key!r}: {NOT_IN_FILE[k]}")
        if k not in KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}{suggest(k, KEYS)}; valid keys: {', '.join(KEYS)}")
        dest, kind, check, good = KEYS[k]
        if k == "model":
            if isinstance(v, str):
                v = [m.strip() for m in v.split(",") if m.strip()]
            if not isinstance(v, list) or not v or not all(isinstance(m, str) and m for m in v):
                raise ConfigError(f"{path}: key 'model' must be a model name or a list of model names, got {_shown(v)}")
            out[dest] = ",".join(v)
            continue
        if k == "plugin":
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not all(isinstance(f, str) and f for f in v):
                raise ConfigError(f"{path}: key 'plugin' must be a file name or a list of file names, got {_shown(v)}")
            out[dest] = [str((p.parent / Path(f).expanduser()).resolve()) for f in v]
            continue
        if k == "set":
            if not isinstance(v, dict):
                raise ConfigError(f"{path}: key 'set' must be a table ([set] with KEY = VALUE lines), got {_shown(v)}")
            for sk, sv in v.items():
                if not _set_value_ok(sv):
                    raise ConfigError(f"{path}: key 'set.{sk}' must be a string, number, boolean or a list of them, "
                                      f"got {type(sv).__name__} {sv!s}")
            out[dest] = dict(v)
            continue
        if k == "params":
            if not isinstance(v, dict) or not all(isinstance(r, dict) for r in v.values()):
                raise ConfigError(f"{path}: key 'params' must hold tables ([params.lr] with low = ... and/or "
                                  f"high = ..., or choices = [...]), got {_shown(v)}")
            for pn, r in v.items():
                extra = sorted(set(r) - {"low", "high", "choices"})
                if extra or not r:
                    raise ConfigError(f"{path}: key 'params.{pn}': a range is low and/or high, or choices"
                                      + (f"; unknown key {extra[0]!r}" if extra else ""))
                for b in ("low", "high"):
                    if b in r and not _type_ok(_NUM, r[b]):
                        raise ConfigError(f"{path}: key 'params.{pn}.{b}' must be a finite number, got {_shown(r[b])}")
                if "choices" in r and (not isinstance(r["choices"], list) or not r["choices"]
                                       or not all(_set_value_ok(c) and not isinstance(c, list) for c in r["choices"])):
                    raise ConfigError(f"{path}: key 'params.{pn}.choices' must be a non-empty list of values, "
                                      f"got {_shown(r['choices'])}")
            out[dest] = {pn: dict(r) for pn, r in v.items()}
            continue
        if not _type_ok(kind, v):
            what = "a finite number" if kind == _NUM and isinstance(v, float) else kind
            raise ConfigError(f"{path}: key {key!r} must be {what}, got {_shown(v)} ({type(v).__name__})")
        if check is not None and not check(v):
            raise ConfigError(f"{path}: key {key!r} = {_shown(v)} is out of range; valid: {good}")
        out[dest] = v
    if out.get("quiet") and out.get("verbose"):
        raise ConfigError(f"{path}: keys 'quiet' and 'verbose' are both true; keep one")
    return out


def check_against_space(path: str, settings: dict[str, Any], merged: dict[str, Any]) -> None:
    """What the file says, checked against the space the sweep uses (``merged``: the resolved settings): the space
    exists, the models are the space's, the scheduler and searcher exist, the name is a sweep name, every ``set``
    key is a parameter and every ``set`` value lies in its domain. Only keys that came from the file are checked
    here (a flag's value is checked, and named, as a flag)."""
    from rnns.errors import unknown

    from .algorithms import SCHEDULERS, SEARCHERS
    from .config import known_keys
    from .preflight import check_domain

    def where(e: ConfigError, key: str) -> ConfigError:
        return ConfigError(f"{path}: key {key!r}: {e}")

    if "scheduler" in settings and settings["scheduler"] not in SCHEDULERS:
        raise where(unknown("scheduler", settings["scheduler"], SCHEDULERS), "scheduler")
    if "searcher" in settings and settings["searcher"] not in SEARCHERS:
        raise where(unknown("searcher", settings["searcher"], SEARCHERS), "searcher")
    if "name" in settings:
        from .sweep import check_name

        try:
            check_name(settings["name"])
        except ConfigError as e:
            raise where(ConfigError(str(e).replace("--name ", "")), "name") from None
    from spaces.registry import get_space

    try:
        space = get_space(merged["space"])
    except ConfigError as e:
        if "space" in settings:
            raise where(e, "space") from None
        raise
    models = tuple(m for m in merged["model"].split(",") if m) or tuple(space.models)
    if "model" in settings:
        for m in models:
            if m not in space.models:
                raise where(unknown(f"model for space {space.name!r}", m, space.models), "model")
    models = tuple(m for m in models if m in space.models)
    if settings.get("ranges"):
        from .sweep import with_ranges

        for pn, r in settings["ranges"].items():
            try:
                with_ranges(space, {pn: r}, merged.get("set") or {})
            except ConfigError as e:
                raise ConfigError(f"{path}: key 'params.{pn}': {e}") from None
    for k, v in settings.get("set", {}).items():
        for m in models:
            keys = known_keys(space.task, m)
            if k not in keys:
                raise ConfigError(f"{path}: key 'set.{k}': not a parameter of task {space.task!r} / model {m!r}"
                                  f"{suggest(k, keys)}")
            check_domain(f"{path}: key 'set.{k}': ", k, v, space.task, m)


def merge(file_settings: dict[str, Any], explicit: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """argparse dest -> value: the parser's defaults, then the file, then the flags given on the command line;
    ``set`` is merged key by key (a ``--set K=V`` replaces that key of the file's table)."""
    out = {**defaults, **{k: v for k, v in file_settings.items() if k != "set"},
           **{k: v for k, v in explicit.items() if k != "set"}}
    out["set"] = {**file_settings.get("set", {}), **explicit.get("set", {})}
    return out


# ---- the resolved configuration as a sweep file ------------------------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def _toml_key(k: str) -> str:
    import re

    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def to_toml(exp) -> str:
    """A sweep file that gives ``exp`` again (search.sweep.Experiment). The sweep's name is written as a comment:
    the file re-runs the sweep under a new name unless ``--name`` is given."""
    from .tracking import redact

    flat = {"space": exp.space, "model": list(exp.models), "samples": exp.num_samples, "scheduler": exp.scheduler,
            "searcher": exp.searcher, "grace_period": exp.grace_period, "reduction_factor": exp.reduction_factor,
            "max_budget": exp.max_budget, "concurrent": exp.max_concurrent, "cpus_per_trial": exp.cpus_per_trial,
            "gpus_per_trial": exp.gpus_per_trial, "gpu_memory_fraction": exp.gpu_memory_fraction,
            "storage": exp.storage, "mlflow_uri": exp.mlflow_uri, "address": exp.address, "data_dir": exp.data_dir,
            "seed": exp.seed, "confirm_top": exp.confirm_top, "confirm_seeds": exp.confirm_seeds,
            "published_only": exp.published_only, "max_failures": exp.max_failures, "pack": exp.pack,
            "plugin": list(exp.plugins),
            "quiet": exp.verbose == 0, "verbose": exp.verbose >= 2}
    if flat["mlflow_uri"] and redact(flat["mlflow_uri"]) != flat["mlflow_uri"]:
        flat["mlflow_uri"] = None  # never a password in a record; the re-run takes $MLFLOW_TRACKING_URI
    lines = ["# rnnsweep sweep file: run_search.py sweep --config THIS_FILE (flags given there override it)"]
    if exp.name:
        lines.append(f"# written by sweep {exp.name!r}; add --name to choose the new sweep's name")
    for k, v in flat.items():
        if v is None or v == []:
            continue
        lines.append(f"{k} = {_toml_value(v)}")
    if exp.overrides:
        lines += ["", "[set]"] + [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in exp.overrides.items()]
    for pn, r in (exp.ranges or {}).items():
        lines += ["", f"[params.{_toml_key(pn)}]"] + [f"{k} = {_toml_value(v)}" for k, v in r.items()]
    return "\n".join(lines) + "\n"
