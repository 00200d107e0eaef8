"""`run_search.py server`: an MLflow tracking server for sweeps that span several machines.

It runs ``python -m mlflow server`` (the same Python, so the same pinned MLflow) in the foreground with a database
backend and artifacts served through the server (``--serve-artifacts``: clients never need the artifact store's
credentials), prints the tracking URI to pass to ``run_search.py sweep --mlflow-uri``, waits until ``/health``
answers, forwards SIGINT/SIGTERM to the server and exits with its exit status.

Without ``--auth`` the server has no authentication. It binds to 127.0.0.1 unless told otherwise; binding to another
address lets every machine that can reach that address and port read, change and delete every run (docs/cluster.md):
MLflow's host check (``--allowed-hosts``) is not access control, a forged ``Host:`` header passes it. ``--auth``
runs MLflow's basic-auth app (user names and passwords; plain HTTP, so inside a private network or behind TLS).
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from rnns.errors import ConfigError

HEALTH_WAIT_S = 180.0  # a first start creates the database schema (about 15 s on a small machine)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cwd = Path.cwd()
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (127.0.0.1). Anything else exposes the server, which has no "
                             "authentication, to every machine that can reach that address")
    parser.add_argument("--port", type=int, default=5000, help="port (5000)")
    parser.add_argument("--backend-store-uri", default=f"sqlite:///{cwd / 'mlflow-server.db'}",
                        help="runs database: sqlite:///PATH or postgresql://... (default ./mlflow-server.db)")
    parser.add_argument("--artifacts-destination", default=str(cwd / "mlartifacts"),
                        help="where the server stores artifacts: a folder or s3://BUCKET/PATH (default ./mlartifacts)")
    parser.add_argument("--workers", type=int, default=None, help="server worker processes (MLflow's default: 4)")
    parser.add_argument("--auth", action="store_true",
                        help="require a user name and password (MLflow's basic-auth app; needs the mlflow[auth] "
                             "extra and the admin password in $MLFLOW_AUTH_ADMIN_PASSWORD; clients set "
                             "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD)")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _client_host(host: str) -> str:
    """The address clients should use: the bound one, or this machine's address for a wildcard bind."""
    if host in ("0.0.0.0", "::", "[::]", ""):
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "THIS_MACHINE"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _probe_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _port_free(host: str, port: int) -> bool:
    fam = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]") or "0.0.0.0", port))
            return True
        except OSError:
            return False


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def command(args) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", args.host, "--port", str(args.port),
           "--backend-store-uri", args.backend_store_uri, "--serve-artifacts",
           "--artifacts-destination", args.artifacts_destination]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if getattr(args, "auth", False):
        cmd += ["--app-name", "basic-auth"]
    return cmd


AUTH_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"  # read by MLflow's basic-auth app when it creates the admin user


def check_auth(args) -> None:
    """--auth: the admin password is given (never on the command line or in a file) and the app can load."""
    if not getattr(args, "auth", False):
        return
    if not os.environ.get(AUTH_PASSWORD_ENV):
        raise ConfigError(f"--auth needs the admin password in ${AUTH_PASSWORD_ENV} (the admin user is 'admin'; "
                          "clients pass MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)")
    import importlib.util

    if importlib.util.find_spec("flask_wtf") is None:
        raise ConfigError("--auth needs MLflow's basic-auth app, which needs Flask-WTF: pip install 'mlflow[auth]'")


