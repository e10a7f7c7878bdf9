"""Pod-wide readiness: a pod is Ready only when every one of its serving processes serves a model.

Each gunicorn worker holds its own model, and a probe reaches whichever worker accepts it; readiness of that
worker alone would let a pod take traffic while another of its workers still answers 503. So every gunicorn worker's
registry is built with ``PodReadiness.record`` as a swap hook, which writes the version it serves to the handover's
``workers/<pid>`` (predictor.lifecycle.handover), gunicorn's ``child_exit`` hook deletes a dead worker's file, and the
probe counts live pids with a file and compares that with the configured worker count. Without gunicorn
(``app.test_client()``, the gRPC server) there is no PodReadiness and readiness stays per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.store import LoadedModel
from predictor.lifecycle import handover


@dataclass(frozen=True)
class PodReadiness:
    """The pod's handover directory and how many workers gunicorn runs."""

    directory: Path
    workers: int

    def ready_workers(self) -> int:
        """How many live processes serve a model."""
        return len(handover.worker_versions(self.directory))

    def record(self, loaded: LoadedModel, trigger: str = "", finalized_at: datetime | None = None) -> None:
        """This process serves `loaded` from now on (a registry swap hook)."""
        handover.write_worker_state(self.directory, os.getpid(), loaded.version)
