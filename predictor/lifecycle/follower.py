"""A serving process follows the pod's handover: it swaps to what the agent points at, and asks the agent to decide.

The model agent (predictor.agent) does the subscribing, listing, downloading and deciding once per pod; here one
thread of each serving process stats the pointer every HANDOVER_POLL_INTERVAL seconds (a microsecond system call: no
network, no gRPC, nearly no GIL) and offers a changed pointer to the process's registry, which verifies the bytes
again and swaps under its usual rules (never downgrade, keep the old model on failure) with the pod's pin as the
pointer carries it. gunicorn's post_worker_init starts a worker's follower (nothing starts at import) and worker_exit
stops it; the gRPC server does the same.

An admin pin, unpin or reload (``Follower.ask``) is not this process's to decide: a pin that acted on one worker
would hold in whichever worker a load balancer chose. It is handed to the agent as a request file in the handover
(``aspired/<id>.json``), not as a call to the agent's health listener: the folder is already shared by every
container of the pod, works without AGENT_HEALTH_PORT, and needs no second trust boundary. The agent decides
(TensorFlow Serving's aspired version), points the pod at the outcome, and answers in ``decided/<id>.json``; the
asking process waits until it serves the decided version itself, so the answer states what the pod now serves.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StoreUnavailable
from core.states import SwapOutcome, SwapTrigger
from predictor.errors import AgentUnavailable, DecisionTimeout
from predictor.lifecycle import handover, podhealth
from predictor.lifecycle.handover import HandoverReader, Pointer, Verifier
from predictor.lifecycle.registry import OnSwap, Registry, SwapRecord
from predictor.metrics import Metrics
from predictor.settings import PredictorSettings

log = logging.getLogger(__name__)

UPSTREAM_OUTCOMES = (SwapOutcome.REJECTED, SwapOutcome.FAILED)
"""The agent's decisions a serving process shows as its own: artifacts it never got to see."""
RETRY_FAILED_S = 1.0
"""After a load failed (not a rejection), seconds before the same pointer is offered again."""
DECISION_TIMEOUT_S = 10.0
"""Most seconds an admin request waits for the agent's decision and for this process to serve it (well within
WORKER_TIMEOUT, which a sync worker blocked this long must not reach)."""


def upstream(directory: Path) -> list[SwapRecord]:
    """The agent's rejections and failures (a serving registry's upstream: artifacts it never got to see)."""
    return [r for r in handover.read_history(directory) if r.outcome in UPSTREAM_OUTCOMES]


@dataclass
class Follower:
    """One serving process's pointer watch, over its registry (built on `store`, a HandoverReader)."""

    registry: Registry
    store: HandoverReader
    interval: float
    stopping: threading.Event = field(default_factory=threading.Event)
    seen: tuple[int, int, int] | None = None
    """(inode, mtime ns, size) of the pointer last settled."""
    retry_at: float = 0.0
    thread: threading.Thread | None = None
    decision_timeout: float = DECISION_TIMEOUT_S
    """Most seconds an admin request waits for the agent's decision and for this process to serve it."""
    own_agent: bool = False
    """The agent handing over to this process is its own (a gRPC server started without a pod agent)."""

    @classmethod
    def build(
        cls,
        settings: PredictorSettings,
        directory: Path,
        bucket: Verifier,
        metrics: Metrics,
        on_swap: Sequence[OnSwap] = (),
    ) -> Follower:
        """A serving process's registry on the handover in `directory` (every artifact verified again, the bucket
        only as a fallback), with the agent's rejections as its upstream history, and its follower (not started)."""
        reader = HandoverReader(directory, bucket)
        registry = Registry(
            reader, settings, metrics, on_swap=on_swap, upstream=functools.partial(upstream, directory),
            lookups_limited=False,  # a pointer's trigger may say notification: the lookup is local
        )  # fmt: skip
        return cls(registry, reader, settings.handover_poll_interval)

    @property
    def directory(self) -> Path:
        return self.store.directory

    def start(self) -> None:
        """Follow the handover in a thread (idempotent); returns at once, the model loads in the thread."""
        if self.thread is not None:
            return
        self.thread = threading.Thread(target=self._run, name="model-handover", daemon=True)
        self.thread.start()
        log.info(
            "following the model handover", extra={"handover_dir": str(self.directory), "own_agent": self.own_agent}
        )

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
        self.store.prepare(pointer)
        self.registry.follow_pin(pointer.pinned)
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

    def ask(self, action: str, version: str | None = None) -> dict[str, Any]:
        """Hand an admin request (pin, unpin, reload) to the pod's agent and wait for its decision and for this
        process to serve the decided version; the decision as the agent wrote it (its ``record`` a SwapRecord dict).

        AgentUnavailable (503) if the agent's heartbeat is not fresh, DecisionTimeout (504) past decision_timeout.
        """
        _, age = podhealth.agent_age(self.directory)
        if age is None or age > self.registry.settings.agent_stale_after:
            raise AgentUnavailable("the pod's model agent is down: pin, unpin and reload need it; try again shortly")
        request_id = handover.ask(self.directory, {"action": action, "version": version})
        timeout = self.decision_timeout
        deadline = time.monotonic() + timeout
        while (decision := handover.decision(self.directory, request_id)) is None:
            if time.monotonic() > deadline:
                taken = not handover.withdraw(self.directory, request_id)
                raise DecisionTimeout(
                    f"the model agent did not decide the {action} within {timeout:g} s"
                    + ("; it may still apply it" if taken else "; the request was withdrawn")
                )
            time.sleep(self.interval)
        wanted = decision.get("version")
        while wanted is not None and (
            self.registry.version != wanted or self.registry.pinned != decision.get("pinned")
        ):
            if time.monotonic() > deadline:
                raise DecisionTimeout(f"the pod decided {wanted}, but this process does not serve it yet")
            time.sleep(self.interval)
        return decision
