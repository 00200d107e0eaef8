#!/usr/bin/env python
"""rnnsweep command line: sweep | best | compare | reproduce | spaces | tasks | data | replay.

A thin layer: it parses, dispatches and prints. Bad input is one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _joins_cluster(argv: list[str]) -> bool:
    return bool(os.environ.get("RAY_ADDRESS")) or any(a == "--address" or a.startswith("--address=") for a in argv)


# before anything imports Ray (Ray reads it at import): a local Ray listens on 127.0.0.1 only, telemetry off; a
# driver joining a cluster (--address, $RAY_ADDRESS) keeps Ray's default (the machines' addresses)
if _joins_cluster(sys.argv[1:]):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")
import search  # noqa: E402,F401  (sets the rest: search/__init__.py)

from rnns.errors import ConfigError  # noqa: E402

DEFAULT_SPACE = "demo/copy"


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(items: list[str]) -> dict:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise ConfigError(f"--set takes KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = _value(v.strip())
    return out


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    return v


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_search.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("sweep", help="run a hyperparameter sweep (Ray Tune + MLflow)")
    s.add_argument("--config", default=None, metavar="FILE.toml",
                   help="a sweep file holding these settings (docs/sweep.example.toml); flags given here override it")
    s.add_argument("--space", default=DEFAULT_SPACE, help=f"search space paper/task (default {DEFAULT_SPACE}); see `spaces`")
    s.add_argument("--model", default="", help="comma-separated models of the space to sweep (default: all)")
    s.add_argument("--samples", type=_positive_int, default=8, help="number of trials, seed points included (8)")
    s.add_argument("--pack", type=_positive_int, default=1,
                   help="train up to K configurations of one shape as one batched model in one trial (a trial "
                        "pack); each stays its own trial for the search, ASHA and MLflow (1 = off)")
    s.add_argument("--scheduler", default="asha", help="asha | hyperband | median | pbt | fifo (asha)")
    s.add_argument("--searcher", default="tpe", help="tpe | cmaes | random | grid (tpe)")
    s.add_argument("--grace-period", type=int, default=1, help="epochs before ASHA/median may stop a trial (1)")
    s.add_argument("--reduction-factor", type=float, default=3.0, help="ASHA/HyperBand reduction factor (3)")
    s.add_argument("--max-budget", type=int, default=None, help="epochs of a full trial (default: the space's)")
    s.add_argument("--concurrent", type=int, default=2, help="trials running at once (2)")
    s.add_argument("--cpus-per-trial", type=float, default=1.0)
    s.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU, e.g. 0.25 (0)")
    s.add_argument("--gpu-memory-fraction", type=float, default=None, help="per-trial GPU memory cap when sharing")
    s.add_argument("--storage", default=None, help="Tune results and checkpoints: a path or URI (./rnnsweep_results)")
    s.add_argument("--name", default=None, help="sweep name (default: space and time); needed with --resume")
    s.add_argument("--mlflow-uri", default=None, help="tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlruns.db)")
    s.add_argument("--address", default=None, help="join a running Ray cluster (default $RAY_ADDRESS, else local)")
    s.add_argument("--data-dir", default=None, help="data root for file-backed tasks (default $RNNSWEEP_DATA)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--confirm-top", type=int, default=3, help="configurations per model re-run with several seeds (3)")
    s.add_argument("--confirm-seeds", type=int, default=3, help="seeds per confirmed configuration (3)")
    s.add_argument("--published-only", action="store_true", help="run only the papers' published configurations")
    s.add_argument("--resume", action="store_true", help="continue the interrupted sweep --name")
    s.add_argument("--max-failures", type=int, default=2, help="restarts of a failed trial from its checkpoint (2)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fix a parameter for every trial")
    s.add_argument("--quiet", action="store_true", help="print only the summary at the end")
    s.add_argument("--verbose", action="store_true", help="Ray Tune's own status tables and worker logs instead of "
                                                          "one line per trial event")

    scope_help = ("rank only results comparable with this sweep's (same space, task options and budget; default: "
                  "the task's most recent sweep)")
    b = sub.add_parser("best", help="best configuration per model recorded for a task")
    b.add_argument("--task", required=True)
    b.add_argument("--mlflow-uri", default=None)
    b.add_argument("--sweep", default=None, help=scope_help)
    b.add_argument("--any-sweep", action="store_true", help="rank results of every sweep of the task together")
    b.add_argument("--format", default="table", choices=["table", "json"], help="table (default) or json")

    c = sub.add_parser("compare", help="per model: best validation and test, budget spent, the paper's number")
    c.add_argument("--task", required=True)
    c.add_argument("--mlflow-uri", default=None)
    c.add_argument("--sweep", default=None, help=scope_help)
    c.add_argument("--any-sweep", action="store_true", help="rank results of every sweep of the task together")
    c.add_argument("--format", default="table", choices=["table", "json", "csv", "md"], help="printed format (table)")
    c.add_argument("--out", default=None, help="also write the rows to FILE.md, FILE.csv, FILE.json or FILE.txt")

    r = sub.add_parser("reproduce", help="retrain the recorded best configuration and compare")
    r.add_argument("--task", default=None)
    r.add_argument("--model", default=None)
    r.add_argument("--seeds", type=int, default=None, help="how many of the recorded seeds to re-run (1)")
    r.add_argument("--tolerance", type=float, default=1e-4, help="relative tolerance on the metric (1e-4)")
    r.add_argument("--published", default=None, metavar="SPACE:NAME", help="train a paper's published configuration")
    r.add_argument("--mlflow-uri", default=None)
    r.add_argument("--data-dir", default=None)
    r.add_argument("--sweep", default=None, help=scope_help)
    r.add_argument("--any-sweep", action="store_true", help="the best result of every sweep of the task")

    sp = sub.add_parser("spaces", help="list search spaces, or `spaces show NAME`")
    sp.add_argument("action", nargs="?", default="list", choices=["list", "show"])
    sp.add_argument("name", nargs="?")

    sub.add_parser("tasks", help="list tasks")

    sv = sub.add_parser("server", help="start an MLflow tracking server (database backend, 127.0.0.1 by default)")
    from search.mlflow_server import add_arguments

    add_arguments(sv)

    rp = sub.add_parser("replay", help="write the MLflow writes a sweep spooled while its tracking server was away")
    rp.add_argument("journal", help="the sweep's mlflow_spool.jsonl (the sweep names it when it ends)")
    rp.add_argument("--mlflow-uri", default=None, help="tracking store to write to (default: the one it names)")

    d = sub.add_parser("data", help="list each task's files, verify checksums, prepare caches")
    d.add_argument("--data-dir", default=None)
    d.add_argument("--prepare", action="store_true", help="also build caches (e.g. MNIST decompressed)")
    for q in (s, b, c, r, sp, d):
        q.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                       help="a Python file registering own cells, tasks or spaces (repeatable; docs/plugins.md)")
    sub.choices["tasks"].add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                                      help="a Python file registering own cells, tasks or spaces (repeatable)")
    return p


def _explicit_sweep_flags(argv: list[str]) -> dict:
    """The sweep flags given on the command line (not their defaults), by argparse dest."""
    p = parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices["sweep"]
    for act in sub._actions:
        act.default = argparse.SUPPRESS
    return vars(p.parse_args(argv))


def resolve_sweep_args(a, argv: list[str]):
    """The sweep's arguments: with --config, the parser's defaults, then the file, then the flags given."""
    if not a.config:
        return a
    from search import sweepfile

    settings = sweepfile.load(a.config)
    explicit = _explicit_sweep_flags(argv)
    explicit.pop("cmd", None)
    explicit.pop("config", None)
    if "set" in explicit:
        explicit["set"] = _overrides(explicit["set"])
    defaults = {k: v for k, v in vars(a).items() if k not in explicit}
    defaults["set"] = []
    if explicit.get("quiet") or explicit.get("verbose"):  # the flag says how the sweep prints, not the file
        settings = {k: v for k, v in settings.items() if k not in ("quiet", "verbose")}
    merged = sweepfile.merge(settings, explicit, {k: v for k, v in defaults.items() if k != "set"})
    sweepfile.check_against_space(a.config, settings, merged)
    out = argparse.Namespace(**merged)
    out.file_set_keys = set(settings.get("set", {})) - set(explicit.get("set", {}))
    return out


def build_experiment(a):
    """The Experiment the sweep arguments describe (no Ray, nothing written)."""
    from search.sweep import Experiment

    overrides = a.set if isinstance(a.set, dict) else _overrides(a.set)
    return Experiment(space=a.space, models=tuple(m for m in a.model.split(",") if m), num_samples=a.samples,
                     scheduler=a.scheduler, searcher=a.searcher, grace_period=a.grace_period,
                     reduction_factor=a.reduction_factor, max_budget=a.max_budget, max_concurrent=a.concurrent,
                     cpus_per_trial=a.cpus_per_trial, gpus_per_trial=a.gpus_per_trial,
                     gpu_memory_fraction=a.gpu_memory_fraction, storage=a.storage, name=a.name,
                     mlflow_uri=a.mlflow_uri, address=a.address, seed=a.seed,
                     # absolute: Ray runs each trial in its own working directory
                     data_dir=os.path.abspath(os.path.expanduser(a.data_dir)) if a.data_dir else None,
                     confirm_top=a.confirm_top, confirm_seeds=a.confirm_seeds, published_only=a.published_only,
                     resume=a.resume, max_failures=a.max_failures, overrides=overrides,
                     ranges=getattr(a, "ranges", None) or {},
                     verbose=0 if a.quiet else (2 if a.verbose else 1), pack=a.pack,
                     plugins=tuple(os.path.abspath(os.path.expanduser(p)) for p in (a.plugin or ())))


def cmd_sweep(a) -> int:
    from search.sweep import run_sweep
    from search.tracking import resolve_uri

    a = resolve_sweep_args(a, getattr(a, "argv", None) or [])
    exp = build_experiment(a)
    if exp.resume and not exp.name:
        raise ConfigError("--resume needs the --name of the sweep to continue")
    try:
        summary = run_sweep(exp)
    except ConfigError as e:
        # a [set] value of the sweep file refused by the dry build: named as the file's key, not as a flag
        for k in sorted(getattr(a, "file_set_keys", ()), key=len, reverse=True):
            if str(e).startswith(f"--set {k}="):
                raise ConfigError(f"{a.config}: key 'set.{k}': {str(e)[len('--set '):]}") from None
        for k in exp.ranges:  # a value of a changed range that a component refuses (the dry build)
            if str(e).startswith(f"space {exp.space!r} parameter {k!r}"):
                raise ConfigError(f"{a.config}: key 'params.{k}': {e}") from None
        raise
    print(f"\nsweep {summary['sweep']}: {summary['trials']} trials on task {summary['task']} "
          f"(selection by {summary['metric']}, {summary['mode']})")
    from search import results, tracking
    from search.sweep import summary_line

    failed = summary_line(summary)
    if failed:
        print(f"error: {failed}", file=sys.stderr)
        return 1
    # this sweep's own results first, ranked only with comparable sweeps; models without a result and why
    print(results.best_table(tracking.client(summary["uri"]), summary["task"], sweep=summary["sweep"])
          if summary["best"] else "\n".join(
        [f"no model of sweep {summary['sweep']} has a result"] +
        [f"{x['model']}: no result: {x['reason']}" for x in results.without_full_budget(
            tracking.client(summary["uri"]), summary["task"], summary["sweep"])]))
    if summary["best"]:
        from datasets.baselines import summary_lines

        print(summary_lines(exp, summary))
    from search.tracking import redact

    uri = redact(resolve_uri(a.mlflow_uri))
    page = f"#/experiments/{summary['experiment_id']}/runs/{summary['parent_run_id']}"
    if uri.startswith("http"):
        print(f"\nMLflow: open {uri.rstrip('/')}/{page} (the sweep's parent run; its child runs are the trials)")
    else:
        print(f"\nMLflow: mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000\n"
              f"  then http://127.0.0.1:5000/{page} (the sweep's parent run; its child runs are the trials)")
    if summary.get("optuna_study"):
        print(f"Optuna study {summary['sweep']!r}: optuna-dashboard {summary['optuna_study']}")
    return 0


def cmd_best(a) -> int:
    from search import results, tracking

    rep = results.best_report(tracking.open_existing(a.mlflow_uri), a.task, a.sweep, a.any_sweep)
    if a.format == "json":
        print(results.to_json(rep), end="")
    else:
        print(results.best_text(rep))
    return 0


def cmd_compare(a) -> int:
    from search import results, tracking

    rows = results.compare_rows(tracking.open_existing(a.mlflow_uri), a.task, a.sweep, a.any_sweep)
    if a.out:  # before printing: a bad --out is one line and exit 2, not a table and then an error
        results.write_compare(rows, a.out)
    print(results.compare_text(rows, a.format), end="")
    if a.out:
        print(f"written to {a.out}", file=sys.stderr if a.format != "table" else sys.stdout)
    return 0


def cmd_reproduce(a) -> int:
    from search import results, tracking

    if a.seeds is not None and a.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {a.seeds}")
    if a.published:
        from search.published_run import run_published

        report, _ = run_published(a.published, seeds=a.seeds or 1, data_dir=a.data_dir)
        print(report)
        return 0
    if not a.task:
        raise ConfigError("reproduce needs --task (or --published SPACE:NAME)")
    if a.tolerance < 0:
        raise ConfigError(f"--tolerance must be >= 0, got {a.tolerance}")
    report, ok = results.reproduce(tracking.open_existing(a.mlflow_uri), a.task, a.model, a.seeds, a.tolerance,
                                   a.data_dir, sweep=a.sweep, any_sweep=a.any_sweep)
    print(report)
    if not ok:
        print("reproduction differs beyond the tolerance", file=sys.stderr)
        return 1
    return 0


def cmd_spaces(a) -> int:
    from spaces.registry import describe, get_space, spaces

    if a.action == "show":
        if not a.name:
            raise ConfigError("spaces show needs a space NAME; list them with `run_search.py spaces`")
        print(describe(get_space(a.name)))
        return 0
    from search.results import table

    rows = [[s.name, s.task, ", ".join(s.models), str(len(s.params)), str(len(s.seeds)), s.description[:60]]
            for s in spaces().values()]
    print(table(rows, ["space", "task", "models", "params", "seeds", "description"]))
    return 0


def cmd_tasks(a) -> int:
    from datasets.base import tasks
    from search.results import table

    rows = [[t.name, t.paper, t.description[:90]] for t in tasks().values()]
    print(table(rows, ["task", "paper", "description"]))
    return 0


def cmd_data(a) -> int:
    from datasets import files
    from search.results import table

    print(table(data_rows(files, a.data_dir), ["task", "file", "present", "checksum"]))
    if a.prepare:
        for line in files.prepare(a.data_dir):
            print(line)
    return 0


def data_rows(files, data_dir) -> list[list[str]]:
    """`data` rows in words: present yes/no, checksum ok / MISMATCH / unknown; a file of a group of alternatives
    (MNIST .gz or raw idx, a zip or the unpacked file, .mat or pickle) is not listed when another one is present."""
    rows = {(r.tasks, r.file): r for r in files.list_files(data_dir)}
    out = []
    for ds in files.CATALOGUE:
        tasks = ",".join(ds.tasks)
        present_groups = {f.group for f in ds.files if f.group and rows[(tasks, f.path)].present}
        for f in ds.files:
            r = rows[(tasks, f.path)]
            if f.group and f.group in present_groups and not r.present:
                continue  # an alternative to a file that is present: not needed
            alts = [g.path for g in ds.files if f.group and g.group == f.group and g.path != f.path]
            present = "yes" if r.present else ("no" + (f" (or {', '.join(alts)})" if alts else ""))
            check = {True: "ok", False: "MISMATCH", None: "-" if not r.present else "unknown"}[r.checksum_ok]
            out.append([tasks, f.path, present, check])
    return out


def cmd_replay(a) -> int:
    from search import tracking

    n, uri = tracking.replay(a.journal, a.mlflow_uri)
    p = Path(a.journal)
    done = p if p.name.endswith(".replayed") else p.with_name(p.name + ".replayed")
    if done != p:
        p.replace(done)  # a --resume does not replay it again (replaying it by hand again changes nothing)
    print(f"replayed {n} MLflow write(s) from {p} into {tracking.redact(uri)}; the journal is now {done}")
    return 0


def cmd_server(a) -> int:
    from search.mlflow_server import serve

    return serve(a)


COMMANDS = {"server": cmd_server, "sweep": cmd_sweep, "best": cmd_best, "compare": cmd_compare, "reproduce": cmd_reproduce,
            "spaces": cmd_spaces, "tasks": cmd_tasks, "data": cmd_data, "replay": cmd_replay}


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside a sweep's own handling (which says more): exit 143, one line."""
    exit_status = 143
    message = "terminated (SIGTERM)"


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    for k, v in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("DO_NOT_TRACK", "true"), ("RAY_USAGE_STATS_ENABLED", "0"),
                 ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")):
        os.environ.setdefault(k, v)
    a = parser().parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if getattr(a, "plugin", None):
            from search.plugins import load_plugins, read_plugins

            load_plugins(read_plugins(a.plugin))
        return COMMANDS[a.cmd](a)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if not getattr(e, "one_line", False):  # e.g. search.tracking.TrackingLost: a runtime failure said in a line
            raise
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_status", 1)
    except KeyboardInterrupt as e:
        # a sweep raises search.sweep.Interrupted (which names the sweep and the signal); anything else is Ctrl-C
        print(getattr(e, "message", "") or "interrupted; continue a sweep with `run_search.py sweep --resume --name "
              "NAME`", file=sys.stderr)
        return getattr(e, "exit_status", 130)


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.exit(main())
