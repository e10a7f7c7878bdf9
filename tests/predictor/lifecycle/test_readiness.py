"""Pod-wide readiness: the counting of serving workers' states, and `python -m predictor` with two workers."""

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
from sklearn.pipeline import Pipeline

from core.store import ModelStore
from devstack.emulators import Service, free_port, spawn
from predictor.lifecycle import handover
from predictor.lifecycle.readiness import PodReadiness
from tests.polling import wait_for
from tests.predictor.conftest import install, installed, publish

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 40.0


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_ready_workers_counts_live_pids_that_wrote_a_version(tmp_path: Path, fitted_model: Pipeline) -> None:
    states = handover.worker_states(tmp_path)
    handover.clear_worker_states(tmp_path)
    pod = PodReadiness(tmp_path, 2)
    assert pod.ready_workers() == 0
    pod.record(installed(fitted_model))  # this process serves a model
    (states / str(os.getppid())).write_text("")  # live, serves nothing yet
    (states / str(dead_pid())).write_text("v2")  # died before child_exit forgot it
    (states / ".12345.tmp").write_text("v2")  # a state being written is not read
    assert pod.ready_workers() == 1
    (states / str(os.getppid())).write_text("v2")
    assert pod.ready_workers() == 2
    handover.forget_worker(tmp_path, os.getppid())
    assert pod.ready_workers() == 1
    handover.clear_worker_states(tmp_path)
    assert pod.ready_workers() == 0


def test_readiness_stays_per_process_without_gunicorn(app: Flask, fitted_model: Pipeline) -> None:
    client = app.test_client()
    body = client.get("/readyz").get_json()
    assert (body["error"]["code"], body["error"]["details"]) == ("model_not_ready", None)
    install(app, fitted_model)
    assert client.get("/readyz").get_json() == {"ready": True}


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's children except the model agent."""
    text = Path(f"/proc/{master}/task/{master}/children").read_text()
    pids = [int(pid) for pid in text.split()]
    return sorted(pid for pid in pids if b"predictor.agent" not in Path(f"/proc/{pid}/cmdline").read_bytes())


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
        "REUSE_PORT": "false",  # one shared socket: probes reach the running worker while the other is frozen
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
