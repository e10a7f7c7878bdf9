"""Live accuracy in the pod: the agent reads the bucket's live accuracy document, exports it and hands it over.

Every LIVE_ACCURACY_INTERVAL seconds the agent looks at ``<FEEDBACK_LOG_PREFIX>accuracy.json`` (core.liveaccuracy,
written and signed by the trainer's feedback joiner) through core.gcs with its retry: one metadata request, and a
download only when the object's generation changed. A missing object means no feedback yet; a document that no trusted
key signed, that does not validate (or is over core.liveaccuracy.MAX_BYTES) or that is older than the one held (a
replay) is logged, counted in ``predictor_live_accuracy_refused_total{reason}`` and ignored, and the last good one
stays (its generation is remembered, so it is not downloaded again until it changes). A good document is written to
the handover (``live-accuracy.json``, for the serving processes' /v1/model and /v1/model/monitoring) and exported in
the agent's registry (multiprocess files, so they join the pod's /metrics):

- ``predictor_live_accuracy{version}``: correct / total, only once a version has LIVE_ACCURACY_MIN_ROWS answers with
  feedback (the alert IrisLiveAccuracyBelowFloor never judges a version by three labels);
- ``predictor_live_accuracy_rows{version}``: its answers with feedback;
- ``predictor_model_accuracy_floor{version}``: for the serving version only, the floor its quality gate held it to:
  its signed lineage's ``metrics["accuracy_floor"]``, else the document's ``offline.accuracy_floor``; absent unknown.

Only the EXPORTED_VERSIONS newest versions (and the serving one) are exported. Multiprocess metric files cannot drop
a label, so a version that leaves them (or a floor whose version stopped serving) is set to NaN, which no comparison
in an alert rule is true for.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import storage

from core import gcs, liveaccuracy
from core.errors import ArtifactRejected, StoreRefused, StoreUnavailable
from core.liveaccuracy import AccuracyDocument
from core.signing import Keyring
from core.store import LoadedModel
from predictor.lifecycle import handover
from predictor.settings import PredictorSettings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

EXPORTED_VERSIONS = 10
"""Newest versions of the document exported as metric labels (the serving version is always one of them)."""


def lineage_floor(loaded: LoadedModel) -> float | None:
    """The accuracy floor a model's gate held it to, from its signed lineage (None for models from before it)."""
    value = loaded.lineage.metrics.get("accuracy_floor")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None


