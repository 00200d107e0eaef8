"""Shared by the benchmark scripts: the machine's description, the command line, and BENCHMARKS.md sections.

Every script writes its own section of BENCHMARKS.md between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
a second run replaces that section and leaves the others alone. Sections are kept in a fixed order (``ORDER``) so
that the file reads the same whichever script ran last.
"""
from __future__ import annotations

import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO_ROOT / "BENCHMARKS.md"
ORDER = ("summary", "cells", "scan", "search", "overhead", "sweep_cost", "packing", "trial_packs", "pack_kernels",
         "pack_sweep", "data", "start_checks")

HEADER = """# rnnsweep benchmarks

Written by the scripts in `bench/` (runnable scripts, not tests). Each script replaces its own section between
`<!-- bench:NAME -->` markers; the command, the machine and the date are recorded with every table. Ratios are
measured against a baseline in the same process, interleaved, median over repeats; absolute times mean something
only on the GPU they were measured on.
"""


def command_line() -> str:
    """The command as typed (relative script path, quoted arguments), with PYTHONPATH shown when it was set."""
    argv = [os.path.relpath(sys.argv[0], REPO_ROOT) if os.path.isabs(sys.argv[0]) else sys.argv[0]] + sys.argv[1:]
    prefix = "PYTHONPATH=. " if os.environ.get("PYTHONPATH") else ""
    return prefix + "python " + " ".join(shlex.quote(a) for a in argv)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if model:
            return model.group(1).strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine(device: str | None = None, extra: dict[str, str] | None = None) -> str:
    """One markdown line describing where a number was measured."""
    import torch

    parts = [f"CPU {cpu_model()}, {os.cpu_count()} logical cores, torch {torch.__version__} "
             f"({torch.get_num_threads()} intra-op threads), Python {platform.python_version()}"]
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, cuDNN "
                     f"{torch.backends.cudnn.version()})")
    else:
        parts.append("no GPU")
    if device:
        parts.append(f"measured on {device}")
    parts.append(f"load average at the end {load_average()} (the machine is shared: timings are noisy)")
    for k, v in (extra or {}).items():
        parts.append(f"{k} {v}")
    return "; ".join(parts)


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z")


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> Path:
    """Replace (or add) the section ``name`` of BENCHMARKS.md with ``body``; other sections are kept."""
    text = path.read_text() if path.exists() else HEADER
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    sections: dict[str, str] = {}
    for m in re.finditer(r"^<!-- bench:([\w-]+) -->\n(.*?)^<!-- /bench:\1 -->\n?", text, re.S | re.M):
        sections[m.group(1)] = m.group(2)
    first = re.search(r"^<!-- bench:[\w-]+ -->$", text, re.M)  # a marker on its own line (the header may quote one)
    head = (text[:first.start()] if first else text).rstrip() + "\n"
    sections[name] = body.rstrip() + "\n"
    names = [n for n in ORDER if n in sections] + sorted(n for n in sections if n not in ORDER)
    out = head + "".join(f"\n<!-- bench:{n} -->\n{sections[n]}<!-- /bench:{n} -->\n" for n in names)
    path.write_text(out)
    assert begin in out and end in out
    return path


def md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A markdown table; ``align`` one letter per column (l, r), default: first left, the rest right."""
    align = align or ("l" + "r" * (len(header) - 1))
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def median(xs) -> float:
    return statistics.median(xs)


def quartiles(xs) -> tuple[float, float]:
    """(25th, 75th) percentiles by linear interpolation (the spread reported next to a median)."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0], s[0]

    def q(p: float) -> float:
        k = (len(s) - 1) * p
        lo, hi = int(k), min(int(k) + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (k - lo)

    return q(0.25), q(0.75)
