"""Slow clients: connections trickling their header or body one byte a second.

Against bare gunicorn they hold its threads, so readiness, liveness and real requests time out: the control case,
what made the kubelet restart pods in a loop. With one worker every request then times out. With two workers it
depends on how the connections were spread: between half and all of them time out (gunicorn 27's gthread waits up
to 5 s for a first byte before taking a thread, but once a byte came it reads the rest on the thread). With nginx
in front (the pod's proxy container, the local stack's proxy), gunicorn only ever sees complete requests: with
8 x workers x threads slow clients the probes on ADMIN_PORT stay green, requests through nginx are served, and
nginx drops the header tricklers after PROXY_HEADER_TIMEOUT. nginx also refuses bodies above MAX_BODY_BYTES in the
predictor's error formats, never forwards /admin/* or /metrics, and answers 503 while the predictor is down; and
under a request flood through nginx the probes still answer within the kubelet's timeouts.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
from tests.faults.load import running
from tests.faults.report import Row
from tests.faults.slow import Sampler, Trickle
from tests.polling import wait_for
from tests.predictor.conftest import publish

pytestmark = [pytest.mark.faults, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
THREADS = PredictorSettings.model_fields["worker_threads"].default
MAX_BODY = PredictorSettings.model_fields["max_body_bytes"].default
SAMPLE_SECONDS = 6.0


@dataclass(frozen=True)
class Predictor:
    """A running `python -m predictor`: PORT (`service.port`) and ADMIN_PORT."""

    service: Service
    admin_port: int
    workers: int


@pytest.fixture
def predictor(
    request: pytest.FixtureRequest,
    common_env: dict[str, str],
    store: ModelStore,
    fitted_model: Pipeline,
    tmp_path: Path,
) -> Iterator[Predictor]:
    """`python -m predictor` (the parameter's number of workers) on loopback, serving a model, with ADMIN_PORT."""
    workers = request.param
    publish(store, fitted_model)
    port, admin = emulators.free_port(), emulators.free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **common_env, "PORT": str(port), "BIND_HOST": "127.0.0.1",
           "ADMIN_PORT": str(admin), "ADMIN_BIND_HOST": "127.0.0.1", "WEB_CONCURRENCY": str(workers),
           "MODEL_EVENTS_ENABLED": "false"}  # fmt: skip
    service = emulators.spawn("predictor", [sys.executable, "-m", "predictor"], port, tmp_path / "p.log", env, ROOT)
    try:
        ready = f"http://127.0.0.1:{admin}/v2/health/ready"
        wait_for(lambda: requests.get(ready, timeout=2).status_code == 200, 90, "predictor ready", service=service)
        yield Predictor(service, admin, workers)
    finally:
        service.stop()


def siege(front_port: int, admin_port: int, slow: int) -> tuple[Trickle, dict[str, list[int]]]:
    trickle = Trickle(front_port, slow)
    time.sleep(2.0)  # every slow connection has sent its first bytes
    samples = Sampler(f"http://127.0.0.1:{front_port}", f"http://127.0.0.1:{admin_port}").run(SAMPLE_SECONDS)
    return trickle, samples


def summary(samples: dict[str, list[int]]) -> str:
    return ", ".join(f"{kind} {sum(s == 200 for s in got)}/{len(got)} ok" for kind, got in samples.items())


@pytest.mark.parametrize("predictor", [1], indirect=True)
def test_bare_gunicorn_stalls_under_slow_clients(predictor: Predictor, row: Row) -> None:
    """Control: without the proxy, 4 x workers x threads slow clients hold every thread of a one-worker gunicorn;
    every probe and request times out (the kubelet would mark the pod unready, then restart it)."""
    slow = 4 * predictor.workers * THREADS
    trickle, samples = siege(predictor.service.port, predictor.admin_port, slow)
    trickle.stop()
    row.note(f"{slow} slow clients on bare gunicorn ({predictor.workers}x{THREADS}): {summary(samples)}")
    assert samples == {kind: [0] * len(got) for kind, got in samples.items()}, samples


@contextmanager
def nginx_in_front(predictor: Predictor, tmp_path: Path) -> Iterator[tuple[ProxySettings, Service]]:
    """nginx with the project's configuration (default timeouts and MAX_BODY_BYTES) in front of `predictor`."""
    settings = ProxySettings.model_validate({
        "proxy_listen_host": "127.0.0.1", "proxy_port": emulators.free_port(),
        "proxy_health_port": emulators.free_port(), "proxy_runtime_dir": tmp_path / "proxy",
    })  # fmt: skip
    nginx = proxy.start_proxy(settings, predictor.service.host, MAX_BODY, tmp_path / "proxy.log")
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    try:
        yield settings, nginx
    finally:
        nginx.stop()


