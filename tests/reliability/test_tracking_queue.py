"""The driver's MLflow write queue (search.tracking.RunWriter) in isolation: what it does between the events of a
sweep while the tracking server is away (the end-to-end outage is test_trial_faults.py::test_tracking_outage_...)."""
from __future__ import annotations

import os
import time

import pytest
from mlflow.exceptions import MlflowException

from reliability_helpers import free_port
from search import tracking as T


def _writer(uri: str) -> T.RunWriter:
    return T.RunWriter(uri, retry_seconds=3.0)


def test_writes_wait_in_order_while_the_server_is_away_without_holding_up_the_sweep():
    w = _writer(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    done, calls = [], []

    def failing():
        calls.append(1)
        raise MlflowException("API request failed: connection refused")

    w.do(failing)
    assert w.pending and w.down
    t0 = time.monotonic()
    for i in range(5):  # later events while the server is down: queued, not tried, and no waiting
        w.do(lambda i=i: done.append(i))
    assert time.monotonic() - t0 < 5.0 and len(calls) == 1 and len(w.pending) == 6 and done == []
    w.pending[0] = lambda: done.append("first")
    w.down = False  # the server answers again: everything is written, in order
    assert w.flush() and done == ["first", 0, 1, 2, 3, 4] and not w.pending


def test_the_end_of_a_sweep_gives_up_after_its_wait_and_says_so(capsys):
    w = _writer(f"http://127.0.0.1:{free_port()}")
    w.do(lambda: (_ for _ in ()).throw(MlflowException("API request failed")))
    t0 = time.monotonic()
    assert w.flush(wait=w.retry_seconds) is False
    assert 2.5 < time.monotonic() - t0 < 20 and len(w.pending) == 1
    assert "queued for retry" in capsys.readouterr().out


def test_a_refused_write_is_reported_and_does_not_block_the_queue(capsys):
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    w = _writer(f"http://127.0.0.1:{free_port()}")
    done = []

    def refused():
        raise MlflowException("Changing param values is not allowed", error_code=INVALID_PARAMETER_VALUE)

    w.do(refused)
    w.do(lambda: done.append("next"))
    assert done == ["next"] and not w.pending
    assert "refused a write, skipped (INVALID_PARAMETER_VALUE" in capsys.readouterr().out


def test_quick_http_settings_apply_only_while_writing_and_keep_the_users(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    seen = {}
    with T._quick_http():
        seen.update({k: os.environ.get(k) for k in T.QUICK_HTTP})
    assert seen["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == T.QUICK_HTTP["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert seen["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77", "a setting the user made is kept"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"


@pytest.mark.parametrize("text,kind", [
    ("Traceback ...\nRuntimeError: [enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
     "you tried to allocate 1024000000000000 bytes. Error code 12 (Cannot allocate memory)", "oom"),
    ("Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB", "oom"),
    ("ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.", "oom"),
    ("Traceback ...\nsearch.trainable.CheckpointError: checkpoint /x/trainer.pt is damaged or truncated", "error"),
    ("", "error"),
])
def test_failure_reason(text, kind):
    k, reason = T.failure_reason(text)
    assert k == kind and "\n" not in reason and reason