class _Refused(Exception):
    """A document the agent does not take, and the `reason` label it is counted under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AccuracyGauges:
    """The live accuracy figures in `registry` (``mostrecent``: the agent alone sets them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge

        self.accuracy = Gauge(
            "predictor_live_accuracy",
            "Share of a model version's answers that feedback confirmed, once it has LIVE_ACCURACY_MIN_ROWS of them.",
            ["version"], multiprocess_mode="mostrecent", registry=registry,
        )  # fmt: skip
        self.rows = Gauge(
            "predictor_live_accuracy_rows", "Answers of a model version that got feedback.",
            ["version"], multiprocess_mode="mostrecent", registry=registry,
        )  # fmt: skip
        self.refused = Counter(
            "predictor_live_accuracy_refused",
            "Live accuracy documents the agent refused: unsigned or not by a trusted key, invalid, or a replay.",
            ["reason"], registry=registry,
        )  # fmt: skip
        self.floor = Gauge(
            "predictor_model_accuracy_floor",
            "Accuracy floor of the serving version's quality gate (its lineage's, else the live accuracy document's).",
            ["version"], multiprocess_mode="mostrecent", registry=registry,
        )  # fmt: skip
        self._set: dict[str, set[str]] = {"accuracy": set(), "rows": set(), "floor": set()}
        """Labels given a number so far, per gauge (to NaN them once they leave)."""

    def publish(self, values: dict[str, dict[str, float]]) -> None:
        """Set each gauge ("accuracy", "rows", "floor") to its values by version; labels set before and absent now
        become NaN."""
        for name, gauge in (("accuracy", self.accuracy), ("rows", self.rows), ("floor", self.floor)):
            current = values.get(name, {})
            for version, value in current.items():
                gauge.labels(version).set(value)
            for gone in self._set[name] - current.keys():
                gauge.labels(gone).set(math.nan)
            self._set[name] = set(current)


class LiveAccuracy:
    """The pod's copy of the live accuracy document: read from the bucket, exported, handed over."""

    def __init__(
        self,
        settings: PredictorSettings,
        bucket: storage.Bucket,
        registry: CollectorRegistry,
        directory: Path | None = None,
        retry: Retry | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.settings, self.bucket, self.directory, self.retry = settings, bucket, directory, retry
        self.keyring = keyring or settings.keyring()
        self.object = liveaccuracy.object_name(settings.feedback_log_prefix)
        self.gauges = AccuracyGauges(registry)
        self.document: AccuracyDocument | None = None
        """The last good document (None before one was read)."""
        self.generation: int | None = None
        """The generation last downloaded, good or not: not downloaded again until it changes."""
        self.downloads = 0
        self.serving: str | None = None
        self.serving_floor: float | None = None
        """The serving version's floor from its lineage."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def use(self, loaded: LoadedModel, trigger: str = "", finalized_at: datetime | None = None) -> None:
        """A registry swap hook: the serving version (and its lineage's floor) changed."""
        with self._lock:
            self.serving, self.serving_floor = loaded.version, lineage_floor(loaded)
            self._publish()

    def run_once(self) -> bool:
        """One look at the bucket; True if a new good document was taken. StoreUnavailable/StoreRefused pass."""
        blob = gcs.call(self.retry, self.bucket.get_blob, self.object)
        if blob is None:
            if self.document is not None:
                log.warning("live accuracy document gone from the bucket; keeping the last one read")
            return False
        generation = int(blob.generation)
        if generation == self.generation:
            return False
        if blob.size is not None and blob.size > liveaccuracy.MAX_BYTES:
            self.generation = generation
            self.gauges.refused.labels("invalid").inc()
            log.warning("live accuracy document refused: %d bytes, over %d", blob.size, liveaccuracy.MAX_BYTES)
            return False
        try:
            data = gcs.call(self.retry, blob.download_as_bytes, if_generation_match=generation)
        except (gexc.NotFound, gexc.PreconditionFailed):  # replaced or deleted meanwhile: the next pass sees it
            return False
        self.downloads += 1
        self.generation = generation
        try:
            document = self._checked(data, blob.metadata)
        except _Refused as e:
            self.gauges.refused.labels(e.reason).inc()
            log.warning(
                "live accuracy document refused (the last good one stays): %s", e,
                extra={"object": self.object, "generation": generation, "reason": e.reason},
            )  # fmt: skip
            return False
        with self._lock:
            self.document = document
            self._publish()
        if self.directory is not None:
            handover.write_live_accuracy(self.directory, liveaccuracy.dump(document))
        log.info(
            "live accuracy document read",
            extra={"generation": generation, "versions": len(document["versions"]), "updated": document["updated"]},
        )  # fmt: skip
        return True

    def _checked(self, data: bytes, metadata: dict[str, str] | None) -> AccuracyDocument:
        """The document in `data` if a trusted key signed it, it validates and it is not older than the one held."""
        try:
            liveaccuracy.verify(data, metadata, self.keyring, self.object)
        except ArtifactRejected as e:
            raise _Refused(e.reason, e.message) from e
        try:
            document = liveaccuracy.parse(data)
        except ValueError as e:
            raise _Refused("invalid", str(e)) from e
        held = self.document
        if held is not None and datetime.fromisoformat(document["updated"]) < datetime.fromisoformat(held["updated"]):
            raise _Refused("replayed", f"updated {document['updated']}, older than the {held['updated']} held")
        return document

    def _publish(self) -> None:
        """Export the document's newest versions and the serving version's floor (under the lock)."""
        values: dict[str, dict[str, float]] = {"accuracy": {}, "rows": {}, "floor": {}}
        document = self.document
        if document is not None:
            versions = liveaccuracy.newest(document, EXPORTED_VERSIONS)
            if self.serving in document["versions"] and self.serving not in versions:
                versions.append(self.serving)
            for version in versions:
                figures = document["versions"][version]
                values["rows"][version] = figures["total"]
                share = liveaccuracy.accuracy(figures)
                if share is not None and figures["total"] >= self.settings.live_accuracy_min_rows:
                    values["accuracy"][version] = share
        if self.serving is not None:
            floor = self.serving_floor
            entry = document["versions"].get(self.serving) if document is not None else None
            if floor is None and entry is not None:
                floor = entry.get("offline", {}).get("accuracy_floor")
            if floor is not None:
                values["floor"][self.serving] = floor
        self.gauges.publish(values)

    def start(self) -> None:
        """Read the document every LIVE_ACCURACY_INTERVAL seconds."""
        self.thread = threading.Thread(target=self._run, name="live-accuracy", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except (StoreUnavailable, StoreRefused) as e:
                log.warning("live accuracy document unreadable; trying again: %s", e)
            except Exception:  # a local file problem, say; the next pass tries again
                log.exception("live accuracy pass failed")
            self._stop.wait(self.settings.live_accuracy_interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout)
