"""The pod's drift window, fed by the prediction log's shipper: the one process that sees every served row.

Each spool file the shipper moved to the bucket (predictor.predlog.shipper) is handed here as JSON lines; its answers
(not refusals) by the version the agent serves join a core.drift.DriftMonitor, which is then evaluated and exported
as ``predictor_drift_score{feature}``, ``predictor_drift_detected{feature}`` and ``predictor_drift_window_rows`` in
the agent's registry (multiprocess files, so they join the pod's /metrics). Every model the agent accepts brings its
training data's reference statistics from its signed lineage (a registry swap hook); a model trained before they
existed has none, and the figures are cleared (no verdicts) while it serves. After every evaluation the figures are
also written to the handover as ``drift.json`` (``snapshot``; the serving processes' /v1/model/monitoring).

Rows reach the window in batches, as fast as spool files rotate (PREDICTION_LOG_ROTATE_SECONDS) and ship
(PREDICTION_LOG_BATCH_INTERVAL), so the figures trail traffic by about their sum; rows left out by
PREDICTION_LOG_SAMPLE_RATE never reach the window (a sample of the traffic, which is what the window is anyway).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.drift import DriftGauges, DriftMonitor, DriftResult, Reference
from core.iris import CLASSES, FEATURES
from core.settings import DriftSettings
from core.shipped import iso_time
from core.store import LoadedModel
from predictor.lifecycle import handover
from predictor.predlog.record import Answer, from_line

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

_CLASS_IDS = {name: index for index, name in enumerate(CLASSES)}


class PodDrift:
    """The drift monitor of the version the agent serves, and its gauges in `registry`."""

    def __init__(self, settings: DriftSettings, registry: CollectorRegistry, directory: Path | None = None) -> None:
        self.monitor = DriftMonitor(settings)
        self.gauges = DriftGauges(registry)
        self.directory = directory
        """The handover folder ``drift.json`` goes to; None: no snapshot."""
        self.version: str | None = None
        self._lock = threading.Lock()
        self.gauges.publish(None)

    def use(self, loaded: LoadedModel, trigger: str = "", finalized_at: datetime | None = None) -> None:
        """A registry swap hook: compare with the reference of the model about to serve."""
        try:
            reference = Reference.from_lineage(loaded.lineage.reference)
        except ValueError:
            log.exception("model %s: reference statistics unreadable; no drift verdicts", loaded.version)
            reference = None
        with self._lock:
            self.version = loaded.version
            self.monitor.use(reference)
            self._publish(self.monitor.evaluate())
        log.info("drift reference", extra={"version": loaded.version, "reference": reference is not None})

    def observe_lines(self, data: bytes) -> int:
        """Add the answers in prediction log lines served by the current version; the rows added."""
        rows: list[list[float]] = []
        classes: list[int] = []
        with self._lock:
            version = self.version
            for line in data.splitlines():
                try:
                    record = from_line(line)
                except ValueError:
                    continue
                if not isinstance(record, Answer) or record.version != version or version is None:
                    continue
                rows.extend(record.features)
                classes.extend(c if type(c) is int else _CLASS_IDS.get(c, -1) for c in record.classes)
            if not rows:
                return 0
            features = np.asarray(rows, dtype=np.float64)
            ids = np.asarray(classes, dtype=np.int64)
            if features.shape != (len(ids), len(FEATURES)) or (ids < 0).any():
                log.warning("prediction log lines with malformed answers left out of the drift window")
                return 0
            self.monitor.observe(features, ids)
            self._publish(self.monitor.evaluate())
        return len(ids)

    def _publish(self, result: DriftResult | None) -> None:
        """Export an evaluation and write its snapshot to the handover (under the lock: snapshots keep their order)."""
        self.gauges.publish(result)
        if self.directory is None or self.version is None:
            return
        try:
            handover.write_drift(self.directory, self.snapshot(result))
        except OSError:
            log.exception("drift snapshot not written")

    def snapshot(self, result: DriftResult | None) -> dict[str, Any]:
        """``drift.json``: when, the version compared, the window's rows and, with a reference, each feature's figures
        (``features`` absent for a model without reference statistics)."""
        found: dict[str, Any] = {"updated": iso_time(time.time()), "version": self.version,
                                 "window_rows": self.monitor.window.rows}  # fmt: skip
        if result is not None:
            found["features"] = result.as_dict()["features"]
        return found

    def result(self) -> DriftResult | None:
        with self._lock:
            return self.monitor.evaluate()
