"""The answer of GET /v1/model/monitoring (routed in predictor.http.model_info): how the models do on real traffic,
as the pod's model agent last saw it.

The agent hands over two files (predictor.lifecycle.handover): ``live-accuracy.json``, the bucket's live accuracy
document it read and checked (core.liveaccuracy), and ``drift.json``, the pod's drift figures after its last
evaluation (predictor.agent.drift). This process reads them again only when a file changed (its mtime, size or inode)
and checks them; a file that is missing, unreadable or malformed answers null, never an error. ``live_accuracy`` is
the serving version's figures for /v1/model (predictor.http.model_info).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from core import liveaccuracy
from predictor.http import extensions, responses
from predictor.lifecycle import handover

log = logging.getLogger(__name__)


class CachedFile:
    """One handover file, parsed again only when it changed."""

    def __init__(self, read: Callable[[Path], bytes | None], parse: Callable[[bytes], Any]) -> None:
        self.read, self.parse = read, parse
        self._cached: tuple[tuple[str, int, int, int], Any] | None = None
        self._lock = threading.Lock()

    def get(self, directory: Path, name: str) -> Any:
        """The parsed content of `directory`/`name`, None if missing or bad."""
        try:
            info = os.stat(directory / name, follow_symlinks=False)
        except OSError:
            return None
        key = (str(directory), info.st_mtime_ns, info.st_size, info.st_ino)
        with self._lock:
            cached = self._cached
        if cached is not None and cached[0] == key:
            return cached[1]
        value = None
        data = self.read(directory)
        if data is not None:
            try:
                value = self.parse(data)
            except ValueError as e:
                log.warning("handover file %s ignored: %s", name, str(e).splitlines()[0])
        with self._lock:
            self._cached = (key, value)
        return value


_DRIFT = TypeAdapter(responses.DriftSnapshot)
ACCURACY = CachedFile(handover.read_live_accuracy, lambda data: liveaccuracy.as_json(liveaccuracy.parse(data)))
DRIFT = CachedFile(handover.read_drift, lambda data: _DRIFT.validate_python(json.loads(data)))


def accuracy_document() -> dict[str, Any] | None:
    """The pod's live accuracy document, None without one (or without a handover)."""
    follower = extensions.follower()
    return ACCURACY.get(follower.directory, handover.LIVE_ACCURACY) if follower else None


def drift_snapshot() -> dict[str, Any] | None:
    follower = extensions.follower()
    return DRIFT.get(follower.directory, handover.DRIFT) if follower else None


def live_accuracy(version: str | None) -> dict[str, Any] | None:
    """`version`'s live accuracy (accuracy, correct, total, the document's update time), None without feedback."""
    document = accuracy_document()
    figures = document["versions"].get(version) if document and version else None
    if not figures or not figures["total"]:
        return None
    return {
        "accuracy": round(figures["correct"] / figures["total"], 4), "correct": figures["correct"],
        "total": figures["total"], "updated": document["updated"] if document else None,
    }  # fmt: skip


def answer() -> dict[str, Any]:
    """Contract: the serving version, the live accuracy document and the drift snapshot (each null when none)."""
    serving = extensions.registry().serving
    return {
        "version": serving.loaded.version if serving else None,
        "accuracy": accuracy_document(),
        "drift": drift_snapshot(),
    }
