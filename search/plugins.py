"""Own cells, tasks and spaces without forking: plugins.

A plugin is a Python file (``--plugin my_cells.py``, repeatable) or an installed package's entry point in the group
``rnnsweep.plugins``. It registers what it brings with the project's own decorators and lists, and is validated
like the built-in ones:

    from rnns.base import Cell
    from rnns.registry import register_cell
    from spaces.base import Param, SeedPoint, Space

    @register_cell("my_rnn", paper="mine")
    class MyRNN(Cell): ...                # the cell contract of rnns/base.py

    SPACES = (Space(name="mine/copy", ...),)   # spaces a plugin defines (validated when loaded)

A sweep ships each plugin file's text to its trials (inside the trainable's arguments, so a worker on another
machine gets it with the trial) and loads it there before the trial builds its model; the parent MLflow run records
each plugin (tag ``rnnsweep.plugins``: file names and sha256) and keeps its text as an artifact (``plugins/``).
``best``, ``compare``, ``reproduce``, ``spaces`` and ``tasks`` take ``--plugin`` too. Loading is idempotent (by
content): a reused worker process loads a plugin once.
"""
from __future__ import annotations

import hashlib
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

from rnns.errors import ConfigError

ENTRY_POINT_GROUP = "rnnsweep.plugins"


@dataclass(frozen=True)
class Plugin:
    name: str  # the file name
    source: str  # the file's text
    sha256: str

    @property
    def module(self) -> str:
        stem = "".join(ch if ch.isalnum() else "_" for ch in Path(self.name).stem)
        return f"rnnsweep_plugin_{stem}_{self.sha256[:12]}"


def read_plugins(paths) -> tuple[Plugin, ...]:
    """The plugin files ``paths``, read (a missing, unreadable or non-Python file is one line)."""
    out = []
    for p in paths or ():
        path = Path(p).expanduser()
        if path.suffix != ".py":
            raise ConfigError(f"--plugin {p}: a plugin is a Python file (.py)")
        if not path.is_file():
            raise ConfigError(f"--plugin {p}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--plugin {p}: cannot be read ({type(e).__name__})") from None
        out.append(Plugin(path.name, text, hashlib.sha256(text.encode()).hexdigest()))
    return tuple(out)


def _builtins_loaded() -> None:
    # the built-in registries first: a plugin that reuses a built-in name is refused now, not at first use
    from datasets.base import tasks
    from rnns.registry import cells
    from spaces.registry import spaces

    cells()
    tasks()
    spaces()


def load_plugins(plugins=()) -> list[str]:
    """Load plugin files (and the installed entry points); returns the modules loaded now. One line on failure."""
    _builtins_loaded()
    loaded = load_entry_points()
    for pl in plugins or ():
        if isinstance(pl, (tuple, list)):
            pl = Plugin(*pl)
        if pl.module in sys.modules:
            continue
        mod = types.ModuleType(pl.module)
        mod.__file__ = pl.name
        try:
            code = compile(pl.source, pl.name, "exec")
            sys.modules[pl.module] = mod
            exec(code, mod.__dict__)  # noqa: S102 - the user's own plugin file, named on the command line
            _register_spaces(mod, pl.name)
        except ConfigError as e:
            sys.modules.pop(pl.module, None)
            raise ConfigError(f"plugin {pl.name}: {e}") from None
        except Exception as e:  # noqa: BLE001 - any error in the user's file: where and what, in one line
            sys.modules.pop(pl.module, None)
            line = next((f.lineno for f in reversed(traceback.extract_tb(e.__traceback__)) if f.filename == pl.name),
                        getattr(e, "lineno", None))
            where = f" (line {line})" if line else ""
            why = (str(e).splitlines() or [""])[0][:200]
            raise ConfigError(f"plugin {pl.name} failed to load{where}: {type(e).__name__}: {why}") from None
        loaded.append(pl.module)
    return loaded


def _register_spaces(mod, name: str) -> None:
    from spaces.registry import register_space

    for s in getattr(mod, "SPACES", ()) or ():
        register_space(s, source=name)


_ENTRY_POINTS_DONE = False


def load_entry_points() -> list[str]:
    """Installed plugins (entry points in the group ``rnnsweep.plugins``), loaded once per process."""
    global _ENTRY_POINTS_DONE
    if _ENTRY_POINTS_DONE:
        return []
    _ENTRY_POINTS_DONE = True
    from importlib.metadata import entry_points

    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            mod = ep.load()
            if isinstance(mod, types.ModuleType):
                _register_spaces(mod, ep.value)
        except ConfigError as e:
            raise ConfigError(f"plugin entry point {ep.name} ({ep.value}): {e}") from None
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"plugin entry point {ep.name} ({ep.value}) failed to load: {type(e).__name__}: "
                              f"{(str(e).splitlines() or [''])[0][:200]}") from None
        out.append(ep.value)
    return out


def record(c, run_id: str, plugins) -> None:
    """The plugins on the sweep's parent run: a tag naming them with their sha256, and their text as artifacts."""
    import tempfile

    if not plugins:
        return
    c.set_tag(run_id, "rnnsweep.plugins", ", ".join(f"{p.name} sha256:{p.sha256[:16]}" for p in plugins))
    with tempfile.TemporaryDirectory() as d:
        for p in plugins:
            f = Path(d) / p.name
            f.write_text(p.source, encoding="utf-8")
            c.log_artifact(run_id, str(f), artifact_path="plugins")
