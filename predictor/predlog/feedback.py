"""Feedback: true labels for logged predictions, judged at once and spooled for the joiner (no Flask here).

A client names a prediction by its request id and the instance's row in that request's batch and gives its true
class. What a serving process can know at once, it answers per item (`judge`, in request order):

- ``not_logged``: the prediction log is off in this pod, so no prediction can be joined with a label;
- ``sampled_out``: the log never kept that id (predictor.predlog.log.in_sample at PREDICTION_LOG_SAMPLE_RATE is
  deterministic, so a sampled-out id is known as such, never mistaken for an unknown one);
- ``late``: a generated id (a UUIDv7, core.uuid7.issued_at) issued more than FEEDBACK_MAX_AGE ago;
- ``duplicate``: the same (id, row) earlier in the same request;
- ``unavailable``: this process's feedback queue is full, or the feedback spool holds FEEDBACK_LOG_MAX_SPOOL_BYTES
  waiting for the bucket: not taken, the client retries (feedback is never dropped to make room, unlike the log);
- ``accepted``: queued as a ``feedback`` record (predictor.predlog.record) in the process's feedback spool, its own
  folder (FEEDBACK_LOG_DIR), which the pod's agent ships like the log to FEEDBACK_LOG_PREFIX.

What only the bucket knows, the joiner (the trainer side) decides later from the shipped records: an id the log has
no answer for (unknown, or a refusal), a row beyond that prediction's batch, the same (id, row) sent again in another
request, and client-chosen ids past FEEDBACK_MAX_AGE (their issue time is unknown here). A request path cost: a CRC-32
and a dict per item and one deque append per accepted item; no I/O.
"""

from __future__ import annotations

import atexit
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from core import uuid7
from predictor.predlog.log import PredictionLog
from predictor.predlog.metrics import FeedbackCounters
from predictor.predlog.record import Feedback
from predictor.predlog.settings import PredictionLogSettings
from predictor.predlog.spool import Spool

ACCEPTED, UNAVAILABLE = "accepted", "unavailable"
SAMPLED_OUT, LATE, DUPLICATE, NOT_LOGGED = "sampled_out", "late", "duplicate", "not_logged"
STATUSES = (ACCEPTED, SAMPLED_OUT, LATE, DUPLICATE, NOT_LOGGED, UNAVAILABLE)
DAY = 86_400.0
OFF = (
    "the prediction log is off in this pod (PREDICTION_LOG_ENABLED=false or PREDICTION_LOG_SAMPLE_RATE=0): no "
    "prediction to label"
)
FULL = (
    "the feedback queue or spool is full (the bucket may be unreachable); nothing was kept of this item: send it "
    "again later"
)


@dataclass(frozen=True, slots=True)
class Item:
    """One label: row `row` of the prediction `id` is of class `label` (a name of core.iris.CLASSES)."""

    id: str
    row: int
    label: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What became of one item, and why when it was not accepted."""

    id: str
    row: int
    status: str
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"id": self.id, "row": self.row, "status": self.status}
        if self.reason is not None:
            found["reason"] = self.reason
        return found


class FeedbackLog:
    """One serving process's feedback spool and the verdicts it can give at once."""

    def __init__(self, spool: Spool | None, max_age: float = 7 * DAY, counters: FeedbackCounters | None = None) -> None:
        self.spool, self.max_age = spool, max_age
        self.counters = counters or FeedbackCounters()

    @classmethod
    def from_settings(
        cls, settings: PredictionLogSettings, handover_dir: Path, registry: CollectorRegistry | None = None
    ) -> FeedbackLog:
        """The process's feedback spool in FEEDBACK_LOG_DIR (by default beside the prediction log's files), counting
        in `registry`; None-spooled (every item `not_logged`) when the prediction log is off. Closed at exit."""
        counters = FeedbackCounters(registry)
        if not settings.prediction_log_enabled or settings.prediction_log_sample_rate <= 0:
            return cls(None, settings.feedback_max_age, counters)
        spool = Spool(
            settings.feedback_dir(handover_dir), counters, settings.feedback_queue_size,
            settings.prediction_log_rotate_bytes, settings.prediction_log_rotate_seconds, None,
            refuse_over=settings.feedback_log_max_spool_bytes,
        )  # fmt: skip
        log = cls(spool, settings.feedback_max_age, counters)
        atexit.register(log.close)
        return log

    def judge(self, log: PredictionLog, items: Sequence[Item], received_at: float) -> list[Verdict]:
        """A verdict per item, in order; the accepted ones are queued for the spool as received at `received_at`."""
        verdicts: list[Verdict] = []
        seen: dict[tuple[str, int], int] = {}
        for index, item in enumerate(items):
            verdict = self._judge(log, item, received_at, seen.get((item.id, item.row)))
            seen.setdefault((item.id, item.row), index)
            verdicts.append(verdict)
        return verdicts

    def _judge(self, log: PredictionLog, item: Item, received_at: float, earlier: int | None) -> Verdict:
        spool = self.spool
        if spool is None or not log.enabled:
            return Verdict(item.id, item.row, NOT_LOGGED, OFF)
        if not log.sampled(item.id):
            return Verdict(item.id, item.row, SAMPLED_OUT, f"the prediction log did not keep this id "
                           f"(PREDICTION_LOG_SAMPLE_RATE={log.sample_rate:g}): its features are unknown, so its "
                           f"label cannot become training data")  # fmt: skip
        issued = uuid7.issued_at(item.id)
        if issued is not None and received_at - issued > self.max_age:
            return Verdict(item.id, item.row, LATE, f"the prediction is {(received_at - issued) / DAY:.1f} days old, "
                           f"older than FEEDBACK_MAX_AGE ({self.max_age:g} s)")  # fmt: skip
        if earlier is not None:
            return Verdict(item.id, item.row, DUPLICATE, f"the same id and row as feedback[{earlier}] of this request")
        if not spool.offer(Feedback(item.id, item.row, item.label, received_at)):
            self.counters.refused.inc()
            return Verdict(item.id, item.row, UNAVAILABLE, FULL)
        self.counters.accepted.inc()
        return Verdict(item.id, item.row, ACCEPTED)

    def close(self, timeout: float = 10.0) -> bool:
        """Write every accepted record to the spool and make its last file ready; True if done within `timeout`."""
        if self.spool is None:
            return True
        atexit.unregister(self.close)
        return self.spool.close(timeout)
