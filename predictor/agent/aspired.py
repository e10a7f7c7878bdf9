"""The pod's one decider of which version serves: admin pin, unpin and reload, as requests in the handover.

A serving process hands an admin request to the agent as ``aspired/<id>.json`` (predictor.lifecycle.follower
explains why a file); a thread of the agent reads them every HANDOVER_POLL_INTERVAL, oldest first, and applies each
to the agent's registry, the one that reads the bucket: a pin loads and verifies the version and points the pod at it,
an unpin drops the pin and catches up, a reload lists models/ now. The pointer carries the pin to every serving
process (which never downgrades on its own, but follows the pod's pin). The answer, ``decided/<id>.json``, names the
version the pod serves, its pin and the registry's record, so the asking process can wait until it serves it too.
PINNED_MODEL_VERSION pins the agent's registry from the start, as it pins every serving registry.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from core import layout
from core.errors import ServiceError
from core.states import SwapTrigger
from predictor.lifecycle import handover
from predictor.lifecycle.handover import HandoverWriter, Pointer
from predictor.lifecycle.registry import Registry, SwapRecord

log = logging.getLogger(__name__)

ACTIONS = ("pin", "unpin", "reload")


class AspiredVersions:
    """The agent's thread that answers the pod's admin requests."""

    def __init__(self, registry: Registry, writer: HandoverWriter, interval: float) -> None:
        self.registry, self.writer, self.interval = registry, writer, interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="model-aspired-versions", daemon=True)

    @property
    def directory(self) -> Path:
        return self.writer.directory

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self.stopping.set()
        if self.thread.ident is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.poll()
            except Exception:  # the next poll tries again; the asking process times out with 504
                log.exception("aspired versions: poll failed")

    def poll(self) -> int:
        """Decide every pending request; returns how many."""
        pending = handover.requests(self.directory)
        for request_id, request in pending:
            handover.decide(self.directory, request_id, self.decide(request))
        return len(pending)

    def decide(self, request: dict[str, Any] | None) -> dict[str, Any]:
        """Apply one request to the agent's registry; the decision the asking process waits for."""
        action = request.get("action") if request else None
        version = request.get("version") if request else None
        if action not in ACTIONS or (action == "pin" and not _is_version(version)):
            return {"error": {"status": 400, "code": "bad_request", "message": f"not an admin request: {request!r}"}}
        try:
            record = self._apply(str(action), version)
        except ServiceError as e:
            return {"error": {"status": e.status, "code": e.code, "message": e.message}}
        self._point_again()
        log.info("admin %s decided", action, extra={"version": self.registry.version, "pinned": self.registry.pinned})
        return {
            "version": self.registry.version,
            "pinned": self.registry.pinned,
            "record": record.as_dict() if record else None,
        }

    def _apply(self, action: str, version: Any) -> SwapRecord | None:
        if action == "pin":
            return self.registry.pin(str(version))
        if action == "unpin":
            return self.registry.unpin()
        return self.registry.reconcile(SwapTrigger.ADMIN)

    def _point_again(self) -> None:
        """Rewrite the pointer when the pin changed but the served artifact did not (so the workers learn the pin)."""
        serving = self.registry.serving
        pointer = Pointer.read(self.directory)
        if serving is None or pointer is None:
            return
        if (pointer.name, pointer.generation, pointer.pinned) != (
            serving.loaded.ref.name, serving.loaded.ref.generation, self.registry.pinned,
        ):  # fmt: skip
            self.writer.point_to(serving.loaded, SwapTrigger.ADMIN, None)


def _is_version(value: Any) -> bool:
    return isinstance(value, str) and layout.model_version(layout.model_object(value)) == value
