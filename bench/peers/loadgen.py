"""Closed-loop HTTP load on loopback: ``wrk`` with ``post.lua`` when installed, else a Python threads client.

Each connection sends one fixed JSON POST after another for a bounded time; the result is throughput and the p50/p99
latency of the measured window (a warm-up run before it is discarded).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LUA = Path(__file__).resolve().parent / "post.lua"


@dataclass(frozen=True)
class Result:
    """One load cell: requests per second, latency percentiles (ms) and failed requests."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_ms: float = 0.0
    """Server CPU time (user + system, all its processes) per request: comparable even on a busy machine."""
    worker_cores: tuple[float, ...] = ()
    """CPU seconds per second of each server worker process during the measured window: how the load spread."""


def tool() -> str:
    """Which load generator :func:`run` uses here."""
    return "wrk" if shutil.which("wrk") else "python-threads"


def run(url: str, body: bytes, connections: int, seconds: float, warmup: float) -> Result:
    """Warm up for ``warmup`` s, then measure ``seconds`` s with ``connections`` concurrent connections."""
    load = _wrk if tool() == "wrk" else _threads
    if warmup > 0:
        load(url, body, connections, warmup)
    return load(url, body, connections, seconds)


def _wrk(url: str, body: bytes, connections: int, seconds: float) -> Result:
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "-s", str(LUA), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ | {"WRK_BODY": body.decode()})
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    return Result(
        rps=stats["requests"] / (stats["duration_us"] / 1e6),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=stats["non2xx"] + stats["socket_errors"],
        requests=stats["requests"],
    )


def _threads(url: str, body: bytes, connections: int, seconds: float) -> Result:
    parts = urlsplit(url)
    deadline = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                conn.request("POST", parts.path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
                if resp.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
            latencies[i].append(time.perf_counter() - start)
            errors[i] += not ok

    workers = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    flat = sorted(t for per in latencies for t in per)
    cuts = statistics.quantiles(flat, n=100) if len(flat) > 1 else [0.0] * 99
    return Result(len(flat) / (time.monotonic() - started), cuts[49] * 1000, cuts[98] * 1000, sum(errors), len(flat))
