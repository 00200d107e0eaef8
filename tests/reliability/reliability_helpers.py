"""Real processes for the reliability tests: the CLI in the background, an MLflow server, process trees, the
listening sockets of a set of processes (from /proc, no extra dependency), and Tune's per-trial result files.

Everything started here is stopped by its process id (or its own process group), never by name.
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from conftest import QUIET_ENV, ROOT, kill_pids, processes_under

PY = sys.executable
CLI = str(ROOT / "run_search.py")
# the demo space at the sizes of tests/search/test_cli_e2e.py, with epochs long enough (about a second) to be
# interrupted in the middle
TINY = ["--space", "demo/copy", "--max-budget", "3", "--concurrent", "2", "--scheduler", "fifo", "--confirm-top", "0",
        "--quiet", "--set", "updates=60", "--set", "delay=10", "--set", "n_val=100"]
SEED_LR = 0.001  # the demo space's published LSTM configuration keeps its own lr and hidden_size under --set
HUGE_HIDDEN = 16_000_000  # an h x h matrix of 1 PB: more than any machine can allocate (x86-64: 128 TiB of addresses)


def env_for(ray_tmp: str) -> dict[str, str]:
    env = {**os.environ, **QUIET_ENV, "RAY_TMPDIR": ray_tmp, "PYTHONPATH": str(ROOT)}
    for k in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS", "RNNSWEEP_DATA"):
        env.pop(k, None)
    return env


def new_ray_tmp() -> str:
    return tempfile.mkdtemp(prefix="rs-", dir="/tmp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout: float, what: str, every: float = 0.25, proc: subprocess.Popen | None = None):
    """Poll ``cond()`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds (or as soon as
    ``proc`` has exited, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (status {proc.returncode}) before: {what}")
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for: {what}")


# ---- processes ---------------------------------------------------------------------------------------------------
def _ppids() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            out[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def tree(pid: int) -> set[int]:
    """``pid`` and all its descendants alive now."""
    ppid = _ppids()
    found, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in ppid.items() if pp == p and c not in found]
        found.update(kids)
        frontier.extend(kids)
    return {p for p in found if Path(f"/proc/{p}").exists()}


def stop_all(pids, ray_tmp: str | None = None) -> None:
    """SIGTERM then SIGKILL the given processes and every process left under ``ray_tmp`` (by PID)."""
    pids = set(pids)
    if ray_tmp:
        pids |= set(processes_under(ray_tmp))
        for p in list(pids):  # Ray workers rename themselves (ray::...): find them as children of the raylets
            pids |= tree(p)
    pids.discard(os.getpid())
    kill_pids(sorted(pids))


class Cli:
    """``run_search.py`` in the background, in its own session, output to a file."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], log: Path):
        self.log = log
        self._f = open(log, "w")
        self.proc = subprocess.Popen([PY, CLI, *args], cwd=cwd, env=env, stdout=self._f, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._f.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


# ---- MLflow server -------------------------------------------------------------------------------------------------
def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(uri + "/health", timeout=2) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001
        return False


class Server:
    """The project's tracking server (``run_search.py server``; plain ``mlflow server`` if that command is not
    there yet) on 127.0.0.1:port with a sqlite database and served artifacts, in its own process group."""

    def __init__(self, work: Path, port: int, env: dict[str, str]):
        self.work, self.port, self.env = work, port, env
        self.uri = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def command(self) -> list[str]:
        db, art = f"sqlite:///{self.work / 'server.db'}", str(self.work / "server-artifacts")
        if (ROOT / "search" / "mlflow_server.py").is_file():
            return [PY, CLI, "server", "--port", str(self.port), "--backend-store-uri", db,
                    "--artifacts-destination", art, "--workers", "1"]
        return [PY, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--backend-store-uri",
                db, "--serve-artifacts", "--artifacts-destination", art, "--workers", "1"]

    def start(self, timeout: float = 180) -> None:
        self.starts += 1
        log = open(self.work / f"server-{self.starts}.log", "w")
        self.proc = subprocess.Popen(self.command(), cwd=self.work, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(lambda: healthy(self.uri), timeout, f"the MLflow server at {self.uri}", every=0.5, proc=self.proc)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """``sig`` to the server's whole process group, then wait until the group and the port are gone."""
        if self.proc is None or self.proc.poll() is not None and not self._group_alive():
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        wait_for(lambda: not self._group_alive(), 15, "the server's processes to end")
        if self._group_alive():
            os.killpg(self.proc.pid, signal.SIGKILL)

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False


# ---- listening sockets ---------------------------------------------------------------------------------------------
def _addr(hexaddr: str) -> str:
    if len(hexaddr) == 8:
        return str(ipaddress.IPv4Address(bytes.fromhex(hexaddr)[::-1]))
    raw = b"".join(bytes.fromhex(hexaddr[i:i + 8])[::-1] for i in range(0, 32, 8))
    return str(ipaddress.IPv6Address(raw))


def listening(pids) -> list[tuple[int, str, str, int]]:
    """(pid, process name, address, port) of every TCP socket in LISTEN state held by one of ``pids``."""
    owner: dict[str, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                owner[link[8:-1]] = pid
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            if state == "0A" and inode in owner:  # 0A = TCP_LISTEN
                host, port = local.split(":")
                pid = owner[inode]
                try:
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    name = "?"
                out.append((pid, name, _addr(host), int(port, 16)))
    return out


def is_loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


# ---- Tune's records ------------------------------------------------------------------------------------------------
def trials(exp_dir: Path) -> dict[str, dict]:
    """{trial id: {"config": params.json, "rows": result.json rows}} for every trial folder of a Tune experiment."""
    out = {}
    if not exp_dir.is_dir():
        return out
    for d in sorted(exp_dir.iterdir()):
        if not (d / "params.json").is_file():
            continue
        try:
            cfg = json.loads((d / "params.json").read_text())
        except ValueError:
            continue  # being written
        rows = []
        if (d / "result.json").is_file():
            for ln in (d / "result.json").read_text().splitlines():
                try:
                    rows.append(json.loads(ln))
                except ValueError:
                    pass  # a line being written
        out[d.name] = {"config": cfg, "rows": rows, "dir": d}
    return out


def seed_trial(exp_dir: Path):
    """(trial id, record) of the published seed configuration once it has reported an epoch, else None."""
    for tid, t in trials(exp_dir).items():
        if t["config"].get("lr") == SEED_LR and t["rows"]:
            return tid, t
    return None


def runs_of(uri: str, task: str = "copy_nnrnn"):
    """(parent runs, trial runs) of the task's MLflow experiment."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name(task)
    assert exp is not None, f"no MLflow experiment {task!r} at {uri}"
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("rnnsweep.kind") == "sweep"]
    trial_runs = [r for r in runs if r.data.tags.get("rnnsweep.kind") == "trial"]
    return c, parents, trial_runs


def epoch_steps(c, run_id: str) -> list[int]:
    return sorted(int(m.step) for m in c.get_metric_history(run_id, "epoch"))
