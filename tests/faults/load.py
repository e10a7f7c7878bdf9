"""A bounded background request load: a few threads sending /predict and /api to the pods and recording answers.

Half the threads keep one keep-alive session, the other half open a new connection per request. Every response is
recorded with its status, the `X-Model-Version` header and the body's `model_version`. The load stops by itself
after `max_requests` or `max_seconds`, or when `stop()` is called.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from core.iris import EXAMPLES, FEATURES

PREDICT_BODY = {"instances": [dict(zip(FEATURES, v, strict=True)) for v in EXAMPLES.values()]}
API_BODY = list(EXAMPLES["setosa"])
TIMEOUT = 10.0


@dataclass(frozen=True)
class Answer:
    """One request and what came back (status 0: no HTTP response at all)."""

    started: float
    url: str
    status: int
    header_version: str | None
    body_version: str | None
    latency: float
    error: str = ""
    fresh: bool = False
    """Sent on a new connection (else on a kept-alive one)."""

    @property
    def ok(self) -> bool:
        consistent = self.body_version is None or self.body_version == self.header_version
        return self.status == 200 and bool(self.header_version) and consistent and not self.error


def trickle(data: bytes, chunks: int, pause: float) -> Iterator[bytes]:
    """`data` in `chunks` pieces, `pause` seconds apart (sent chunked: a slow client)."""
    step = len(data) // chunks + 1
    for start in range(0, len(data), step):
        time.sleep(pause)
        yield data[start : start + step]


def call(session: requests.Session | None, url: str, body: Any, chunks: int = 0, pause: float = 0.0) -> Answer:
    """POST `body` as JSON to `url` (on `session`, or on a new connection; trickled when `chunks`) and record it."""
    started = time.monotonic()
    try:
        post = session.post if session is not None else requests.post
        headers = {"Content-Type": "application/json"} | ({} if session is not None else {"Connection": "close"})
        data = json.dumps(body).encode()
        resp = post(url, data=trickle(data, chunks, pause) if chunks else data, headers=headers, timeout=TIMEOUT)
    except requests.RequestException as e:
        error = f"{type(e).__name__}: {e}"[:300]
        return Answer(started, url, 0, None, None, time.monotonic() - started, error, session is None)
    latency = time.monotonic() - started
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    body_version = payload.get("model_version") if isinstance(payload, dict) else None
    error = "" if resp.status_code == 200 else resp.text[:200]
    version = resp.headers.get("X-Model-Version")
    return Answer(started, url, resp.status_code, version, body_version, latency, error, session is None)


class Load:
    """Background load against `bases` (pod base URLs) until stopped or bounded out."""

    def __init__(
        self,
        bases: list[str],
        threads: int = 4,
        max_requests: int = 20_000,
        max_seconds: float = 180.0,
        pause: float = 0.02,
        paths: tuple[str, ...] = ("/predict", "/api"),
    ) -> None:
        self.bases, self.threads, self.paths = bases, threads, paths
        self.max_requests, self.max_seconds, self.pause = max_requests, max_seconds, pause
        self.answers: list[Answer] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._workers: list[threading.Thread] = []
        self._budget = itertools.count()

    def start(self) -> Load:
        deadline = time.monotonic() + self.max_seconds
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i, deadline), name=f"load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> Load:
        self._stop.set()
        for worker in self._workers:
            worker.join(TIMEOUT + 5)
        return self

    def _run(self, index: int, deadline: float) -> None:
        session = requests.Session() if index % 2 == 0 else None
        targets = itertools.cycle(itertools.product(self.bases, self.paths))
        for _ in range(index):
            next(targets)  # spread the threads over pods and paths
        while not self._stop.is_set() and time.monotonic() < deadline and next(self._budget) < self.max_requests:
            base, path = next(targets)
            answer = call(session, base + path, API_BODY if path == "/api" else PREDICT_BODY)
            with self._lock:
                self.answers.append(answer)
            self._stop.wait(self.pause)
        if session is not None:
            session.close()

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    @property
    def sent(self) -> int:
        return len(self.snapshot())

    def failures(self) -> list[Answer]:
        return [a for a in self.snapshot() if not a.ok]

    def versions(self, since: float = 0.0) -> list[str]:
        """Every model version that answered (header), in sorted order."""
        return sorted({a.header_version for a in self.snapshot() if a.header_version and a.started >= since})

    def versions_by_base(self, since: float = 0.0) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        for answer in self.snapshot():
            if answer.header_version and answer.started >= since:
                base = next(b for b in self.bases if answer.url.startswith(b))
                seen.setdefault(base, set()).add(answer.header_version)
        return seen

    def latencies(self) -> list[float]:
        return sorted(a.latency for a in self.snapshot())


@contextmanager
def running(bases: list[str], **options: Any) -> Iterator[Load]:
    """`with running([...]) as load:` starts the load and always stops it."""
    load = Load(bases, **options).start()
    try:
        yield load
    finally:
        load.stop()
