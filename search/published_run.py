"""``reproduce --published SPACE:NAME``: train a paper's published configuration (a space's seed point).

The configuration was chosen by its paper, not by us, so its test metric may be read (best-validation weights),
and it is printed beside the number the paper published.
"""
from __future__ import annotations

from typing import Any

from rnns.errors import ConfigError, unknown

from .results import table
from .train import Trainer


def published_config(ref: str) -> tuple[Any, Any, dict[str, Any]]:
    from spaces.registry import get_space

    if ":" not in ref:
        raise ConfigError(f"--published takes SPACE:NAME (e.g. stair/copy:srnn), got {ref!r}; "
                          "`run_search.py spaces show SPACE` lists the names")
    space_name, name = ref.rsplit(":", 1)
    space = get_space(space_name)
    by_name = {sp.name: sp for sp in space.seeds if sp.name}
    if name not in by_name:
        raise unknown(f"published configuration of {space_name!r}", name, by_name)
    sp = by_name[name]
    model = sp.config.get("model", space.models[0])
    return space, sp, {**space.base_config(model), **sp.config, "model": model}


def run_published(ref: str, *, seeds: int = 1, data_dir: str | None = None,
                  overrides: dict[str, Any] | None = None) -> tuple[str, list[dict[str, float]]]:
    from spaces.published import published_for

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    space, sp, cfg = published_config(ref)
    cfg = {**cfg, **(overrides or {})}
    rows, out = [], []
    for s in range(seeds):
        tr = Trainer({**cfg, "seed": cfg.get("seed", 0) + s}, data_dir=data_dir, allow_test=True)
        tr.fit()
        m = tr.task.spec.metric
        val = tr.best["val"][m]
        test = tr.test_best()[f"test_{m}"]
        out.append({"seed": s, f"val_{m}": val, f"test_{m}": test})
        rows.append([str(cfg.get("seed", 0) + s), f"{val:.4f}", f"{test:.4f}"])
    pub = published_for(space.task, cfg["model"], cfg)
    head = (f"{ref}: {sp.source}\nconfiguration: {cfg}\n"
            f"paper's published {pub.metric if pub else 'number'}: {pub.value if pub else 'not available'}\n")
    return head + table(rows, ["seed", "validation (best)", "test (at best validation)"]), out
