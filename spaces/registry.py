"""Registry of search spaces: every module of the ``spaces`` package that defines ``SPACES`` contributes its spaces.

    spaces()          -> {name: Space}, discovered (adding a paper means adding one module)
    get_space(name)   -> the Space, validated; an unknown name is a ConfigError listing the valid ones
    validate(space)   -> ConfigError (one line) on the first problem found
    describe(space)   -> text for ``run_search.py spaces show NAME``

Validation checks a space against the other registries (cells, tasks, optimisers) and the flat keys each
(task, model) accepts (``search.config.known_keys``); those imports are made lazily so that listing spaces stays
cheap. It is called by :func:`get_space`, i.e. whenever a sweep or ``reproduce`` loads a space.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Iterable

from rnns.errors import ConfigError, unknown

from .base import Param, SeedPoint, Space, fmt_value

# Rescaled Glorot divides the std by c_N, which needs ln(N / (2 pi (ln N)^2)) > 0: N >= 164 (PAPERS 1.2)
RESCALED_MIN_HIDDEN = 164
_SKIP_MODULES = ("base", "registry")

_SPACES: dict[str, Space] | None = None
_VALID: set[str] = set()


def spaces() -> dict[str, Space]:
    """All spaces by name (sorted), from every ``spaces`` module with a ``SPACES`` tuple."""
    global _SPACES
    if _SPACES is None:
        import spaces as pkg

        found: dict[str, Space] = {}
        for mod in pkgutil.iter_modules(pkg.__path__):
            if mod.name in _SKIP_MODULES or mod.name.startswith("_"):
                continue
            for s in getattr(importlib.import_module(f"spaces.{mod.name}"), "SPACES", ()):
                if s.name in found:
                    raise RuntimeError(f"space name {s.name!r} defined twice (module spaces.{mod.name})")
                found[s.name] = s
        _SPACES = dict(sorted(found.items()))
    return _SPACES


def register_space(space: Space, source: str = "") -> None:
    """Add a space defined outside the package (a plugin's ``SPACES``), validated now; one line when it is not a
    Space, reuses a name, or fails validation."""
    reg = spaces()
    where = f" (from {source})" if source else ""
    if not isinstance(space, Space):
        raise ConfigError(f"SPACES{where} holds a {type(space).__name__}, not a spaces.base.Space")
    if space.name in reg and reg[space.name] is not space:
        raise ConfigError(f"space {space.name!r}{where} already exists; give it another name")
    validate(space)
    reg[space.name] = space
    _VALID.add(space.name)


def get_space(name: str, *, check: bool = True) -> Space:
    """The space called ``name`` (``paper/task``), validated on first load unless ``check`` is False."""
    reg = spaces()
    if name not in reg:
        raise unknown("space", name, reg)
    space = reg[name]
    if check and name not in _VALID:
        validate(space)
        _VALID.add(name)
    return space


# ----------------------------------------------------------------------------------------------------------------
# validation


def missing_names(space: Space) -> list[str]:
    """Cells, task and optimisers the space names that are not registered (empty when all exist)."""
    from datasets.base import tasks
    from rnns.optim import OPTIMIZERS
    from rnns.registry import cells

    reg_cells, reg_tasks = cells(), tasks()
    out = [f"task {space.task!r}"] if space.task not in reg_tasks else []
    out += [f"cell {m!r}" for m in space.models if m not in reg_cells]
    out += [f"optimizer {o!r}" for o in sorted(_optimizers(space)) if o not in OPTIMIZERS]
    return out


def _optimizers(space: Space) -> set[str]:
    cfgs: list[dict[str, Any]] = [space.fixed, *space.model_fixed.values(), *(s.config for s in space.seeds)]
    return {c["optimizer"] for c in cfgs if c.get("optimizer") is not None}


def _err(space: Space, msg: str) -> ConfigError:
    return ConfigError(f"space {space.name!r}: {msg}")


def _models_of(p: Param, space: Space) -> tuple[str, ...]:
    """Models a parameter can apply to, judging by its ``model`` condition only."""
    return tuple(m for m in space.models if m in p.when.get("model", space.models))


def validate(space: Space) -> None:
    """Raise a one-line ConfigError for the first problem in ``space``; return None when it is sound."""
    from datasets.base import get_task
    from rnns.optim import OPTIMIZERS
    from rnns.registry import get_cell
    from search.config import known_keys

    _check_shape(space)
    try:
        tdefaults = get_task(space.task).defaults
        for m in space.models:
            get_cell(m)
    except ConfigError as e:
        raise _err(space, str(e)) from None
    for o in sorted(_optimizers(space)):
        if o not in OPTIMIZERS:
            raise _err(space, str(unknown("optimizer", o, OPTIMIZERS)))
    keys = {m: known_keys(space.task, m) for m in space.models}

    for k in space.task_options:
        if k not in tdefaults:
            raise _err(space, f"task {space.task!r} has no option {k!r}{_near(k, tdefaults)}")
    for k in space.fixed:
        for m in space.models:
            if k not in keys[m]:
                raise _err(space, f"fixed setting {k!r} is not a key of model {m!r} on task {space.task!r}"
                                  f"{_near(k, keys[m])}; put it in model_fixed for the models that take it")
    for m, d in space.model_fixed.items():
        if m not in space.models:
            raise _err(space, f"model_fixed names {m!r}, which is not among the models {', '.join(space.models)}")
        for k in d:
            if k not in keys[m]:
                raise _err(space, f"model_fixed[{m!r}] sets {k!r}, which model {m!r} on task {space.task!r} does not "
                                  f"take{_near(k, keys[m])}")
    _check_params(space, keys)
    for s in space.seeds:
        _check_seed(space, s, keys)
    for k in space.smoke:
        if not any(k in keys[m] for m in space.models):
            raise _err(space, f"smoke override {k!r} is not a key of any model on task {space.task!r}"
                              f"{_near(k, set().union(*keys.values()))}")
    check_rescaled(space)


def _near(k: str, valid: Iterable[str]) -> str:
    from rnns.errors import suggest

    return suggest(k, valid)


def _check_shape(space: Space) -> None:
    head, _, rest = space.name.partition("/")
    if not head or not rest or "/" in rest:
        raise _err(space, "a space is named 'paper/task' (one slash)")
    if not space.models or len(set(space.models)) != len(space.models):
        raise _err(space, f"models must be a non-empty list without repeats, got {space.models}")
    if not isinstance(space.budget, int) or space.budget < 1:
        raise _err(space, f"budget must be a positive integer, got {space.budget!r}")
    epochs = space.fixed.get("epochs")
    if epochs is not None and epochs != space.budget:
        raise _err(space, f"fixed epochs {epochs} differs from budget {space.budget}; keep them equal")
    warm = space.fixed.get("warmup_epochs")
    if warm is not None and epochs is not None and warm > epochs:
        raise _err(space, f"warmup_epochs {warm} exceeds epochs {epochs}")


def _check_params(space: Space, keys: dict[str, set[str]]) -> None:
    names: set[str] = set()
    earlier: set[str] = set()  # keys of the parameters sampled before this one
    settable = set(space.fixed) | set(space.task_options) | {k for d in space.model_fixed.values() for k in d}
    for p in space.params:
        if p.name in names:
            raise _err(space, f"parameter {p.name!r} is declared twice")
        names.add(p.name)
        p.validate(space.name)
        for cond, vals in p.when.items():
            if cond == "model":
                stray = [v for v in vals if v not in space.models]
                if stray:
                    raise _err(space, f"parameter {p.name!r} is conditioned on model {stray[0]!r}, which is not "
                                      f"among the models {', '.join(space.models)}")
            elif cond not in earlier:
                raise _err(space, f"parameter {p.name!r} is conditioned on {cond!r}: a condition names 'model' or an "
                                  "earlier parameter (searchers evaluate conditions on sampled values only)")
        k = p.config_key
        if k in settable:
            raise _err(space, f"{k!r} is both a fixed setting and the searched parameter {p.name!r}; keep one")
        for m in _models_of(p, space):
            if k not in keys[m]:
                raise _err(space, f"unknown parameter {k!r} for model {m!r} on task {space.task!r}"
                                  f"{_near(k, keys[m])}; restrict it with when={{'model': (...)}} if other models "
                                  "take it")
        earlier.add(k)
    for m in space.models:
        seen: dict[str, str] = {}
        for p in space.params:
            if m in _models_of(p, space) and set(p.when) <= {"model"}:
                if p.config_key in seen:
                    raise _err(space, f"parameters {seen[p.config_key]!r} and {p.name!r} both set {p.config_key!r} "
                                      f"for model {m!r}; give them disjoint conditions")
                seen[p.config_key] = p.name


def _check_seed(space: Space, seed: SeedPoint, keys: dict[str, set[str]]) -> None:
    label = f"seed point {seed.name or seed.source!r}"
    model = seed.config.get("model") or (space.models[0] if len(space.models) == 1 else None)
    if model not in space.models:
        raise _err(space, f"{label} names model {model!r}, not among {', '.join(space.models)}")
    if not seed.source:
        raise _err(space, f"{label} has no source")
    full = space.seed_config(seed)
    for k, v in seed.config.items():
        if k == "model":
            continue
        own = [p for p in space.params if p.config_key == k]
        live = [p for p in own if p.applies(full)]
        if own and not live:
            if v is not None:
                raise _err(space, f"{label} sets {k!r}, which does not apply to model {model!r} here")
        elif live:
            if v is not None and not live[0].contains(v):
                raise _err(space, f"{label} has {k}={fmt_value(v)}, outside the space ({live[0].span()})")
        elif k not in keys[model]:
            raise _err(space, f"{label} names unknown key {k!r} for model {model!r}{_near(k, keys[model])}")
    try:
        check_config(full)
    except ConfigError as e:
        raise _err(space, f"{label}: {e}") from None
    dup = [s.name for s in space.seeds if s.name and s.name == seed.name]
    if len(dup) > 1:
        raise _err(space, f"seed point name {seed.name!r} is used twice")


def check_config(config: dict[str, Any]) -> None:
    """Constraints of one concrete trial configuration (also usable by the trainer before building a model)."""
    n = config.get("hidden_size")
    if config.get("A_init") == "fixed" and n is not None and n < RESCALED_MIN_HIDDEN:
        raise ConfigError(_rescaled_msg(n))


def _rescaled_msg(n: Any) -> str:
    return (f"rescaled Glorot (A_init 'fixed') is undefined for hidden_size <= {RESCALED_MIN_HIDDEN - 1} (NaN), got "
            f"hidden_size {n}; use hidden_size >= {RESCALED_MIN_HIDDEN} or another A_init")


def check_rescaled(space: Space) -> None:
    """Reject a space in which some trial could pair ``A_init: fixed`` with hidden_size <= 163."""
    for m in space.models:
        base = space.base_config(m)
        inits = {base["A_init"]} if "A_init" in base else set()
        sizes = {base["hidden_size"]} if base.get("hidden_size") is not None else set()
        for p in space.params:
            if m not in _models_of(p, space):
                continue
            values = set(p.choices) if p.kind == "choice" else {p.low}
            if p.config_key == "A_init":
                inits |= values
            elif p.config_key == "hidden_size":
                sizes |= values
        if "fixed" in inits and sizes and min(sizes) < RESCALED_MIN_HIDDEN:
            raise _err(space, f"model {m!r}: " + _rescaled_msg(int(min(sizes))))


# ----------------------------------------------------------------------------------------------------------------
# description


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in d.items()) or "-"


def describe(space: Space) -> str:
    """Human-readable account of a space: parameters, conditions, fixed settings, seed points and their sources."""
    lines = [f"{space.name}   paper {space.paper}, task {space.task}"]
    if space.description:
        lines.append(f"  {space.description}")
    lines.append(f"models: {', '.join(space.models)}")
    paper = f" (source: {space.paper_budget})" if space.paper_budget else ""
    lines.append(f"budget: {space.budget} reported iterations per full trial{paper}")
    lines.append("parameters:")
    width = max((len(p.name) for p in space.params), default=0)
    for p in space.params:
        cond = " and ".join(f"{k} in {{{', '.join(map(fmt_value, v))}}}" for k, v in p.when.items())
        extra = []
        if p.key:
            extra.append(f"sets {p.key}")
        if cond:
            extra.append(f"only when {cond}")
        if p.default is not None:
            extra.append(f"default {fmt_value(p.default)}")
        lines.append(f"  {p.name:<{width}}  {p.span()}" + (f"  [{'; '.join(extra)}]" if extra else ""))
        if p.doc:
            lines.append(f"  {'':<{width}}    {p.doc}")
    lines.append(f"fixed: {_kv(space.fixed)}")
    lines.append(f"task options: {_kv(space.task_options)}")
    if space.model_fixed:
        lines.append("per model:")
        for m, d in space.model_fixed.items():
            lines.append(f"  {m}: {_kv(d)}")
    lines.append(f"seed points ({len(space.seeds)}):")
    for s in space.seeds:
        cfg = {k: v for k, v in s.config.items() if k != "model"}
        lines.append(f"  {s.name or '-'} [{s.config['model']}]: {_kv(cfg)}")
        lines.append(f"      source: {s.source}")
        if s.run_length:
            lines.append(f"      source trained for: {_kv(s.run_length)}")
    lines.append(f"smoke overrides: {_kv(space.smoke)}")
    if space.notes:
        lines.append("notes:")
        lines.extend(f"  - {n}" for n in space.notes)
    return "\n".join(lines)
