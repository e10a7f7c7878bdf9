"""One listening socket per gunicorn worker, so nginx, not an accept race, decides which worker serves a request.

On gunicorn's one shared socket the worker that is already running wins the race for each new connection (an idle
one must first be woken and scheduled), and a kept-alive connection stays with the worker that accepted it: under
load one worker ends up with nearly every connection and its core while the other idles (measured: 26 of nginx's 26
upstream connections on one worker at 32 client connections, that worker at 0.55 cores, the other at 0.01).
``SO_REUSEPORT`` hashes connections instead, which splits many of them evenly but puts 2 on one worker half the time.

With WORKER_SOCKETS_DIR set, each worker, right after the fork, claims the lowest free slot ``0 .. WEB_CONCURRENCY-1``
(an ``flock`` on ``worker-<slot>.lock``, released by the kernel whenever the worker exits, however it exits) and
listens on ``worker-<slot>.sock`` too. nginx lists those sockets with ``least_conn`` (predictor/proxy): every request
goes to the worker with the fewest requests in flight, and a worker's kept-alive upstream connections only carry
what nginx chose to send it. The shared PORT stays open for everything else (direct clients, nginx's backup).

Without nginx (a bare ``python -m predictor``), clients connect to the shared socket only; there the gthread worker
class is ``ThreadWorker`` below, which lets a new connection wait a little longer the more connections it already
holds, so an emptier sibling takes it first.
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import time
from pathlib import Path
from typing import Any

from gunicorn.workers import gthread

log = logging.getLogger(__name__)

_claimed: list[int] = []
"""The slot lock's file descriptor, held for the worker's whole life (closing it would free the slot)."""


def socket_path(directory: str | Path, slot: int) -> Path:
    """The socket of worker slot `slot` in `directory`."""
    return Path(directory) / f"worker-{slot}.sock"


def socket_paths(directory: str | Path, workers: int) -> list[Path]:
    """Every worker's socket, slot by slot (what nginx balances over)."""
    return [socket_path(directory, slot) for slot in range(workers)]


def claim_slot(directory: Path, workers: int) -> int | None:
    """Lock and return the lowest free slot below `workers`; None when every slot is held."""
    directory.mkdir(parents=True, exist_ok=True)
    for slot in range(workers):
        fd = os.open(directory / f"worker-{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _claimed.append(fd)
        return slot
    return None


def listen(worker: Any, directory: str, workers: int) -> Path | None:
    """In a freshly forked gunicorn worker: add a listener on its slot's socket to the ones it accepts on."""
    from gunicorn.sock import UnixSocket

    slot = claim_slot(Path(directory), workers)
    if slot is None:  # a replacement forked before its predecessor exited: the shared socket only
        log.warning("no free worker socket slot in %s: this worker serves only the shared port", directory)
        return None
    path = socket_path(directory, slot)
    worker.sockets = [*worker.sockets, UnixSocket(str(path), worker.cfg, worker.log)]
    worker.own_socket = True
    return path


ACCEPT_STEP = 0.002
"""Seconds a worker lets a new connection wait on the shared socket per connection it already holds."""
ACCEPT_CAP = 0.02
"""The longest it lets one wait: a connection no emptier sibling took by then is accepted anyway."""


def _pending(listeners: list[Any]) -> bool:
    """Whether a connection waits on one of `listeners` (a listening socket reads ready)."""
    return bool(select.select(listeners, [], [], 0)[0])


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker, fair on the shared socket: the more connections a worker holds, the longer it lets
    a new one wait (ACCEPT_STEP each, at most ACCEPT_CAP) before taking it, so an emptier sibling, woken by the same
    connection, takes it first. Without this the running worker wins every race and keeps every kept-alive
    connection. A worker with its own socket (WORKER_SOCKETS_DIR) leaves the choice to nginx and never waits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.own_socket = False
        self._waiting_since: float | None = None
        self._resume_at = 0.0

    def accept(self, listener: Any) -> None:
        if self.nr_conns and not self.own_socket:
            now = time.monotonic()
            since = now if self._waiting_since is None else self._waiting_since
            wait = min(self.nr_conns * ACCEPT_STEP, ACCEPT_CAP)
            if now - since < wait:
                self._waiting_since, self._resume_at = since, since + wait
                super().set_accept_enabled(False)
                return
        self._waiting_since = None
        super().accept(listener)

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled and self._resume_at:
            if time.monotonic() < self._resume_at:
                return
            self._resume_at = 0.0
            if not _pending(self.sockets):  # a sibling took it: the next connection waits its own turn
                self._waiting_since = None
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if self._resume_at:
            timeout = max(0.0, min(timeout, self._resume_at - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)
