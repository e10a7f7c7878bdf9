"""What a serving process calls: PredictionLog, one per process (built in the worker, after the fork)."""

from __future__ import annotations

import atexit
import time
import zlib
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from predictor.predlog.metrics import PredictionLogCounters
from predictor.predlog.record import Answer, Refusal
from predictor.predlog.settings import PredictionLogSettings
from predictor.predlog.spool import Spool

_SCALE = 1 << 32


def in_sample(request_id: str, rate: float) -> bool:
    """Whether the request `request_id` is recorded at sampling `rate`: its CRC-32 below rate * 2**32. The same id
    gives the same answer in every process, so feedback for an id can tell "sampled out" from "unknown"."""
    if rate >= 1.0:
        return True
    return zlib.crc32(request_id.encode()) < rate * _SCALE


class PredictionLog:
    """Records answers and refusals of one serving process; every call returns at once (see predictor.predlog)."""

    def __init__(self, spool: Spool | None, sample_rate: float = 1.0) -> None:
        self.spool = spool
        self.sample_rate = sample_rate
        self._threshold = sample_rate * _SCALE
        self._everything = sample_rate >= 1.0

    @classmethod
    def from_settings(
        cls, settings: PredictionLogSettings, handover_dir: Path, registry: CollectorRegistry | None = None
    ) -> PredictionLog:
        """The process's log on the spool folder of `settings` (beside `handover_dir` unless PREDICTION_LOG_DIR),
        counting in `registry` (the app's metrics registry); closed at interpreter exit if close() was not called.
        Disabled (PREDICTION_LOG_ENABLED=false or a sampling rate of 0): every call is a no-op."""
        if not settings.prediction_log_enabled or settings.prediction_log_sample_rate <= 0:
            return cls(None, 0.0)
        spool = Spool(
            settings.spool_dir(handover_dir), PredictionLogCounters(registry), settings.prediction_log_queue_size,
            settings.prediction_log_rotate_bytes, settings.prediction_log_rotate_seconds,
            settings.prediction_log_max_spool_bytes,
        )  # fmt: skip
        log = cls(spool, settings.prediction_log_sample_rate)
        atexit.register(log.close)
        return log

    @property
    def enabled(self) -> bool:
        return self.spool is not None

    def sampled(self, request_id: str) -> bool:
        """Whether a record of `request_id` would be kept."""
        return self.spool is not None and in_sample(request_id, self.sample_rate)

    def log_answer(
        self, request_id: str, route: str, version: str | None, rows: Any, classes: Any, probabilities: Any
    ) -> None:
        """Record a served prediction: `rows` (instances x FEATURES), `classes` (one per row: an index into CLASSES
        or a name), `probabilities` (rows x CLASSES); lists or NumPy arrays the caller no longer modifies."""
        spool = self.spool
        if spool is None or not (self._everything or zlib.crc32(request_id.encode()) < self._threshold):
            return
        spool.put(Answer(request_id, time.time(), route, version, rows, classes, probabilities))

    def log_refusal(
        self, request_id: str, route: str, reason: str, status: int | None = None, version: str | None = None
    ) -> None:
        """Record a refused request: why (`reason`, the HTTP `status`), never its features."""
        spool = self.spool
        if spool is None or not (self._everything or zlib.crc32(request_id.encode()) < self._threshold):
            return
        spool.put(Refusal(request_id, time.time(), route, reason, status, version))

    def close(self, timeout: float = 10.0) -> bool:
        """Write everything accepted to the spool and make its last file ready; True if done within `timeout`.
        Idempotent; later calls to log_* are counted as dropped."""
        if self.spool is None:
            return True
        atexit.unregister(self.close)
        return self.spool.close(timeout)
