"""Registry of cells: name -> class, with option validation.

Cells register themselves with ``@register_cell("name", paper=...)`` in their own module; every module of the
``rnns`` package is imported on first use, so adding a cell family means adding one file, not editing a list.
A cell's options are the keyword arguments of its ``__init__`` after ``input_size`` and ``hidden_size``.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError, suggest, unknown


@dataclass(frozen=True)
class CellEntry:
    name: str
    cls: type
    paper: str
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def options(self) -> dict[str, Any]:
        """Keyword options of the cell with their defaults (``inspect.Parameter.empty`` when required)."""
        sig = inspect.signature(self.cls.__init__)
        out = {}
        for p in list(sig.parameters.values())[1:]:
            if p.name in ("input_size", "hidden_size") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            out[p.name] = p.default
        return out


CELLS: dict[str, CellEntry] = {}
_loaded = False


def register_cell(name: str, *, paper: str, description: str = "") -> Callable[[type], type]:
    def deco(cls: type) -> type:
        if name in CELLS and CELLS[name].cls is not cls:
            raise RuntimeError(f"cell name {name!r} registered twice")
        CELLS[name] = CellEntry(name, cls, paper, description or (cls.__doc__ or "").strip().split("\n")[0])
        return cls

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import rnns

    for mod in pkgutil.iter_modules(rnns.__path__):
        importlib.import_module(f"rnns.{mod.name}")
    _loaded = True


def cells() -> dict[str, CellEntry]:
    _load_all()
    return CELLS


def get_cell(name: str) -> CellEntry:
    reg = cells()
    if name not in reg:
        raise unknown("model", name, reg)
    return reg[name]


def split_options(name: str, opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options this cell takes, the rest)."""
    known = get_cell(name).options()
    return {k: v for k, v in opts.items() if k in known}, {k: v for k, v in opts.items() if k not in known}


def build_cell(name: str, input_size: int, hidden_size: int, **opts: Any):
    entry = get_cell(name)
    known = entry.options()
    for k in opts:
        if k not in known:
            raise ConfigError(f"model {name!r} has no option {k!r}{suggest(k, known)}; options: {', '.join(sorted(known)) or 'none'}")
    return entry.cls(input_size, hidden_size, **opts)
