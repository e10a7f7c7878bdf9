"""One joiner pass: feedback not yet read, plus what was pending, resolved against the prediction log.

1. Read the ledger (trainer.feedback.ledger) of the window and finish what a pass that died left unfinished.
2. List the feedback partitions of the window; read the objects the ledger does not list.
3. Resolve every item, oldest feedback first: `joined`, `duplicate`, `late`, `bad_row`, `refused`, `invalid`, or
   `unknown` once FEEDBACK_JOIN_WAIT seconds passed since the feedback was received without its prediction being
   found (until then it stays pending and the next pass tries again).
4. If anything changed, store the pass's ledger entry (create-only), add its joined rows to the live accuracy
   document (trainer.feedback.accuracy) and mark the entry.
5. Batch: once the entries whose rows are in no CSV yet hold FEEDBACK_MIN_ROWS rows, or the oldest of them waited
   FEEDBACK_MAX_DELAY seconds, mark them with one CSV name, write their rows as that canonical CSV
   ``incoming/feedback-<stamp of the newest>.csv`` (create-only, from the marked entries) and mark them written.

The ingest function validates the CSV into ``data/feedback-<stamp>.csv`` like any dropped CSV, and the data watcher
trains on it: feedback rows meet every check other data meets.

A pass holds the ledger's lease (``<FEEDBACK_LOG_PREFIX>ledger/lease.json``, create-only or taken over once expired,
deleted at the end), so two joiners (the watcher and a one-shot command) never decide the same feedback twice; a
pass that finds it held does nothing (`busy`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import storage
from prometheus_client import CollectorRegistry, Counter, Gauge

from core import csvscan, gcs, layout, shipped
from trainer.feedback import accuracy, ledger
from trainer.feedback.lookup import DAY, FileCache, Lookup
from trainer.feedback.records import Feedback, Outcome, feedback_lines, inflate
from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

CSV_PREFIX = layout.INCOMING + "feedback-"


def csv_name(stamp: str) -> str:
    """Where a pass's joined rows go: the ingest function keeps the name under data/."""
    return f"{CSV_PREFIX}{stamp}.csv"


class Metrics:
    """The joiner's Prometheus metrics, on the registry of the process that runs it (the watcher's /metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.items = Counter("trainer_feedback_items", "Feedback items decided, by outcome.", ["outcome"], registry=r)
        for outcome in Outcome:
            self.items.labels(outcome.value)
        self.pending = Gauge("trainer_feedback_pending", "Feedback items waiting for their prediction.", registry=r)
        self.passes = Counter("trainer_feedback_passes", "Joiner passes, by status (ok, busy, failed).", ["status"],
                              registry=r)  # fmt: skip
        for status in ("ok", "busy", "failed"):
            self.passes.labels(status)
        self.last_success = Gauge(
            "trainer_feedback_last_success_timestamp_seconds", "When a joiner pass last completed.", registry=r
        )


@dataclass
class Pass:
    """What one pass read and decided."""

    stamp: str | None = None
    objects: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    joined: list[dict[str, Any]] = field(default_factory=list)
    pending: list[Feedback] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    """Stamps of earlier passes' entries this pass finished."""
    csv: str | None = None
    """The training CSV this pass wrote (its batch was due), if any."""
    entries: list[ledger.Entry] = field(default_factory=list)
    """The ledger's entries of the window, this pass's included once stored."""
    prediction_files_read: int = 0
    busy: bool = False
    """Another joiner held the lease: this pass did nothing."""

    def summary(self) -> dict[str, Any]:
        return {
            "stamp": self.stamp, "objects": len(self.objects), "outcomes": self.outcomes, "joined": len(self.joined),
            "pending": len(self.pending), "finished": self.finished, "csv": self.csv,
            "prediction_files_read": self.prediction_files_read, "busy": self.busy,
        }  # fmt: skip