def write_auth_config(folder: Path) -> Path:
    """The basic-auth app's settings beside the server's database (mode 0600): users in ``mlflow-auth.db`` there,
    read access for other authenticated users, the admin password from the environment only."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mlflow-auth.ini"
    text = ("[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{(folder / 'mlflow-auth.db').resolve()}\nadmin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def exposure_warning(host: str, port: int, auth: bool) -> str | None:
    """What binding to a non-loopback address means; None on loopback."""
    if _is_loopback(host):
        return None
    if auth:
        return (f"warning: --host {host} serves MLflow over plain HTTP: user names and passwords cross the network "
                "in clear; keep it inside a private network or put a TLS reverse proxy in front (docs/cluster.md)")
    return (f"warning: --host {host} exposes the MLflow server, which has no authentication, to every machine that "
            f"can reach {host}:{port}: they can read, change and delete every run. MLflow's host check "
            "(--allowed-hosts) is not access control: a request with a forged Host header passes it. Use --auth, a "
            "reverse proxy with authentication, or 127.0.0.1 and an SSH tunnel, inside a private network")


def _validate(args) -> None:
    check_auth(args)
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    uri = args.backend_store_uri
    if uri.startswith("sqlite:///"):
        parent = Path(uri[len("sqlite:///"):]).expanduser().resolve().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigError(f"cannot write the server's database in {parent}: choose a writable --backend-store-uri")
    dest = args.artifacts_destination
    if "://" not in dest or dest.startswith("file://"):
        d = Path(dest[len("file://"):] if dest.startswith("file://") else dest).expanduser().resolve()
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the artifacts folder {d} ({e.strerror}): choose --artifacts-destination") from None
        args.artifacts_destination = str(d)
    if not _port_free(args.host, args.port):
        raise ConfigError(f"cannot listen on {args.host}:{args.port} (in use, or not an address of this machine): "
                          "choose another --port or --host")


def serve(args) -> int:
    _validate(args)
    warning = exposure_warning(args.host, args.port, getattr(args, "auth", False))
    if warning:
        print(warning, file=sys.stderr, flush=True)
    env = {**os.environ}
    if getattr(args, "auth", False):
        uri = args.backend_store_uri
        folder = Path(uri[len("sqlite:///"):]).expanduser().resolve().parent if uri.startswith("sqlite:///") \
            else Path.cwd()
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(write_auth_config(folder))
    for k, v in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("DO_NOT_TRACK", "true")):
        env.setdefault(k, v)
    uri = f"http://{_client_host(args.host)}:{args.port}"
    health = f"http://{_probe_host(args.host)}:{args.port}/health"
    # same process group as this one: a terminal's Ctrl-C reaches both, and killing the group ends the server too
    proc = subprocess.Popen(command(args), env=env)
    forwarded: list[int] = []
    first_signal = [0.0]

    def forward(signum, frame):
        if not forwarded:
            first_signal[0] = time.monotonic()
        forwarded.append(signum)
        if signum == signal.SIGINT and _terminal_delivered():
            return  # the terminal sent SIGINT to the whole foreground group: the server has it already
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"MLflow tracking server starting on {args.host}:{args.port} (database {args.backend_store_uri}, "
              f"artifacts {args.artifacts_destination})", flush=True)
        deadline = time.monotonic() + HEALTH_WAIT_S
        while proc.poll() is None and not forwarded and time.monotonic() < deadline:
            if _healthy(health):
                print(f"ready: use --mlflow-uri {uri} (or MLFLOW_TRACKING_URI={uri}); UI at {uri}", flush=True)
                break
            time.sleep(0.5)
        else:
            if proc.poll() is None and not forwarded:
                print(f"warning: {health} has not answered after {HEALTH_WAIT_S:g} s; still waiting for the server",
                      file=sys.stderr, flush=True)
        while True:
            try:
                rc = proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if forwarded and time.monotonic() > first_signal[0] + 30:
                    proc.kill()  # it ignored the signal for 30 s
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc < 0:
        # ended by the signal we forwarded: a requested stop is a clean exit; otherwise report it shell-style
        return 0 if -rc in forwarded else 128 - rc
    if rc != 0 and not forwarded:
        print(f"error: the MLflow server exited with status {rc}", file=sys.stderr)
    return rc


def _terminal_delivered() -> bool:
    """True when this process group is the terminal's foreground group (so Ctrl-C went to the server too)."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False
