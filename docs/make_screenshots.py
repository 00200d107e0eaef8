"""The README's MLflow screenshots, taken by headless Chromium from a real demo sweep (a docs tool, not a test).

Needs what the project does not: Debian's ``chromium`` and ``chromium-driver`` packages and ``pip install selenium``
(in any environment: this script drives the browser; the sweep and the MLflow server run in the project's .venv).

    .venv/bin/python run_search.py sweep --space demo/copy --samples 8 --max-budget 3 --set updates=300 \\
        --confirm-top 1 --confirm-seeds 2 --mlflow-uri sqlite:////tmp/shots/mlruns.db --storage /tmp/shots/res
    /path/to/selenium/python docs/make_screenshots.py --mlflow-uri sqlite:////tmp/shots/mlruns.db

It starts ``mlflow server`` on 127.0.0.1 over that store, opens the task's experiment in the "Model training" view,
and writes docs/img/mlflow_runs.png (the runs table: names, status, the one selection metric), docs/img/
mlflow_chart.png (the trials' learning curves in MLflow's chart view) and docs/img/mlflow_run.png (one trial's page).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the MLflow server at {url} did not answer in {timeout:.0f} s")


def api(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def click_text(driver, text: str) -> bool:
    from selenium.webdriver.common.by import By

    for el in driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']"):
        try:
            el.click()
            return True
        except Exception:  # noqa: BLE001 - hidden or covered: try the next match
            continue
    return False


def close_assistant(driver) -> None:
    from selenium.webdriver.common.by import By

    for el in driver.find_elements(By.XPATH, "//*[contains(text(),'MLflow Assistant')]/ancestor::*[4]//button"):
        label = (el.get_attribute("aria-label") or "").lower()
        if "close" in label:
            try:
                el.click()
                return
            except Exception:  # noqa: BLE001
                pass


def expand_sweeps(driver) -> None:
    """Open each sweep's parent run in the runs table, so its trials (child runs) are listed under it."""
    from selenium.webdriver.common.by import By

    for b in driver.find_elements(By.XPATH, "//button[contains(@data-component-id, 'runnamecellrenderer')]"):
        try:
            b.click()
        except Exception:  # noqa: BLE001
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlflow-uri", required=True, help="the sweep's store, sqlite:///PATH")
    ap.add_argument("--task", default="copy_nnrnn")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="the project's Python")
    a = ap.parse_args()
    from selenium import webdriver

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    server = subprocess.Popen([a.python, "-m", "mlflow", "server", "--backend-store-uri", a.mlflow_uri,
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_health(url)
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name={a.task}") as r:
            exp = json.loads(r.read())["experiment"]
        eid = exp["experiment_id"]
        runs = api(url, "/api/2.0/mlflow/runs/search", {
            "experiment_ids": [eid], "filter": "tags.`rnnsweep.kind` = 'trial'", "max_results": 50,
            "order_by": ["metrics.best_val_loss ASC"]})["runs"]
        opts = webdriver.ChromeOptions()
        for o in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=2000,1100",
                  "--disable-dev-shm-usage"):
            opts.add_argument(o)
        opts.binary_location = "/usr/bin/chromium"
        from selenium.webdriver.chrome.service import Service

        driver = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
        try:
            IMG.mkdir(parents=True, exist_ok=True)
            driver.get(f"{url}/#/experiments/{eid}/runs")
            time.sleep(6)
            click_text(driver, "Model training")
            time.sleep(2)
            close_assistant(driver)
            expand_sweeps(driver)
            time.sleep(2)
            driver.save_screenshot(str(IMG / "mlflow_runs.png"))
            driver.get(f"{url}/#/experiments/{eid}/runs?compareRunsMode=CHART")
            time.sleep(8)
            close_assistant(driver)
            driver.save_screenshot(str(IMG / "mlflow_chart.png"))
            if runs:
                rid = runs[0]["info"]["run_id"]
                driver.get(f"{url}/#/experiments/{eid}/runs/{rid}")
                time.sleep(5)
                close_assistant(driver)
                driver.save_screenshot(str(IMG / "mlflow_run.png"))
        finally:
            driver.quit()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    print("written:", ", ".join(str(p.relative_to(ROOT)) for p in sorted(IMG.glob("mlflow_*.png"))))


if __name__ == "__main__":
    sys.exit(main())
