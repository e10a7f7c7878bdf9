"""The prediction log's counters: `predictor_prediction_log_records_total{outcome="sent|dropped|failed"}`.

- ``sent``: records in the bucket (counted by the shipper once the upload of their file succeeded);
- ``dropped``: records lost on purpose, never to arrive: a full queue in a serving process, a record that could not
  be written, the oldest spool file removed to keep the spool within PREDICTION_LOG_MAX_SPOOL_BYTES, the cut last
  line of a file whose writer died mid-write;
- ``failed``: records of each upload attempt that failed; they stay spooled and are tried again (a file that
  failed three times counts three times), so a rising ``failed`` with a flat ``dropped`` is delay, not loss.

Each process counts its own (the serving processes drop, the agent's shipper sends, fails and drops); in
multiprocess mode (predictor.metrics) /metrics sums them over the pod. Records left out by sampling are not counted.

Feedback (predictor.predlog.feedback) counts in its own family of the same class,
`predictor_feedback_records_total{outcome="accepted|refused|sent|failed|dropped"}`: ``accepted`` items queued by a
serving process, ``refused`` items answered 503 because its queue or the feedback spool was full (the client was
told and retries; not lost), and ``sent``, ``failed``, ``dropped`` as above (``dropped`` only when the spool folder
could not be written: feedback is never dropped to make room).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

NAME = "predictor_prediction_log_records"
"""Exposed as NAME + "_total"."""
OUTCOMES = ("sent", "dropped", "failed")
FEEDBACK_NAME = "predictor_feedback_records"
FEEDBACK_OUTCOMES = ("accepted", "refused")
"""The feedback family's outcomes besides OUTCOMES."""


class PredictionLogCounters:
    """The outcome children of one process, in `registry` (the app's or the agent's)."""

    name: str = NAME
    documentation: str = "Prediction log records by outcome."
    more_outcomes: tuple[str, ...] = ()

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        family = Counter(self.name, self.documentation, ["outcome"], registry=self.registry)
        self.sent, self.dropped, self.failed = (family.labels(outcome) for outcome in OUTCOMES)
        self.more = {outcome: family.labels(outcome) for outcome in self.more_outcomes}

    def value(self, outcome: str) -> float:
        """This registry's count of `outcome` (tests, benchmarks)."""
        return self.registry.get_sample_value(self.name + "_total", {"outcome": outcome}) or 0.0


class FeedbackCounters(PredictionLogCounters):
    """The feedback records' outcomes: the log's three, and `accepted` and `refused` by the serving processes."""

    name = FEEDBACK_NAME
    documentation = "Feedback records by outcome."
    more_outcomes = FEEDBACK_OUTCOMES

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.accepted, self.refused = (self.more[outcome] for outcome in FEEDBACK_OUTCOMES)
