"""What a sweep start spends checking its data files: ``search.sweep.check_task_files`` (sha256 and format of every
present file of the task) in a fresh process with an empty check record (the first start, and every start before
the record existed) against a fresh process that finds the record of an earlier start.

    PYTHONPATH=. python bench/bench_start_checks.py [--data-dir DIR] [--tasks ptb_word,psmnist,jsb] [--repeats 3]

A script, not a test: timings depend on the machine. Writes its table into BENCHMARKS.md (section
``start_checks``) unless ``--no-write``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import command_line, machine, md_table, stamp, write_section  # noqa: E402

CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import search
from search.sweep import check_task_files
t = time.perf_counter()
check_task_files({task!r}, {data!r})
print(time.perf_counter() - t)
"""


def once(task: str, data: str, cache: str) -> float:
    env = {**os.environ, "RNNSWEEP_CACHE": cache, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), task=task, data=data)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--tasks", default="ptb_word,psmnist,jsb")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    from datasets import files as F

    rows = []
    for task in a.tasks.split(","):
        ds = F.dataset_of(task)
        size = sum((Path(a.data_dir) / f.path).stat().st_size for f in ds.files if (Path(a.data_dir) / f.path).is_file())
        cold, warm = [], []
        for _ in range(a.repeats):
            with tempfile.TemporaryDirectory() as cache:
                cold.append(once(task, a.data_dir, cache))
                warm.append(once(task, a.data_dir, cache))
        c, w = sorted(cold)[len(cold) // 2], sorted(warm)[len(warm) // 2]
        rows.append([f"`{task}`", f"{size / 1e6:.1f}", f"{c:.3f}", f"{w:.4f}", f"{c / w:.0f}x"])
        print(rows[-1], flush=True)
    body = "\n".join([
        "## Data checks at a sweep start", "",
        f"Measured {stamp()} with `{command_line()}`  ",
        f"Machine: {machine()}  ",
        "`search.sweep.check_task_files(task)` in a fresh process (median of the repeats): *no record* = an empty "
        "check record in the cache folder (the first start; every start before the record existed), *record* = a "
        "second fresh process that finds the first one's record (sha256 and format results by path, size, mtime, "
        "ctime and inode).", "",
        md_table(["task", "data MB", "no record s", "record s", "saved"], rows), "",
        "WikiText-103 (about 500 MB, not in the shared data here) is read in full by the first check only.",
    ])
    print(body)
    if not a.no_write:
        write_section("start_checks", body)


if __name__ == "__main__":
    main()
