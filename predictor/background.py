"""A serving process's only background work: follow the pod's handover and swap from local disk.

gunicorn's post_worker_init calls `start(app)` in each worker after the fork (nothing starts at import), and
worker_exit calls `stop(app)`; any other serving process (the gRPC server) does the same. The model agent
(predictor.agent) does the subscribing, listing and downloading once per pod; here one thread stats the pointer
every HANDOVER_POLL_INTERVAL seconds (a microsecond system call: no network, no gRPC, nearly no GIL) and offers a
changed pointer to the registry, which verifies the bytes again and swaps under its usual rules (never downgrade,
keep the old model on failure). The state lives in `app.extensions["background"]`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flask import Flask

from core.errors import StoreUnavailable
from core.states import SwapOutcome, SwapTrigger
from core.store import ModelStore
from predictor import extensions, handover
from predictor.handover import HandoverStore, Pointer
from predictor.registry import Registry

if TYPE_CHECKING:
    from predictor.agent.service import Agent

log = logging.getLogger(__name__)

EXTENSION = "background"
UPSTREAM_OUTCOMES = (SwapOutcome.REJECTED, SwapOutcome.FAILED)
"""The agent's decisions a serving process shows as its own: artifacts it never got to see."""
RETRY_FAILED_S = 1.0
"""After a load failed (not a rejection), seconds before the same pointer is offered again."""


@dataclass
class Follower:
    """One serving process's pointer watch."""

    registry: Registry
    directory: Path
    interval: float
    stopping: threading.Event = field(default_factory=threading.Event)
    seen: tuple[int, int, int] | None = None
    """(inode, mtime ns, size) of the pointer last settled."""
    retry_at: float = 0.0
    thread: threading.Thread | None = None
    own_agent: Agent | None = None
    """The agent this process runs itself when no pod agent hands over to it."""
    store: HandoverStore | None = None
    """The registry's handover store: the artifact is read into it before the offer, outside the registry's lock."""

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="model-handover", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def status(self) -> dict[str, Any]:
        return {"handover_dir": str(self.directory), "following": bool(self.thread and self.thread.is_alive())}

    def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:  # a bug must not end the watch: the next change is offered again
                log.exception("model handover: check failed")
            if self.stopping.wait(self.interval):
                return

    def check(self) -> None:
        """Offer the pointer to the registry if it changed since it was last settled."""
        try:
            st = os.stat(self.directory / handover.POINTER)
        except FileNotFoundError:
            return
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self.seen or time.monotonic() < self.retry_at:
            return
        pointer = Pointer.read(self.directory)
        if pointer is None:
            return
        if self.store is not None:
            self.store.prepare(pointer)
        try:
            record = self.registry.offer(pointer.name, pointer.generation, self._trigger(pointer), pointer.finalized())
        except StoreUnavailable as e:  # the file was pruned meanwhile and the bucket is down: try again later
            log.warning("model handover: %s", e.message)
            self.retry_at = time.monotonic() + RETRY_FAILED_S
            return
        if record.outcome == SwapOutcome.FAILED:
            self.retry_at = time.monotonic() + RETRY_FAILED_S
            return
        self.seen = key

    def _trigger(self, pointer: Pointer) -> str:
        return pointer.trigger if self.registry.ready else SwapTrigger.STARTUP


def start(app: Flask) -> Follower:
    """Follow the handover in HANDOVER_DIR (idempotent); returns at once, the model loads in the thread.

    Without HANDOVER_DIR (a serving process started on its own, with no pod agent) the process runs its own agent
    handing over into a private temporary directory.
    """
    if EXTENSION in app.extensions:
        return app.extensions[EXTENSION]
    registry, settings = extensions.registry(app), extensions.settings(app)
    bucket = cast(ModelStore, registry.store)  # the app's store is the bucket's
    own_agent = None
    if settings.handover_dir:
        directory = Path(settings.handover_dir)
    else:
        from predictor.agent import service  # Pub/Sub and gRPC only in a process that runs an agent

        directory = Path(tempfile.mkdtemp(prefix="predictor-handover-"))
        own_agent = service.build(settings, directory, bucket)
        own_agent.start()
    registry.store = store = HandoverStore(directory, bucket)
    registry.notification_lookups = None  # a pointer's trigger may say notification: the lookup is local
    registry.upstream = lambda: [r for r in handover.read_history(directory) if r.outcome in UPSTREAM_OUTCOMES]
    follower = Follower(registry, directory, settings.handover_poll_interval, own_agent=own_agent, store=store)
    app.extensions[EXTENSION] = follower
    follower.start()
    log.info("following the model handover", extra={"handover_dir": str(directory), "own_agent": bool(own_agent)})
    return follower


def stop(app: Flask) -> None:
    """Stop following (and this process's own agent, if it runs one: it deletes its subscription)."""
    follower: Follower | None = app.extensions.pop(EXTENSION, None)
    if follower is not None:
        follower.stop()
        if follower.own_agent is not None:
            follower.own_agent.stop()
