"""Finding a feedback's prediction record in the shipped prediction log.

A generated request id is a UUIDv7 that says when it was issued, so its record is in the files whose first record is
at most NEAR_BEFORE seconds before that and NEAR_AFTER after (a spool file rotates within
PREDICTION_LOG_ROTATE_SECONDS, 60 by default), in at most two date partitions. A client's own id says nothing, so its
record is looked for in every file of the partitions from the feedback's day back to FEEDBACK_MAX_AGE before it,
newest first; of several records under one id (a client may reuse ids) the latest before the feedback wins.

Listings are made once per pass and day; files are downloaded once and kept, parsed, up to CACHE_BYTES of their
JSON lines (about three times that in memory; shipped files never change: their names are create-only), so a
watcher's next passes read only new files.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from google.cloud import storage

from core import gcs, shipped, uuid7
from trainer.feedback import records
from trainer.feedback.records import Prediction

log = logging.getLogger(__name__)

NEAR_BEFORE = 3600.0
"""Seconds before an id's issue time that its file's first record may be (a generous spool rotation bound)."""
NEAR_AFTER = 300.0
"""Seconds after an id's issue time that its file's first record may be (the time to answer, and clock steps)."""
DAY = 86400.0
CACHE_BYTES = 32 * 1024 * 1024


class FileCache:
    """Parsed prediction log files by object name, the least recently used dropped beyond CACHE_BYTES."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit, self.size = limit, 0
        self._files: OrderedDict[str, tuple[int, dict[str, list[Prediction]]]] = OrderedDict()

    def get(self, name: str) -> dict[str, list[Prediction]] | None:
        entry = self._files.get(name)
        if entry is None:
            return None
        self._files.move_to_end(name)
        return entry[1]

    def put(self, name: str, size: int, index: dict[str, list[Prediction]]) -> None:
        self._files[name] = (size, index)
        self.size += size
        while self.size > self.limit and len(self._files) > 1:
            _, (dropped, _) = self._files.popitem(last=False)
            self.size -= dropped


class Lookup:
    """One pass's view of the prediction log (listings per day are made once per pass)."""

    def __init__(self, bucket: storage.Bucket, prefix: str, max_age: float, retry: Any, cache: FileCache) -> None:
        self.bucket, self.prefix, self.max_age, self.retry, self.cache = bucket, prefix, max_age, retry, cache
        self._days: dict[str, list[tuple[float, str]]] = {}
        self.files_read = 0

    def _listing(self, moment: float) -> list[tuple[float, str]]:
        """(first record time, name) of the shipped files of `moment`'s day partition, newest first."""
        folder = shipped.partition(self.prefix, moment)
        if folder not in self._days:
            blobs = gcs.call(self.retry, gcs.listed, self.bucket, prefix=folder)
            found = [(shipped.file_time(b.name), b.name) for b in blobs]
            self._days[folder] = sorted(((t, n) for t, n in found if t is not None), reverse=True)
        return self._days[folder]

    def _index(self, name: str) -> dict[str, list[Prediction]]:
        index = self.cache.get(name)
        if index is None:
            blob = self.bucket.blob(name)
            data = gcs.call(self.retry, blob.download_as_bytes)
            try:
                lines = records.inflate(data)
            except ValueError as e:
                log.warning("prediction log file skipped: %s", e, extra={"object": name})
                lines = b""
            index = records.prediction_index(lines)
            self.cache.put(name, len(lines), index)
            self.files_read += 1
        return index

    def find(self, request_id: str, before: float) -> Prediction | None:
        """The latest record under `request_id` made before `before` (the feedback's time, with NEAR_AFTER's
        slack), or None."""
        issued = uuid7.issued_at(request_id)
        if issued is not None:
            low, high = issued - NEAR_BEFORE, issued + NEAR_AFTER
        else:
            low, high = before - self.max_age - DAY, before + NEAR_AFTER
        days, moment = [], high
        while moment >= low - DAY:
            days.append(moment)
            moment -= DAY
        for when in days:
            for first, name in self._listing(when):
                if not low <= first <= high:
                    continue
                found = [p for p in self._index(name).get(request_id, ()) if p.time <= before + NEAR_AFTER]
                if found:
                    return max(found, key=lambda p: p.time)
        return None
