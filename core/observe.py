"""Self-observation of a notification consumer: stream-health metrics, missed events, a heartbeat and its probe.

The model agent (predictor.agent) and the data watcher (trainer.watch) each hear a bucket's OBJECT_FINALIZE
notifications and each list the bucket now and then; both use this module:

- ``StreamHealth``: Prometheus metrics of the subscription (``<prefix>_subscription_connected``,
  ``<prefix>_seconds_since_last_message``, ``<prefix>_messages_total{outcome}``, ``<prefix>_resubscribes_total``,
  ``<prefix>_missed_events_total``) and the missed-event bookkeeping: an object a listing found, created after the
  stream was (re)opened, for which no notification arrived within MISSED_EVENT_AFTER seconds of its creation, is a
  missed event. It is logged as a warning, counted, and ``on_missed`` recycles the stream, so a deaf stream heals
  itself; the consumer's own reconcile has already handled the object.
- ``Heartbeat``: the consumer's loop beats; a stale heartbeat fails the liveness probe.
- ``serve``: a small HTTP listener for ``/healthz`` (the liveness probe) and ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

log = logging.getLogger(__name__)

Key = tuple[str, str, int]
"""(bucket, object, generation) of one object generation."""
SETTLED_SIZE = 4096
"""Object generations remembered as announced or missed (far more than arrive between two listings)."""


class Heartbeat:
    """When a loop last went round; stale after `stale_after` seconds."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self._at = time.monotonic()

    def beat(self) -> None:
        self._at = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self._at

    def fresh(self) -> bool:
        return self.age() <= self.stale_after


class StreamHealth:
    """One subscription's health metrics and missed-event bookkeeping (thread-safe)."""

    def __init__(
        self,
        prefix: str,
        bound: float,
        registry: CollectorRegistry | None = None,
        on_missed: Callable[[list[Key]], object] | None = None,
        by_name: bool = False,
    ) -> None:
        self.prefix, self.bound, self.on_missed = prefix, bound, on_missed
        self.by_name = by_name
        """A notification for any generation of a name announces every generation of it (objects that are never
        overwritten: fake-gcs-server's filesystem backend lists another generation than it announced, and gives a
        metadata patch a generation of its own)."""
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # livemax: in a multiprocess directory a dead process's gauges vanish once it is marked dead
        self.connected = Gauge(
            f"{prefix}_subscription_connected", "1 while the subscription's stream is open.",
            multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.silence = Gauge(
            f"{prefix}_seconds_since_last_message", "Seconds since the last message (or since the stream opened).",
            multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.messages = Counter(f"{prefix}_messages", "Messages received, by outcome.", ["outcome"], registry=r)
        self.resubscribes = Counter(f"{prefix}_resubscribes", "Streams reopened after the first.", registry=r)
        self.missed = Counter(
            f"{prefix}_missed_events", "Objects a listing found whose notification never arrived in time.", registry=r
        )
        self._lock = threading.Lock()
        self._settled: OrderedDict[Key, None] = OrderedDict()
        """Announced or already counted as missed."""
        self._pending: dict[Key, float] = {}
        """Found, not delivered: creation time (epoch seconds)."""
        self._opened_at: float | None = None
        """Epoch seconds the stream last (re)opened: objects created before are not expected on it."""
        self._last_message = time.monotonic()
        self.missed_total = 0
        self.missed_keys: list[Key] = []
        """The most recent missed events (newest last, at most 20)."""

    def opened(self, first: bool) -> None:
        """The stream (re)opened."""
        with self._lock:
            self._opened_at = time.time()
            self._last_message = time.monotonic()
            self._pending.clear()
        self.connected.set(1)
        if not first:
            self.resubscribes.inc()

    def closed(self) -> None:
        self.connected.set(0)

    def message(self, outcome: str) -> None:
        """A message arrived and was settled as `outcome`."""
        with self._lock:
            self._last_message = time.monotonic()
        self.messages.labels(outcome).inc()

    def _key(self, key: Key) -> Key:
        return (key[0], key[1], 0) if self.by_name else key

    def delivered(self, key: Key) -> None:
        """A notification announced this object generation."""
        key = self._key(key)
        with self._lock:
            self._settle(key)
            self._pending.pop(key, None)

    def _settle(self, key: Key) -> None:
        """No notification is expected for `key` any more (lock held)."""
        self._settled[key] = None
        self._settled.move_to_end(key)
        while len(self._settled) > SETTLED_SIZE:
            self._settled.popitem(last=False)

    def found(self, objects: Iterable[tuple[Key, datetime | None]]) -> None:
        """A listing saw these object generations (with their creation times): expect a notification for each."""
        with self._lock:
            if self._opened_at is None:
                return
            for found, created in objects:
                key = self._key(found)
                if created is None or key in self._settled or key in self._pending:
                    continue
                stamp = created.timestamp()
                if stamp >= self._opened_at:
                    self._pending[key] = stamp

    def check(self) -> list[Key]:
        """Count, log and act on the objects whose notification is overdue; refresh the silence gauge."""
        now = time.time()
        with self._lock:
            overdue = [key for key, created in self._pending.items() if now - created >= self.bound]
            for key in overdue:
                del self._pending[key]
                self._settle(key)  # counted once, never expected again
            self.missed_keys = (self.missed_keys + overdue)[-20:]
            self.missed_total += len(overdue)
            self.silence.set(round(time.monotonic() - self._last_message, 3))
        for key in overdue:
            self.missed.inc()
            log.warning(
                "%s: no notification for %s#%d within %.0f s; recycling the stream",
                self.prefix, key[1], key[2], self.bound, extra={"object": key[1], "generation": key[2]},
            )  # fmt: skip
        if overdue and self.on_missed is not None:
            try:
                self.on_missed(overdue)
            except Exception:
                log.exception("%s: recycling the stream failed", self.prefix)
        return overdue

    def status(self) -> dict[str, Any]:
        with self._lock:
            silence = time.monotonic() - self._last_message
            missed = [f"{name}#{generation}" for _, name, generation in self.missed_keys]
            pending = len(self._pending)
        return {
            "seconds_since_last_message": round(silence, 3),
            "missed_events": self.missed_total,
            "recent_missed": missed,
            "awaiting_notification": pending,
        }


Probe = Callable[[], tuple[bool, dict[str, Any]]]
"""Liveness: (alive, details shown in the answer)."""


def serve(host: str, port: int, probe: Probe, registry: CollectorRegistry, name: str) -> ThreadingHTTPServer:
    """Answer ``/healthz`` (200 or 503 from `probe`) and ``/metrics`` (`registry`) on host:port, in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a slow client cannot hold a thread for long

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                try:
                    alive, details = probe()
                except Exception as e:  # a broken probe is a failed probe
                    alive, details = False, {"error": f"{type(e).__name__}: {e}"}
                self._answer(200 if alive else 503, "application/json", json.dumps({"live": alive, **details}))
            elif path == "/metrics":
                self._answer(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            else:
                self._answer(404, "application/json", b'{"error": "not found"}')

        def _answer(self, status: int, content_type: str, body: str | bytes) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"{name}-health", daemon=True).start()
    log.info("%s health and metrics listening", name, extra={"host": host, "port": server.server_address[1]})
    return server
