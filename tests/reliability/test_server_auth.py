"""``run_search.py server``: MLflow's host check is not access control, so a server bound beyond loopback says so, and
``--auth`` runs MLflow's basic-auth app (admin password from the environment only, settings file 0600)."""
from __future__ import annotations

import argparse
import importlib.util
import stat

import pytest

import run_search
from search import mlflow_server as S


def _args(tmp_path, *extra):
    p = argparse.ArgumentParser()
    S.add_arguments(p)
    return p.parse_args(["--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
                         str(tmp_path / "art"), *extra])


def test_auth_runs_the_basic_auth_app(tmp_path):
    cmd = S.command(_args(tmp_path, "--auth"))
    assert cmd[cmd.index("--app-name") + 1] == "basic-auth"
    assert "--app-name" not in S.command(_args(tmp_path))


def test_auth_settings_file(tmp_path, monkeypatch):
    monkeypatch.setenv(S.AUTH_PASSWORD_ENV, "not-in-the-file")
    path = S.write_auth_config(tmp_path / "srv")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert f"database_uri = sqlite:///{tmp_path / 'srv' / 'mlflow-auth.db'}" in text
    assert "not-in-the-file" not in text and "admin_password" not in text


@pytest.mark.parametrize("password,expected", [("", "$MLFLOW_AUTH_ADMIN_PASSWORD"), ("pw", "mlflow[auth]")])
def test_auth_refusals_are_one_line(tmp_path, monkeypatch, capsys, password, expected):
    if password and importlib.util.find_spec("flask_wtf") is not None:
        pytest.skip("Flask-WTF is installed: --auth would start")
    monkeypatch.setenv(S.AUTH_PASSWORD_ENV, password)
    rc = run_search.main(["server", "--auth", "--port", "1", "--backend-store-uri",
                          f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "art")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "server.db").exists() and not (tmp_path / "mlflow-auth.ini").exists()


def test_exposure_warning_says_the_host_check_is_not_access_control():
    assert S.exposure_warning("127.0.0.1", 5000, False) is None
    w = S.exposure_warning("0.0.0.0", 5000, False)
    assert "not access control" in w and "forged Host header" in w and "--auth" in w
    assert "plain HTTP" in S.exposure_warning("0.0.0.0", 5000, True)
