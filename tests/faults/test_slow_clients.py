"""Slow clients: connections trickling their header or body one byte a second.

Against bare gunicorn they hold its threads, so readiness, liveness and real requests time out: the control case,
what made the kubelet restart pods in a loop. With one worker every request then times out. With two workers it
depends on how the connections were spread: between half and all of them time out (gunicorn 27's gthread waits up
to 5 s for a first byte before taking a thread, but once a byte came it reads the rest on the thread). The same
holds for gunicorn's own ADMIN_PORT listener: its threads are the ones that serve /api too. With nginx in front of
both ports (the pod's proxy container, the local stack's proxy), gunicorn only ever sees complete requests: with
8 x workers x threads slow clients on the public port or on the admin port, the probes (through nginx's admin port,
as the kubelet sends them) stay green, requests through nginx are served, and nginx drops the header tricklers after
PROXY_HEADER_TIMEOUT. nginx also refuses bodies above MAX_BODY_BYTES in the predictor's error formats, never
forwards /admin/* or /metrics on the public port (its admin port does, and the predictor still checks the token),
and answers 503 while the predictor is down; under a request flood through nginx the probes still answer within the
kubelet's timeouts. And nginx spreads requests over the workers' own sockets, where the shared port leaves a
kept-alive upstream connection, and every request on it, with one worker.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
ADMIN_TOKEN = "slow-clients-admin-token"


@dataclass(frozen=True)
class Predictor:
    """A running `python -m predictor`: PORT (`service.port`), ADMIN_PORT, and one socket per worker."""

    service: Service
    admin_port: int
    workers: int
    env: dict[str, str]


@pytest.fixture
def predictor(
    request: pytest.FixtureRequest,
    common_env: dict[str, str],
    store: ModelStore,
    fitted_model: Pipeline,
    tmp_path: Path,
) -> Iterator[Predictor]:
    """`python -m predictor` (the parameter's number of workers) on loopback, serving a model, with ADMIN_PORT and
    WORKER_SOCKETS_DIR."""
    workers = request.param
    publish(store, fitted_model)
    port, admin = emulators.free_port(), emulators.free_port()
    sockets = tempfile.mkdtemp(prefix="sockets-")  # a Unix socket's path has at most 107 bytes: not in tmp_path
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **common_env, "PORT": str(port), "BIND_HOST": "127.0.0.1",
           "ADMIN_PORT": str(admin), "ADMIN_BIND_HOST": "127.0.0.1", "WEB_CONCURRENCY": str(workers),
           "MODEL_EVENTS_ENABLED": "false", "WORKER_SOCKETS_DIR": sockets, "ADMIN_TOKEN": ADMIN_TOKEN}  # fmt: skip
    service = emulators.spawn("predictor", [sys.executable, "-m", "predictor"], port, tmp_path / "p.log", env, ROOT)
    try:
        ready = f"http://127.0.0.1:{admin}/v2/health/ready"
        wait_for(lambda: requests.get(ready, timeout=2).status_code == 200, 90, "predictor ready", service=service)
        yield Predictor(service, admin, workers, env)
    finally:
        service.stop()
        shutil.rmtree(sockets, ignore_errors=True)


@dataclass(frozen=True)
class Front:
    """nginx in front of a predictor as in the pod: the public port (`service`) and the admin port."""

    settings: ProxySettings
    service: Service

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.proxy_admin_port}"


@contextmanager
def nginx_in_front(predictor: Predictor, tmp_path: Path, worker_sockets: bool = True) -> Iterator[Front]:
    """nginx with the project's configuration (default timeouts and MAX_BODY_BYTES) in front of `predictor`'s PORT,
    its ADMIN_PORT and (unless `worker_sockets` is false: the shared port only) its workers' own sockets."""
    settings = ProxySettings.model_validate({
        "proxy_listen_host": "127.0.0.1", "proxy_port": emulators.free_port(),
        "proxy_admin_port": emulators.free_port(), "proxy_health_port": emulators.free_port(),
        "proxy_runtime_dir": tmp_path / "proxy",
    })  # fmt: skip
    sockets = proxy.worker_sockets(predictor.env) if worker_sockets else []
    admin = f"127.0.0.1:{predictor.admin_port}"
    nginx = proxy.start_proxy(settings, predictor.service.host, MAX_BODY, tmp_path / "proxy.log", admin, sockets)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    try:
        yield Front(settings, nginx)
    finally:
        nginx.stop()


def siege(slow_port: int, front_url: str, admin_url: str, slow: int) -> tuple[Trickle, dict[str, list[int]]]:
    """`slow` tricklers on `slow_port`, then the probes sampled on `admin_url` and /api on `front_url`."""
    trickle = Trickle(slow_port, slow)
    time.sleep(2.0)  # every slow connection has sent its first bytes
    return trickle, Sampler(front_url, admin_url).run(SAMPLE_SECONDS)


def summary(samples: dict[str, list[int]]) -> str:
    return ", ".join(f"{kind} {sum(s == 200 for s in got)}/{len(got)} ok" for kind, got in samples.items())


def all_ok(samples: dict[str, list[int]]) -> dict[str, list[int]]:
    return {kind: [200] * len(got) for kind, got in samples.items()}


@pytest.mark.parametrize("predictor", [1], indirect=True)
def test_bare_gunicorn_stalls_under_slow_clients(predictor: Predictor, row: Row) -> None:
    """Control: without the proxy, 4 x workers x threads slow clients hold every thread of a one-worker gunicorn;
    every probe and request times out (the kubelet would mark the pod unready, then restart it)."""
    slow = 4 * predictor.workers * THREADS
    url, admin = predictor.service.url, f"http://127.0.0.1:{predictor.admin_port}"
    trickle, samples = siege(predictor.service.port, url, admin, slow)
    trickle.stop()
    row.note(f"{slow} slow clients on bare gunicorn ({predictor.workers}x{THREADS}): {summary(samples)}")
    assert samples == {kind: [0] * len(got) for kind, got in samples.items()}, samples


@pytest.mark.parametrize("predictor", [1], indirect=True)
def test_tricklers_on_gunicorns_admin_listener_stall_the_pod(predictor: Predictor, tmp_path: Path, row: Row) -> None:
    """Control: nginx guards the public port only, the probes go straight to gunicorn's ADMIN_PORT and so do
    4 x workers x threads slow clients: they hold every thread, so the probes and /api through nginx time out."""
    slow = 4 * predictor.workers * THREADS
    with nginx_in_front(predictor, tmp_path) as front:
        trickle, samples = siege(predictor.admin_port, front.service.url, f"http://127.0.0.1:{predictor.admin_port}",
                                 slow)  # fmt: skip
        trickle.stop()
    row.note(f"{slow} slow clients on gunicorn's ADMIN_PORT ({predictor.workers}x{THREADS}): {summary(samples)}")
    assert samples == {kind: [0] * len(got) for kind, got in samples.items()}, samples


def held_off(front: Front, trickle: Trickle) -> tuple[float, int]:
    """Wait until nginx dropped every header trickler: the longest one was held (s), and the body tricklers still
    held (a 1 byte/s body never pauses PROXY_BODY_TIMEOUT: nginx keeps reading it, gunicorn never sees it)."""
    deadline = front.settings.proxy_header_timeout + 3
    wait_for(lambda: all(s.dropped for s in trickle.header_trickles), deadline, "header tricklers dropped")
    waited = max((s.dropped or 0) - s.opened for s in trickle.header_trickles)
    return waited, sum(s.dropped is None for s in trickle.body_trickles)


@pytest.mark.parametrize("port", ["public", "admin"])
@pytest.mark.parametrize("predictor", [2], indirect=True)
def test_nginx_keeps_probes_and_requests_green(predictor: Predictor, port: str, tmp_path: Path, row: Row) -> None:
    """8 x workers x threads slow clients on nginx's public or admin port: every probe (through nginx's admin port)
    and every /api request answers 200, during and after; nginx drops the header tricklers in time."""
    with nginx_in_front(predictor, tmp_path) as front:
        slow = 8 * predictor.workers * THREADS
        slow_port = front.settings.proxy_port if port == "public" else front.settings.proxy_admin_port
        trickle, samples = siege(slow_port, front.service.url, front.admin_url, slow)
        try:
            waited, held = held_off(front, trickle)
            after_drop = Sampler(front.service.url, front.admin_url).run(2)
        finally:
            trickle.stop()
    row.note(f"{slow} slow clients on nginx's {port} port ({predictor.workers}x{THREADS}): {summary(samples)}; "
             f"header tricklers dropped after <= {waited:.1f} s, {held} body tricklers held by nginx")  # fmt: skip
    row.add_load(sum(map(len, samples.values())), sum(s != 200 for got in samples.values() for s in got), [])
    assert samples == all_ok(samples), samples
    assert after_drop == all_ok(after_drop), after_drop
    assert waited <= front.settings.proxy_header_timeout + 2
    assert held == len(trickle.body_trickles)


@pytest.mark.parametrize("predictor", [1], indirect=True)
def test_nginx_refuses_what_the_predictor_would_and_hides_the_admin_routes(
    predictor: Predictor, tmp_path: Path, row: Row
) -> None:
    json_type = {"Content-Type": "application/json"}
    with nginx_in_front(predictor, tmp_path) as front:
        nginx = front.service
        big = b"[" + b" " * MAX_BODY + b"]"
        too_large = requests.post(nginx.url + "/predict", data=big, headers=json_type, timeout=10)
        v2_too_large = requests.post(nginx.url + "/v2/models/iris/infer", data=big, headers=json_type, timeout=10)
        hidden = {path: requests.get(nginx.url + path, timeout=5) for path in
                  ("/metrics", "/admin/reload", "//admin/reload", "/%61dmin/reload", "/metrics/")}  # fmt: skip
        served = requests.post(nginx.url + "/api", data=b"[5.1, 3.5, 1.4, 0.2]", headers=json_type, timeout=5)
        scraped = requests.get(front.admin_url + "/metrics", timeout=5)
        no_token = requests.post(front.admin_url + "/admin/reload", timeout=10)
        token = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        reloaded = requests.post(front.admin_url + "/admin/reload", headers=token, timeout=30)
        admin_too_large = requests.put(front.admin_url + "/admin/pin", data=big, headers=token | json_type, timeout=10)
        predictor.service.stop()
        down = requests.post(nginx.url + "/api", data=b"[5.1, 3.5, 1.4, 0.2]", headers=json_type, timeout=10)
        admin_down = requests.get(front.admin_url + "/v2/health/live", timeout=10)
    row.note(f"413 above {MAX_BODY} bytes, 404 for {len(hidden)} admin/metrics spellings on the public port, "
             "the admin port's token checked, 503 with the predictor down")  # fmt: skip
    assert (too_large.status_code, too_large.json()["error"]["code"]) == (413, "payload_too_large")
    assert v2_too_large.status_code == 413
    assert isinstance(v2_too_large.json()["error"], str)  # the V2 routes' own error format
    assert {path: r.status_code for path, r in hidden.items()} == dict.fromkeys(hidden, 404)
    assert all(r.json()["error"]["code"] == "not_found" for r in hidden.values())
    assert (served.status_code, served.json()) == (200, "[0]")
    assert scraped.status_code == 200
    assert "predictor_requests" in scraped.text
    assert (no_token.status_code, no_token.json()["error"]["code"]) == (401, "unauthorized")
    assert reloaded.status_code == 200, reloaded.text
    assert admin_too_large.status_code == 413
    assert (down.status_code, down.json()["error"]["code"]) == (503, "unavailable")
    assert admin_down.status_code == 503


@pytest.mark.parametrize("predictor", [2], indirect=True)
def test_probes_stay_green_under_a_request_flood_through_nginx(predictor: Predictor, tmp_path: Path, row: Row) -> None:
    """64 clients sending /predict and /api back to back through nginx: the probes on its admin port still answer
    within their timeouts, and every flood request is served."""
    with nginx_in_front(predictor, tmp_path) as front, running([front.service.url], threads=64, pause=0) as load:
        time.sleep(1.0)  # the flood is on
        samples = Sampler(front.service.url, front.admin_url).run(SAMPLE_SECONDS)
    latencies = load.latencies()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0.0
    row.add_load(load.sent, len(load.failures()), load.versions())
    row.note(
        f"flood of {load.sent} requests from 64 clients through nginx (p99 {p99 * 1000:.0f} ms): {summary(samples)}"
    )
    assert load.sent > 0
    assert load.failures() == []
    assert samples == all_ok(samples), samples


def answering_workers(url: str, clients: int, requests_each: int) -> Counter[str]:
    """How many of `clients` x `requests_each` GET /v1/model each worker answered, `clients` kept-alive sessions at
    once (a worker is told apart by its own `loaded_at`: each loads the model on its own)."""

    def client(_: int) -> list[str]:
        with requests.Session() as session:
            return [session.get(url + "/v1/model", timeout=10).json()["loaded_at"] for _ in range(requests_each)]

    with ThreadPoolExecutor(clients) as pool:
        return Counter(stamp for stamps in pool.map(client, range(clients)) for stamp in stamps)


@pytest.mark.parametrize("predictor", [2], indirect=True)
def test_nginx_spreads_requests_over_the_workers(predictor: Predictor, tmp_path: Path, row: Row) -> None:
    """Through the shared port, one kept-alive client's requests all ride nginx's one upstream connection to one
    worker (control). Through the workers' own sockets (least_conn) they alternate between the workers, and so do
    8 clients' at once: no worker is left idle at any concurrency, whichever worker won an accept race."""
    with nginx_in_front(predictor, tmp_path / "shared", worker_sockets=False) as front:
        shared = answering_workers(front.service.url, 1, 20)
    with nginx_in_front(predictor, tmp_path / "spread") as front:
        one = answering_workers(front.service.url, 1, 20)
        eight = answering_workers(front.service.url, 8, 20)
    row.note(f"requests per worker through nginx: shared port, 1 client {sorted(shared.values())}; worker sockets, "
             f"1 client {sorted(one.values())}, 8 clients {sorted(eight.values())}")  # fmt: skip
    assert sorted(shared.values()) == [20]
    assert sorted(one.values()) == [10, 10]  # least_conn: a tie each time, taken in turn
    assert len(eight) == predictor.workers
    assert min(eight.values()) >= 160 // predictor.workers // 4
