"""The shipper: once per pod, in the model agent's process, moves ready spool files to the bucket.

Each pass (every PREDICTION_LOG_BATCH_INTERVAL seconds) makes dead writers' files ready (spool.promote_orphans),
keeps the spool within PREDICTION_LOG_MAX_SPOOL_BYTES (spool.enforce_bound), then ships the files oldest first: claim
(rename to ``.shipping``, so the bound never drops a file being uploaded), gzip, upload as
``<PREDICTION_LOG_PREFIX>date=<day of its first record>/<pod>-<spool file stem>.jsonl.gz`` (core.shipped) with
``if_generation_match=0``, count the records sent, delete. The object name comes from the file, so the same file
always names the same object; a file whose upload succeeded but whose deletion never happened (the agent killed in
between, or the answer to a successful upload lost and retried) meets a 412 on its next attempt and is deleted
without a second object; its records count as sent then (so a kill in the microseconds between counting and deleting
counts them twice: the counter may overstate, the bucket never duplicates). A failed upload counts its records
as failed, ends the pass and backs off exponentially (to PREDICTION_LOG_RETRY_MAX); the files wait on disk.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import random
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import storage

from core import gcs, shipped
from core.errors import StoreRefused, StoreUnavailable
from predictor.predlog.metrics import PredictionLogCounters
from predictor.predlog.settings import PredictionLogSettings
from predictor.predlog.spool import READY, SHIPPING, enforce_bound, promote_orphans, ready_files, stem_of

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/gzip"
FINAL_PASS_TIMEOUT = 5.0
"""Most seconds stop()'s last pass retries a failing upload."""


class Shipper:
    """Moves the pod's ready spool files to `bucket`; run_once() for one pass, start()/stop() for the thread."""

    def __init__(
        self,
        settings: PredictionLogSettings,
        bucket: storage.Bucket,
        directory: Path,
        pod: str,
        retry: Retry | None = None,
        counters: PredictionLogCounters | None = None,
        on_shipped: Sequence[Callable[[bytes], object]] = (),
        prefix: str | None = None,
        drops: bool = True,
    ) -> None:
        self.settings, self.bucket, self.directory, self.pod, self.retry = settings, bucket, directory, pod, retry
        self.prefix = prefix or settings.prediction_log_prefix
        """Bucket prefix of the shipped files (PREDICTION_LOG_PREFIX unless given: FEEDBACK_LOG_PREFIX)."""
        self.drops = drops
        """Keep the folder within PREDICTION_LOG_MAX_SPOOL_BYTES by dropping its oldest files; False for feedback,
        whose writers refuse new records instead (predictor.predlog.spool, `refuse_over`)."""
        self.on_shipped = tuple(on_shipped)
        """Called with each shipped file's JSON lines (the pod's served traffic in batches: the drift window)."""
        self.counters = counters or PredictionLogCounters()
        self.failures = 0
        """Consecutive failed passes (0 after a pass that shipped everything)."""
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def run_once(self, retry: Retry | None = None) -> bool:
        """One pass; True if every ready file was shipped (or found shipped)."""
        promote_orphans(self.directory, self.counters)
        if self.drops:
            enforce_bound(self.directory, self.settings.prediction_log_max_spool_bytes, self.counters)
        return all(self._ship(path, retry or self.retry) for path in ready_files(self.directory))  # stops at a failure

    def _ship(self, path: Path, retry: Retry | None) -> bool:
        claimed = path.with_suffix(SHIPPING)
        if path.suffix == READY:
            try:
                os.rename(path, claimed)
            except FileNotFoundError:  # dropped by the bound meanwhile
                return True
        try:
            data = claimed.read_bytes()
        except FileNotFoundError:
            return True
        records = data.count(b"\n")
        name = shipped.object_name(self.prefix, self.pod, stem_of(claimed))
        blob = self.bucket.blob(name)
        try:
            gcs.call(
                retry, blob.upload_from_string, gzip.compress(data, mtime=0), content_type=CONTENT_TYPE,
                if_generation_match=0,
            )  # fmt: skip
        except gexc.PreconditionFailed:  # an earlier attempt of ours landed (its answer lost, or we died before unlink)
            log.info("prediction log file was already shipped", extra={"object": name, "records": records})
            self.counters.sent.inc(records)
        except (StoreUnavailable, StoreRefused) as e:
            self.counters.failed.inc(records)
            log.warning("prediction log upload failed; the file waits", extra={"object": name, "error": str(e)})
            return False
        else:
            self.counters.sent.inc(records)
        self._shipped(claimed)
        for listener in self.on_shipped:
            try:
                listener(data)
            except Exception:  # a listener's problem never holds back the log
                log.exception("prediction log listener failed", extra={"object": name})
        return True

    def _shipped(self, claimed: Path) -> None:
        """The bucket has the file: delete it (gone already if another shipper raced this one to it)."""
        claimed.unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        """For the agent's status: consecutive failed passes and what waits in the spool."""
        waiting = ready_files(self.directory)
        size = 0
        for path in waiting:
            with contextlib.suppress(FileNotFoundError):
                size += path.stat().st_size
        return {"failures": self.failures, "files_waiting": len(waiting), "bytes_waiting": size}

    def start(self) -> None:
        """Ship every PREDICTION_LOG_BATCH_INTERVAL seconds, backing off while the bucket fails."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.thread = threading.Thread(target=self._run, name="prediction-log-shipper", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                shipped = self.run_once()
            except Exception:  # a local file problem, say; the next pass tries again
                log.exception("prediction log shipping pass failed")
                shipped = False
            self.failures = 0 if shipped else self.failures + 1
            self._stop.wait(self.delay())

    def delay(self) -> float:
        """Seconds until the next pass: the batch interval, doubled per consecutive failure up to the retry cap,
        with jitter (pods whose bucket came back do not all retry at once)."""
        interval = self.settings.prediction_log_batch_interval
        if not self.failures:
            return interval
        backoff = min(self.settings.prediction_log_retry_max, interval * 2 ** (self.failures - 1))
        return backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread, then one last pass (retrying at most FINAL_PASS_TIMEOUT) for the files the serving
        processes made ready as they stopped; what cannot ship stays spooled for the next agent. True if the spool
        was left empty of ready files."""
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout)
        retry = self.retry.with_timeout(FINAL_PASS_TIMEOUT) if self.retry is not None else None
        try:
            return self.run_once(retry)
        except Exception:
            log.exception("prediction log final pass failed")
            return False
