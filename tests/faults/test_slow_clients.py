"""Slow clients: 8 x workers x threads connections trickling one byte a second.

Against bare gunicorn they hold every thread, so readiness, liveness and real requests time out (the control case:
this is what made the kubelet restart pods in a loop). With nginx in front (the pod's proxy container, the local
stack's proxy), gunicorn only ever sees complete requests: the probes on ADMIN_PORT stay green, requests through
nginx are served, and nginx drops the header tricklers after PROXY_HEADER_TIMEOUT.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sklearn.pipeline import Pipeline

from core.store import ModelStore
from devstack import emulators, proxy
from devstack.emulators import Service
from predictor.proxy import ProxySettings
from predictor.settings import PredictorSettings
from tests.faults.report import Row
from tests.faults.slow import Sampler, Trickle
from tests.polling import wait_for
from tests.predictor.conftest import publish

pytestmark = [pytest.mark.faults, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
THREADS = PredictorSettings.model_fields["worker_threads"].default
SLOW = 8 * WORKERS * THREADS  # at 2x and 4x gunicorn 27 fails about half the probes; at 8x all of them
SAMPLE_SECONDS = 6.0


@dataclass(frozen=True)
class Predictor:
    """A running `python -m predictor`: PORT (`service.port`) and ADMIN_PORT."""

    service: Service
    admin_port: int


@pytest.fixture
def predictor(
    common_env: dict[str, str], store: ModelStore, fitted_model: Pipeline, tmp_path: Path
) -> Iterator[Predictor]:
    """`python -m predictor` on loopback serving a published model, with PORT and ADMIN_PORT."""
    publish(store, fitted_model)
    port, admin = emulators.free_port(), emulators.free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **common_env, "PORT": str(port), "BIND_HOST": "127.0.0.1",
           "ADMIN_PORT": str(admin), "ADMIN_BIND_HOST": "127.0.0.1", "WEB_CONCURRENCY": str(WORKERS),
           "MODEL_EVENTS_ENABLED": "false"}  # fmt: skip
    service = emulators.spawn("predictor", [sys.executable, "-m", "predictor"], port, tmp_path / "p.log", env, ROOT)
    try:
        ready = f"http://127.0.0.1:{admin}/v2/health/ready"
        wait_for(lambda: requests.get(ready, timeout=2).status_code == 200, 90, "predictor ready", service=service)
        yield Predictor(service, admin)
    finally:
        service.stop()


def siege(front_port: int, admin_port: int) -> tuple[Trickle, dict[str, list[int]]]:
    trickle = Trickle(front_port, SLOW)
    time.sleep(2.0)  # every slow connection has sent its first bytes
    samples = Sampler(f"http://127.0.0.1:{front_port}", f"http://127.0.0.1:{admin_port}").run(SAMPLE_SECONDS)
    return trickle, samples


def longest_failure(statuses: list[int]) -> int:
    """Most consecutive samples without a 200."""
    longest = run = 0
    for status in statuses:
        run = 0 if status == 200 else run + 1
        longest = max(longest, run)
    return longest


def summary(samples: dict[str, list[int]]) -> str:
    return ", ".join(f"{kind} {sum(s == 200 for s in got)}/{len(got)} ok" for kind, got in samples.items())


def test_bare_gunicorn_stalls_under_slow_clients(predictor: Predictor, row: Row) -> None:
    """Control: without the proxy the slow clients hold the threads; the kubelet would mark the pod unready
    (readiness failing failureThreshold=2 times in a row) and restart it (liveness failing 3 times in a row)."""
    trickle, samples = siege(predictor.service.port, predictor.admin_port)
    trickle.stop()
    row.note(f"{SLOW} slow clients on bare gunicorn ({WORKERS}x{THREADS}): {summary(samples)}")
    assert longest_failure(samples["ready"]) >= 2, samples
    assert longest_failure(samples["live"]) >= 3, samples
    assert samples["api"].count(200) < len(samples["api"]) / 2, samples


def test_nginx_keeps_probes_and_requests_green(predictor: Predictor, tmp_path: Path, row: Row) -> None:
    settings = ProxySettings.model_validate({
        "proxy_listen_host": "127.0.0.1", "proxy_port": emulators.free_port(),
        "proxy_health_port": emulators.free_port(), "proxy_runtime_dir": tmp_path / "proxy",
    })  # fmt: skip
    max_body = PredictorSettings.model_fields["max_body_bytes"].default
    nginx = proxy.start_proxy(settings, predictor.service.host, max_body, tmp_path / "proxy.log")
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    try:
        trickle, samples = siege(settings.proxy_port, predictor.admin_port)
        try:
            deadline = settings.proxy_header_timeout + 3
            wait_for(lambda: all(s.dropped for s in trickle.header_trickles), deadline, "header tricklers dropped")
            held = [s for s in trickle.body_trickles if s.dropped is None]
            after_drop = Sampler(nginx.url, f"http://127.0.0.1:{predictor.admin_port}").run(2)
        finally:
            trickle.stop()
    finally:
        nginx.stop()
    waited = max((s.dropped or 0) - s.opened for s in trickle.header_trickles)
    row.note(f"{SLOW} slow clients through nginx: {summary(samples)}; header tricklers dropped after "
             f"<= {waited:.1f} s, {len(held)} body tricklers held by nginx")  # fmt: skip
    row.add_load(sum(map(len, samples.values())), sum(s != 200 for got in samples.values() for s in got), [])
    assert samples == {kind: [200] * len(got) for kind, got in samples.items()}, samples
    assert after_drop == {kind: [200] * len(got) for kind, got in after_drop.items()}, after_drop
    assert waited <= settings.proxy_header_timeout + 2
    assert len(held) == len(trickle.body_trickles)  # a 1 byte/s body never pauses PROXY_BODY_TIMEOUT: nginx holds it
