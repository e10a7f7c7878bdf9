"""Predictor lifecycle measurements: cold start to ready, swap delay from object finalize to every worker, RSS.

Used by ``predictor_bench.py`` (which starts the emulators and the predictor). A worker is told apart from the other
by its ``loaded_at`` in ``GET /v1/model`` (each worker swaps on its own, so the microsecond stamps differ); every
poll opens a new connection so that all workers get polled.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from peers.servers import cpu_seconds, pss_mb, rss_mb, wait_ready, worker_pids

from core import layout
from core.store import ModelStore
from devstack.emulators import Service

POLLERS = 4
"""Concurrent pollers: while one worker is busy answering, the next new connection goes to the other."""


@dataclass(frozen=True)
class Swap:
    """One published model: seconds from its timeCreated until every worker served it (observed, server-side)."""

    version: str
    observed_s: float
    """Until the last worker was first seen answering with the new X-Model-Version."""
    server_s: float
    """Until the last worker's own ``loaded_at``."""


def cold_start(start: Callable[[], Service], runs: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds from spawning ``python -m predictor`` to ``/v2/health/ready`` 200, once per run.

    CPU is user + system time of the master and its workers at that moment: it does not grow with a busy machine.
    """
    times = []
    for _ in range(runs):
        service = start()
        try:
            wall = wait_ready(service, "/v2/health/ready", timeout=60)
            times.append((wall, cpu_seconds(service.process.pid)))
        finally:
            service.stop()
    return times


def publish(store: ModelStore, model: Any) -> tuple[str, float]:
    """Publish ``model`` as a new version; return it with its object's timeCreated (epoch seconds)."""
    version = store.publish(model, data_fingerprint=f"bench-{time.time_ns()}", row_count=150, metrics={}).version
    blob = store.bucket.get_blob(layout.model_object(version))
    if blob is None or blob.time_created is None:
        raise RuntimeError(f"published {version} but cannot read its timeCreated")
    return version, blob.time_created.timestamp()


def model_info(url: str) -> tuple[str, str, float]:
    """(X-Model-Version, loaded_at, arrival epoch time) of one ``GET /v1/model`` on a new connection."""
    with urllib.request.urlopen(f"{url}/v1/model", timeout=5) as resp:  # noqa: S310 - loopback only
        body = json.loads(resp.read())
        return resp.headers.get("X-Model-Version", ""), str(body.get("loaded_at")), time.time()


def wait_served(
    url: str, version: str, workers: int, pool: ThreadPoolExecutor, timeout: float = 30
) -> dict[str, float]:
    """Poll until ``workers`` distinct workers answer with ``version``; {loaded_at: first seen epoch time}."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{version}: {len(seen)} of {workers} workers serve it after {timeout:.0f} s")
        for served, loaded_at, at in pool.map(lambda _: model_info(url), range(POLLERS)):
            if served == version:
                seen.setdefault(loaded_at, at)
    return seen


def swaps(store: ModelStore, model: Any, url: str, workers: int, count: int) -> list[Swap]:
    """Publish ``count`` models one after another, each once every worker serves the previous one."""
    results = []
    with ThreadPoolExecutor(POLLERS) as pool:
        for _ in range(count):
            version, created = publish(store, model)
            seen = wait_served(url, version, workers, pool)
            server = max(_epoch(loaded_at) for loaded_at in seen)
            results.append(Swap(version, max(seen.values()) - created, server - created))
    return results


def worker_rss(service: Service) -> dict[int, float]:
    """VmRSS (MB) of each gunicorn worker of ``service``."""
    return {pid: rss_mb(pid) for pid in worker_pids(service.process.pid)}


def worker_pss(service: Service) -> dict[int, float]:
    """PSS (MB) of each gunicorn worker of ``service``."""
    return {pid: pss_mb(pid) for pid in worker_pids(service.process.pid)}


def summary(values: list[float]) -> tuple[float, float]:
    """(p50, max)."""
    return statistics.median(values), max(values)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
