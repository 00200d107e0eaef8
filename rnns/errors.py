"""The one error type the whole project raises for bad input.

A ``ConfigError`` carries a single line that says what is wrong and how to fix it; the CLI prints it and
exits non-zero. It lives in ``rnns`` only because ``rnns`` is the lowest package (torch only): ``datasets``,
``spaces`` and ``search`` all import it from here.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class ConfigError(ValueError):
    """Bad input from a user: an unknown name, an impossible value, a missing or corrupt file."""


def suggest(name: str, valid: Iterable[str]) -> str:
    """' (did you mean X?)' when a close valid name exists, else ''."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown(kind: str, name: str, valid: Iterable[str]) -> ConfigError:
    """ConfigError for an unknown registry name, listing the valid ones and the nearest match."""
    valid = sorted(valid)
    return ConfigError(f"unknown {kind} {name!r}{suggest(name, valid)}; valid: {', '.join(valid)}")
