"""Slow clients on raw sockets, and a prober that samples probes and real requests while they hold on.

`Trickle` keeps many connections open and sends each one byte a second: half trickle their request header, half
send the header at once and trickle the body. `Sampler` sends, once a second and concurrently, what the kubelet
and a user would: readiness and liveness (with the probes' timeouts) and a real POST /api.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

API_BODY = b"[5.1, 3.5, 1.4, 0.2]"
BODY_LENGTH = 400  # never sent whole within a check: JSON padded with spaces


def _head(port: int) -> bytes:
    return (f"POST /api HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BODY_LENGTH}\r\n\r\n").encode()  # fmt: skip


@dataclass
class Slow:
    """One slow connection: the bytes it still has to send and when the server dropped it."""

    sock: socket.socket
    pending: bytes
    opened: float
    dropped: float | None = None


class Trickle:
    """`count` slow connections to 127.0.0.1:`port`, one byte each per second, until `stop()`."""

    def __init__(self, port: int, count: int) -> None:
        body = API_BODY.ljust(BODY_LENGTH)
        self.slow: list[Slow] = []
        for i in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.settimeout(None)  # blocking: MSG_DONTWAIT peeks answer at once instead of polling for 5 s
            head = _head(port)
            if i % 2:  # header at once, body trickled
                sock.sendall(head)
                self.slow.append(Slow(sock, body, time.monotonic()))
            else:
                self.slow.append(Slow(sock, head + body, time.monotonic()))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trickle", daemon=True)
        self._thread.start()

    @property
    def header_trickles(self) -> list[Slow]:
        return self.slow[::2]

    @property
    def body_trickles(self) -> list[Slow]:
        return self.slow[1::2]

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for slow in self.slow:
                if slow.dropped is None and (self._closed_by_server(slow.sock) or not self._send_one(slow)):
                    slow.dropped = time.monotonic()

    @staticmethod
    def _closed_by_server(sock: socket.socket) -> bool:
        try:
            return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    @staticmethod
    def _send_one(slow: Slow) -> bool:
        try:
            slow.sock.send(slow.pending[:1])
        except OSError:
            return False
        slow.pending = slow.pending[1:]
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for slow in self.slow:
            slow.sock.close()


@dataclass
class Sampler:
    """Probes on `admin_url` and POST /api on `front_url`, sampled once a second from several threads."""

    front_url: str
    admin_url: str
    samples: dict[str, list[Future[int]]] = field(default_factory=lambda: {"ready": [], "live": [], "api": []})

    def run(self, seconds: float) -> dict[str, list[int]]:
        """Sample for `seconds`; each kind's statuses (0: no answer within the timeout)."""
        with ThreadPoolExecutor(max_workers=16) as pool:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                self.samples["ready"].append(pool.submit(self._get, "/v2/health/ready", 2))  # readinessProbe
                self.samples["live"].append(pool.submit(self._get, "/v2/health/live", 3))  # livenessProbe
                self.samples["api"].append(pool.submit(self._api))
                time.sleep(1.0)
        return {kind: [f.result() for f in futures] for kind, futures in self.samples.items()}

    def _get(self, path: str, timeout: float) -> int:
        try:
            return requests.get(self.admin_url + path, timeout=timeout, headers={"Connection": "close"}).status_code
        except requests.RequestException:
            return 0

    def _api(self) -> int:
        try:
            resp = requests.post(self.front_url + "/api", data=API_BODY, timeout=5,
                                 headers={"Content-Type": "application/json", "Connection": "close"})  # fmt: skip
        except requests.RequestException:
            return 0
        return resp.status_code if resp.text.strip() == '"[0]"' or resp.status_code != 200 else -1
