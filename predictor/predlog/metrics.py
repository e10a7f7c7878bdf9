"""The prediction log's counters: `predictor_prediction_log_records_total{outcome="sent|dropped|failed"}`.

- ``sent``: records in the bucket (counted by the shipper once the upload of their file succeeded);
- ``dropped``: records lost on purpose, never to arrive: a full queue in a serving process, a record that could not
  be written, the oldest spool file removed to keep the spool within PREDICTION_LOG_MAX_SPOOL_BYTES, the cut last
  line of a file whose writer died mid-write;
- ``failed``: records of each upload attempt that failed; they stay spooled and are tried again (a file that
  failed three times counts three times), so a rising ``failed`` with a flat ``dropped`` is delay, not loss.

Each process counts its own (the serving processes drop, the agent's shipper sends, fails and drops); in
multiprocess mode (predictor.metrics) /metrics sums them over the pod. Records left out by sampling are not counted.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

NAME = "predictor_prediction_log_records"
"""Exposed as NAME + "_total"."""
OUTCOMES = ("sent", "dropped", "failed")


class PredictionLogCounters:
    """The three outcome children of one process, in `registry` (the app's or the agent's)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        family = Counter(NAME, "Prediction log records by outcome.", ["outcome"], registry=self.registry)
        self.sent, self.dropped, self.failed = (family.labels(outcome) for outcome in OUTCOMES)

    def value(self, outcome: str) -> float:
        """This registry's count of `outcome` (tests, benchmarks)."""
        return self.registry.get_sample_value(NAME + "_total", {"outcome": outcome}) or 0.0
