"""Check 8: oversized bodies, slow clients, a request flood and admin tokens: no crash, bounded latency, 413/401."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime

import pytest
import requests

from tests.faults.load import PREDICT_BODY, Load, running
from tests.faults.report import Row
from tests.faults.stack import ADMIN_TOKEN, Pod

pytestmark = [pytest.mark.faults, pytest.mark.e2e]
MAX_BODY = 1024 * 1024  # MAX_BODY_BYTES default
WORKER_TIMEOUT = 8  # as set by the main_stack fixture
FLOOD_REQUESTS, FLOOD_THREADS = 2000, 64


def big_predict_body() -> bytes:
    """Valid JSON instances, just over MAX_BODY_BYTES."""
    one = json.dumps(PREDICT_BODY["instances"][0]) + ", "
    count = MAX_BODY // len(one) + 10
    return ('{"instances": [' + one * count + json.dumps(PREDICT_BODY["instances"][0]) + "]}").encode()


def raw_request(pod: Pod, head: str, body_parts: list[bytes], pause: float) -> tuple[int, str]:
    """Send `head` then each body part `pause` seconds apart on one socket; return (status, response head)."""
    with socket.create_connection(("127.0.0.1", pod.port), timeout=WORKER_TIMEOUT * 4) as sock:
        sock.sendall(head.encode())
        for part in body_parts:
            time.sleep(pause)
            sock.sendall(part)
        reply = sock.recv(65536).decode(errors="replace")
    status_line = reply.split("\r\n", 1)[0]
    return (int(status_line.split()[1]) if status_line.startswith("HTTP/") else 0), reply[:300]


def post_head(pod: Pod, path: str, length: int) -> str:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{pod.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n")  # fmt: skip


def test_oversized_bodies_get_413(pods: list[Pod], row: Row) -> None:
    pod, body = pods[0], big_predict_body()
    statuses = {}
    with running([p.url for p in pods], threads=2) as load:
        for path in ("/predict", "/api", "/v2/models/iris/infer"):
            statuses[f"{path} content-length"] = requests.post(
                pod.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30
            ).status_code
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))  # no Content-Length: chunked
        statuses["/predict chunked"] = requests.post(
            pod.url + "/predict", data=chunks, headers={"Content-Type": "application/json"}, timeout=30
        ).status_code
        # a 10 GB Content-Length is refused from the header alone, without waiting for the body
        started = time.monotonic()
        statuses["/predict 10 GB header"], _ = raw_request(pod, post_head(pod, "/predict", 10 * 1024**3), [], 0)
        header_only = time.monotonic() - started
    row.add_load(load.sent + len(statuses), len(load.failures()), load.versions())
    row.note(f"413 for {len(statuses)} oversized requests; 10 GB header refused in {header_only:.2f} s")
    assert load.failures() == []
    assert statuses == dict.fromkeys(statuses, 413)
    assert header_only < 5


def test_slow_clients_do_not_cost_the_model(pods: list[Pod], row: Row) -> None:
    """Bodies trickled in over longer than WORKER_TIMEOUT: answered, no worker restarted, no cold reload."""
    pod = pods[0]
    version, workers = pod.model()["model_version"], pod.worker_pids()
    body = json.dumps(PREDICT_BODY).encode()
    parts = [body[i : i + 8] for i in range(0, len(body), 8)]
    pause = (WORKER_TIMEOUT + 3) / len(parts)
    results: dict[str, tuple[int, str]] = {}

    def slow(key: str) -> None:
        results[key] = raw_request(pod, post_head(pod, "/predict", len(body)), parts, pause)

    def stalled_headers() -> None:  # headers trickled too, then the connection is abandoned half-way
        head = post_head(pod, "/predict", len(body))
        with socket.create_connection(("127.0.0.1", pod.port), timeout=5) as sock:
            for i in range(0, len(head) - 10, 4):
                sock.sendall(head[i : i + 4].encode())
                time.sleep((WORKER_TIMEOUT + 3) / len(head) * 4)

    threads = [threading.Thread(target=slow, args=(f"slow-{i}",)) for i in range(2)]
    threads.append(threading.Thread(target=stalled_headers))
    started, started_at = time.monotonic(), datetime.now(UTC).isoformat()
    with running([pod.url], threads=4, pause=0.05) as load:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WORKER_TIMEOUT * 4)
    elapsed = time.monotonic() - started
    info = [pod.model() for _ in range(8)]
    row.add_load(load.sent + len(results), len(load.failures()), load.versions())
    row.note(f"2 bodies + 1 header trickled over {elapsed:.0f} s (WORKER_TIMEOUT {WORKER_TIMEOUT} s); "
             f"load max latency {max(load.latencies()):.2f} s")  # fmt: skip
    assert {k: v[0] for k, v in results.items()} == {"slow-0": 200, "slow-1": 200}, results
    assert load.failures() == []
    assert pod.worker_pids() == workers, "a gunicorn worker was restarted"
    assert {i["model_version"] for i in info} == {version}
    assert not [h for i in info for h in i["history"] if h["at"] > started_at], "the model was reloaded"


def test_flood_is_served_with_bounded_latency(pods: list[Pod], row: Row) -> None:
    workers = {pod.name: pod.worker_pids() for pod in pods}
    load = Load([p.url for p in pods], threads=FLOOD_THREADS, max_requests=FLOOD_REQUESTS, max_seconds=90, pause=0)
    started = time.monotonic()
    load.start()
    for worker in load._workers:
        worker.join(100)
    elapsed = time.monotonic() - started
    latencies = load.latencies()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    row.add_load(load.sent, len(load.failures()), load.versions())
    row.note(f"{load.sent} requests from {FLOOD_THREADS} threads in {elapsed:.1f} s "
             f"({load.sent / elapsed:.0f}/s), p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
             f"max {latencies[-1] * 1000:.0f} ms")  # fmt: skip
    assert load.sent == FLOOD_REQUESTS
    assert load.failures() == []
    assert p99 < 5.0
    assert {pod.name: pod.worker_pids() for pod in pods} == workers


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("Bearer ", 401),
        (f"Basic {ADMIN_TOKEN}", 401),
        (f"Bearer {ADMIN_TOKEN}x", 401),
        (f"Bearer {ADMIN_TOKEN[:-1]}", 401),
        (f"Bearer {ADMIN_TOKEN.upper()}", 401),
        (f"Bearer {ADMIN_TOKEN}", 200),
        (f"bearer {ADMIN_TOKEN}", 200),
    ],
)
def test_admin_tokens(pods: list[Pod], row: Row, authorization: str | None, expected: int) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    pod = pods[1]
    version = pod.model()["model_version"]
    statuses = [requests.post(pod.url + "/admin/reload", headers=headers, timeout=10).status_code]
    statuses.append(requests.delete(pod.url + "/admin/pin", headers=headers, timeout=10).status_code)
    row.add_load(len(statuses), 0, [version])
    row.note(f"{authorization and authorization.split()[0]} token -> {statuses}")
    assert statuses == [expected, expected]
    assert pod.served() == {version}