class Joiner:
    """Runs passes for one bucket; keeps the parsed prediction log files between passes (FileCache)."""

    def __init__(self, settings: TrainerSettings, bucket: storage.Bucket, metrics: Metrics | None = None) -> None:
        self.settings, self.bucket = settings, bucket
        self.retry = gcs.retry(settings)
        self.metrics = metrics or Metrics()
        self.cache = FileCache()
        self.entries: dict[str, ledger.Entry] = {}
        """Ledger entries already read (trainer.feedback.ledger.load)."""
        self.keyring = settings.keyring()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @property
    def prefix(self) -> str:
        return self.settings.feedback_log_prefix

    def run_once(self, now: float | None = None) -> Pass:
        """One pass, counted and logged; raises what failed it (StoreUnavailable...) after counting the failure."""
        try:
            lease = ledger.take_lease(self.bucket, self.prefix, self.holder, self.retry)
            if lease is None:
                self.metrics.passes.labels("busy").inc()
                log.info("another feedback joiner holds the ledger's lease; this pass is skipped")
                return Pass(busy=True)
            try:
                result = self.plan(now)
                self.commit(result)
                result.csv = self.flush(result.entries, time.time() if now is None else now)
            finally:
                ledger.release_lease(self.bucket, self.prefix, lease, self.retry)
        except Exception:
            self.metrics.passes.labels("failed").inc()
            raise
        self.metrics.passes.labels("ok").inc()
        self.metrics.last_success.set(time.time())
        self.metrics.pending.set(len(result.pending))
        for outcome, count in result.outcomes.items():
            self.metrics.items.labels(outcome).inc(count)
        changed = result.stamp is not None or result.finished or result.csv is not None
        level = logging.WARNING if result.outcomes.get(Outcome.INVALID) else logging.INFO
        log.log(level if changed else logging.DEBUG, "feedback joiner pass", extra={"feedback": result.summary()})
        return result

    def plan(self, now: float | None = None) -> Pass:
        """Steps 1 to 3: finish unfinished entries, read new feedback, decide. Nothing of this pass is stored yet."""
        now = time.time() if now is None else now
        cfg, retry = self.settings, self.retry
        since = now - cfg.feedback_max_age - DAY
        state = ledger.load(self.bucket, self.prefix, since, retry, self.entries)
        for name in state.unreadable:
            log.error("unreadable feedback ledger entry skipped", extra={"object": name})
        result = Pass()
        for entry in state.unfinished():
            self.finish(entry, now)
            result.finished.append(entry.stamp)
        seen, joined = state.objects, state.joined
        items: list[Feedback] = list(state.pending)
        invalid = 0
        for name, arrived in self._feedback_objects(since, now):
            if name in seen:
                continue
            blob = self.bucket.blob(name)
            try:
                found, bad = feedback_lines(inflate(gcs.call(retry, blob.download_as_bytes)), name, arrived)
            except ValueError as e:  # not gzip, or too large: counted as one invalid item
                log.warning("feedback object unreadable: %s", e, extra={"object": name})
                found, bad = [], 1
            except gexc.NotFound:
                continue
            items.extend(found)
            invalid += bad
            result.objects.append(name)
        lookup = Lookup(self.bucket, cfg.prediction_log_prefix, cfg.feedback_max_age, retry, self.cache)
        outcomes: dict[str, int] = {Outcome.INVALID.value: invalid} if invalid else {}
        for item in sorted(items, key=lambda i: (i.time, i.source, i.id, i.row)):
            outcome = self.decide(item, joined, lookup, now, result)
            if outcome is None:
                result.pending.append(item)
            else:
                outcomes[outcome.value] = outcomes.get(outcome.value, 0) + 1
        result.outcomes = outcomes
        result.prediction_files_read = lookup.files_read
        if result.objects or outcomes or len(result.pending) != len(state.pending):
            result.stamp = ledger.new_stamp(state.newest, now)
        result.entries = state.entries
        return result

    def decide(
        self, item: Feedback, joined: set[tuple[str, int]], lookup: Lookup, now: float, result: Pass
    ) -> Outcome | None:
        """One item's outcome (None: still pending); a joined item's row is added to `result.joined`."""
        if item.key in joined:
            return Outcome.DUPLICATE
        prediction = lookup.find(item.id, item.time)
        if prediction is None:
            return Outcome.UNKNOWN if item.waited(now) >= self.settings.feedback_join_wait else None
        if prediction.refused:
            return Outcome.REFUSED
        if prediction.time < item.time - self.settings.feedback_max_age:
            return Outcome.LATE
        if item.row >= len(prediction.features):
            return Outcome.BAD_ROW
        row = prediction.row(item.row)
        if row is None:
            return Outcome.INVALID
        features, predicted = row
        joined.add(item.key)
        result.joined.append({
            "id": item.id, "row": item.row, "label": item.label, "features": features,
            "version": prediction.version, "predicted": predicted, "time": item.as_dict()["time"],
        })  # fmt: skip
        return Outcome.JOINED

    def _feedback_objects(self, since: float, now: float) -> list[tuple[str, float]]:
        """(name, creation time) of the feedback objects of the window's date partitions (the ledger and the
        document are not in them)."""
        found: dict[str, float] = {}
        moment = now
        while moment >= since - DAY:
            for blob in gcs.call(self.retry, gcs.listed, self.bucket, prefix=shipped.partition(self.prefix, moment)):
                found[blob.name] = blob.time_created.timestamp() if blob.time_created else 0.0
            moment -= DAY
        return sorted(found.items())

    def commit(self, result: Pass, now: float | None = None) -> None:
        """Step 4: store the entry, then finish it (CSV, live accuracy)."""
        if result.stamp is None:
            return
        entry = ledger.Entry(
            result.stamp, result.objects, result.joined, result.outcomes,
            [item.as_dict() for item in result.pending], None,
            csv_written=not result.joined, accuracy_counted=not result.joined,
        )  # fmt: skip
        entry.store(self.bucket, self.prefix, self.retry)
        result.entries = [*result.entries, entry]
        self.finish(entry, time.time() if now is None else now)

    def finish(self, entry: ledger.Entry, now: float) -> None:
        """Count the entry's rows in the live accuracy, marked in the entry once done."""
        if entry.joined and not entry.accuracy_counted:
            accuracy.add(self.bucket, self.prefix, self.keyring, entry.joined, now, self.retry)
            entry.mark(self.bucket, self.prefix, self.retry, accuracy_counted=True)

    def flush(self, entries: list[ledger.Entry], now: float) -> str | None:
        """Step 5: write the batches that are due (and finish any a dead pass began); the last CSV written."""
        waiting = ledger.unwritten(entries)
        written = None
        for name in sorted({e.csv for e in waiting if e.csv}):  # begun: exactly the entries marked with it
            self.write_batch(name, [e for e in waiting if e.csv == name])
            written = name
        fresh = [e for e in waiting if not e.csv]
        if not fresh:
            return written
        rows = sum(len(e.joined) for e in fresh)
        waited = now - ledger.stamp_time(fresh[0].stamp)
        if rows < self.settings.feedback_min_rows and waited < self.settings.feedback_max_delay:
            return written
        name = csv_name(fresh[-1].stamp)
        for entry in fresh:  # the batch is decided before a byte of it is written
            entry.mark(self.bucket, self.prefix, self.retry, csv=name)
        self.write_batch(name, fresh)
        return name

    def write_batch(self, name: str, entries: list[ledger.Entry]) -> None:
        self.write_csv(name, [row for entry in entries for row in entry.joined])
        for entry in entries:
            entry.mark(self.bucket, self.prefix, self.retry, csv_written=True)

    def write_csv(self, name: str, joined: list[dict[str, Any]]) -> bool:
        """Joined rows as one canonical CSV; False when it was already there (or already ingested)."""
        if self._ingested(name):
            return False
        rows = [csvscan.Row(i + 2, [], tuple(r["features"]), r["label"]) for i, r in enumerate(joined)]
        blob = self.bucket.blob(name)
        try:
            gcs.call(self.retry, blob.upload_from_string, csvscan.to_csv(rows), "text/csv", if_generation_match=0)
        except gexc.PreconditionFailed:
            return False
        return True

    def _ingested(self, name: str) -> bool:
        """Whether the ingest function already validated this upload into data/ under its name (then it deleted the
        upload, so a create-only write would succeed again)."""
        return gcs.call(self.retry, self.bucket.get_blob, layout.DATA + name.removeprefix(layout.INCOMING)) is not None