@pytest.mark.parametrize("predictor", [2], indirect=True)
def test_nginx_keeps_probes_and_requests_green(predictor: Predictor, tmp_path: Path, row: Row) -> None:
    with nginx_in_front(predictor, tmp_path) as (settings, nginx):
        slow = 8 * predictor.workers * THREADS
        trickle, samples = siege(settings.proxy_port, predictor.admin_port, slow)
        try:
            deadline = settings.proxy_header_timeout + 3
            wait_for(lambda: all(s.dropped for s in trickle.header_trickles), deadline, "header tricklers dropped")
            held = [s for s in trickle.body_trickles if s.dropped is None]
            after_drop = Sampler(nginx.url, f"http://127.0.0.1:{predictor.admin_port}").run(2)
        finally:
            trickle.stop()
    waited = max((s.dropped or 0) - s.opened for s in trickle.header_trickles)
    row.note(f"{slow} slow clients through nginx ({predictor.workers}x{THREADS}): {summary(samples)}; header "
             f"tricklers dropped after <= {waited:.1f} s, {len(held)} body tricklers held by nginx")  # fmt: skip
    row.add_load(sum(map(len, samples.values())), sum(s != 200 for got in samples.values() for s in got), [])
    assert samples == {kind: [200] * len(got) for kind, got in samples.items()}, samples
    assert after_drop == {kind: [200] * len(got) for kind, got in after_drop.items()}, after_drop
    assert waited <= settings.proxy_header_timeout + 2
    assert len(held) == len(trickle.body_trickles)  # a 1 byte/s body never pauses PROXY_BODY_TIMEOUT: nginx holds it


@pytest.mark.parametrize("predictor", [1], indirect=True)
def test_nginx_refuses_what_the_predictor_would_and_hides_the_admin_routes(
    predictor: Predictor, tmp_path: Path, row: Row
) -> None:
    json_type = {"Content-Type": "application/json"}
    admin = f"http://127.0.0.1:{predictor.admin_port}"
    with nginx_in_front(predictor, tmp_path) as (_, nginx):
        big = b"[" + b" " * MAX_BODY + b"]"
        too_large = requests.post(nginx.url + "/predict", data=big, headers=json_type, timeout=10)
        v2_too_large = requests.post(nginx.url + "/v2/models/iris/infer", data=big, headers=json_type, timeout=10)
        hidden = {path: requests.get(nginx.url + path, timeout=5) for path in
                  ("/metrics", "/admin/reload", "//admin/reload", "/%61dmin/reload", "/metrics/")}  # fmt: skip
        served = requests.post(nginx.url + "/api", data=b"[5.1, 3.5, 1.4, 0.2]", headers=json_type, timeout=5)
        scraped = requests.get(admin + "/metrics", timeout=5)
        predictor.service.stop()
        down = requests.post(nginx.url + "/api", data=b"[5.1, 3.5, 1.4, 0.2]", headers=json_type, timeout=10)
    row.note(f"413 above {MAX_BODY} bytes, 404 for {len(hidden)} admin/metrics spellings, 503 with the predictor down")
    assert (too_large.status_code, too_large.json()["error"]["code"]) == (413, "payload_too_large")
    assert v2_too_large.status_code == 413
    assert isinstance(v2_too_large.json()["error"], str)  # the V2 routes' own error format
    assert {path: r.status_code for path, r in hidden.items()} == dict.fromkeys(hidden, 404)
    assert all(r.json()["error"]["code"] == "not_found" for r in hidden.values())
    assert (served.status_code, served.json()) == (200, "[0]")
    assert scraped.status_code == 200
    assert "predictor_requests" in scraped.text
    assert (down.status_code, down.json()["error"]["code"]) == (503, "unavailable")


@pytest.mark.parametrize("predictor", [2], indirect=True)
def test_probes_stay_green_under_a_request_flood_through_nginx(predictor: Predictor, tmp_path: Path, row: Row) -> None:
    """64 clients sending /predict and /api back to back through nginx: the probes on ADMIN_PORT still answer within
    their timeouts, and every flood request is served."""
    admin = f"http://127.0.0.1:{predictor.admin_port}"
    with nginx_in_front(predictor, tmp_path) as (_, nginx), running([nginx.url], threads=64, pause=0) as load:
        time.sleep(1.0)  # the flood is on
        samples = Sampler(nginx.url, admin).run(SAMPLE_SECONDS)
    latencies = load.latencies()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    row.add_load(load.sent, len(load.failures()), load.versions())
    row.note(
        f"flood of {load.sent} requests from 64 clients through nginx (p99 {p99 * 1000:.0f} ms): {summary(samples)}"
    )
    assert load.sent > 0
    assert load.failures() == []
    assert samples == {kind: [200] * len(got) for kind, got in samples.items()}, samples
