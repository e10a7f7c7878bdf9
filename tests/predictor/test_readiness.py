"""Pod-wide readiness: the counting of serving workers, and `python -m predictor` with two workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from sklearn.pipeline import Pipeline

from core.store import ModelStore
from devstack.emulators import Service, free_port, spawn
from predictor.readiness import GAUGE, serving_workers
from tests.polling import wait_for
from tests.predictor.conftest import installed, publish

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 40.0


def write_gauge(directory: Path, pid: int, values: dict[str, float]) -> None:
    """A worker's livesum gauge file as prometheus_client writes it: one value per version label."""
    store = MmapedDict(str(directory / f"gauge_livesum_{pid}.db"))
    for version, value in values.items():
        store.write_value(mmap_key(GAUGE, GAUGE, ["version"], [version], "help"), value, 0.0)
    store.close()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_serving_workers_counts_live_pids_serving_some_version(tmp_path: Path) -> None:
    assert serving_workers(tmp_path) == 0
    write_gauge(tmp_path, os.getpid(), {"v1": 0.0, "v2": 1.0})  # swapped from v1 to v2
    write_gauge(tmp_path, os.getppid(), {"v1": 0.0})  # live, serves nothing (a swap away from v1 in progress)
    write_gauge(tmp_path, dead_pid(), {"v2": 1.0})  # died before child_exit removed its file
    (tmp_path / "counter_12345.db").write_bytes(b"")  # other metric files are not read
    assert serving_workers(tmp_path) == 1
    write_gauge(tmp_path, os.getppid(), {"v1": 0.0, "v2": 1.0})
    assert serving_workers(tmp_path) == 2


def test_readiness_stays_per_process_without_gunicorn(app: Flask, fitted_model: Pipeline) -> None:
    client = app.test_client()
    body = client.get("/readyz").get_json()
    assert (body["error"]["code"], body["error"]["details"]) == ("model_not_ready", None)
    app.extensions["registry"].current = installed(fitted_model)
    assert client.get("/readyz").get_json() == {"ready": True}


def worker_pids(master: int) -> list[int]:
    text = Path(f"/proc/{master}/task/{master}/children").read_text()
    return sorted(int(pid) for pid in text.split())


def readyz(url: str) -> tuple[int, Any]:
    response = requests.get(f"{url}/readyz", timeout=2)
    body = response.json()
    return response.status_code, body.get("error", {}).get("details") if response.status_code != 200 else body


@pytest.fixture
def empty_pod(common_env: dict[str, str], tmp_path: Path) -> Iterator[Service]:
    """`python -m predictor` with two workers on a bucket with no model yet."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), **common_env, "PORT": str(port), "WEB_CONCURRENCY": "2",
        "MODEL_EVENTS_ENABLED": "false", "RECONCILE_INTERVAL_WITHOUT_EVENTS": "0.5", "LOAD_RETRY_MAX": "0.5",
        "WORKER_TIMEOUT": "120",
    }  # fmt: skip
    service = spawn("predictor", [sys.executable, "-m", "predictor"], port, tmp_path / "predictor.log", env, REPO)
    try:
        yield service
    finally:
        for pid in worker_pids(service.process.pid) if service.alive() else []:
            os.kill(pid, signal.SIGCONT)
        service.stop()


@pytest.mark.integration
def test_pod_is_ready_only_when_every_worker_serves(
    empty_pod: Service, store: ModelStore, fitted_model: Pipeline
) -> None:
    url = empty_pod.url
    assert wait_for(
        lambda: readyz(url) == (503, {"ready_workers": 0, "workers": 2}), START_TIMEOUT, "503", service=empty_pod
    )
    workers = wait_for(lambda: len(pids := worker_pids(empty_pod.process.pid)) == 2 and pids,
                       START_TIMEOUT, "two workers", service=empty_pod)  # fmt: skip
    assert workers
    os.kill(workers[0], signal.SIGSTOP)  # this worker cannot load the model (nor answer) until SIGCONT
    lineage = publish(store, fitted_model)
    # The running worker loads it and is ready itself, but the pod is not: one of its two workers has no model.
    wait_for(
        lambda: requests.get(f"{url}/v1/model", timeout=2).json()["ready"], 10, "one worker serving", service=empty_pod
    )
    assert readyz(url) == (503, {"ready_workers": 1, "workers": 2})
    v2 = requests.get(f"{url}/v2/health/ready", timeout=2)
    assert (v2.status_code, v2.json()) == (503, {"error": "1 of 2 workers serve a model; some workers have none"})
    os.kill(workers[0], signal.SIGCONT)
    started = time.monotonic()
    wait_for(
        lambda: readyz(url) == (200, {"ready": True, "ready_workers": 2, "workers": 2}), 10, "200", service=empty_pod
    )
    print(f"\npod ready {time.monotonic() - started:.2f} s after the second worker resumed ({lineage.version})")
    assert requests.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
