"""Training data: list and fingerprint data/, stream every CSV into arrays, seed the bundled iris set."""

from __future__ import annotations

import hashlib
import io
import logging
from array import array
from dataclasses import dataclass, field
from typing import IO, Any, cast

import numpy as np
from google.api_core import exceptions as gexc
from google.cloud import storage

from core import csvscan, gcs, iris, layout
from core.gcs import REQUEST_TIMEOUT
from core.lineage import Provenance, Trigger
from trainer import influence
from trainer.influence import FileRows

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Features, labels and per-file validation reports of everything under data/."""

    features: np.ndarray
    labels: np.ndarray
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    used: list[storage.Blob] = field(default_factory=list)
    """The objects that contributed rows, newest first."""
    feedback_rows: int = 0
    """Rows from feedback files (data/feedback-*: the feedback joiner's CSVs, trainer.feedback)."""

    @property
    def rows(self) -> int:
        return len(self.labels)

    def provenance(self, trigger: Trigger) -> Provenance:
        """The trigger, the objects learned from (`name#generation`) and the newest one's finalize time."""
        finalized = [b.time_created for b in self.used if b.time_created is not None]
        objects = tuple(f"{b.name}#{b.generation}" for b in self.used)
        return Provenance(trigger, objects, max(finalized, default=None))


def list_csvs(bucket: storage.Bucket, retry: Any) -> list[storage.Blob]:
    """Every CSV object under data/, by name."""
    blobs = gcs.call(retry, gcs.listed, bucket, prefix=layout.DATA)
    return sorted((b for b in blobs if b.name.lower().endswith(".csv")), key=lambda b: b.name)


def fingerprint(blobs: list[storage.Blob]) -> str:
    """SHA-256 over the names, generations and MD5s of the data set's objects."""
    digest = hashlib.sha256()
    for blob in blobs:
        digest.update(f"{blob.name}\n{blob.generation}\n{blob.md5_hash}\n".encode())
    return digest.hexdigest()


def seed_iris_csv(bucket: storage.Bucket, retry: Any) -> bool:
    """Write data/iris.csv from the iris data scikit-learn ships; False if it already exists."""
    from sklearn.datasets import load_iris  # imported here: keeps the no-new-data path fast

    bundled = load_iris()
    rows = [
        csvscan.Row(i + 2, [], tuple(float(v) for v in x), iris.CLASSES[t])
        for i, (x, t) in enumerate(zip(bundled.data, bundled.target, strict=True))
    ]
    blob = bucket.blob(layout.DATA + "iris.csv")
    try:
        gcs.call(retry, blob.upload_from_string, csvscan.to_csv(rows), "text/csv", if_generation_match=0)
    except gexc.PreconditionFailed:
        return False
    return True


_CHUNK, _QUANTUM = 8 * 1024 * 1024, 256 * 1024
"""Download size of one ranged read of a data/ file, and the step it is rounded up in."""


class _Budget(io.RawIOBase):
    """The first `budget` bytes of a stream, then up to the end of that line; `cut` tells whether bytes were left."""

    def __init__(self, raw: IO[bytes], budget: int) -> None:
        self.raw, self.left, self.read_bytes = raw, budget, 0
        self.cut = self._ending = self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        if self._ending:  # the line the budget ended in is complete: was there more?
            self._done = True
            self.cut = self.cut or bool(self.raw.read(1))
            return 0
        data = self.raw.read(len(buffer))
        if not data:
            self._done = True
            return 0
        if len(data) > self.left:
            end = data.find(b"\n", max(self.left - 1, 0))
            if end >= 0:
                self.cut = end + 1 < len(data)
                data, self._ending = data[: end + 1], True
        self.left -= len(data)
        self.read_bytes += len(data)
        buffer[: len(data)] = data
        return len(data)


def _read_one(
    blob: storage.Blob, limits: csvscan.Limits, retry: Any, budget: int, max_rows: int
) -> tuple[FileRows, csvscan.CsvReport, _Budget, bool]:
    """Stream one CSV up to `budget` bytes (whole lines) and `max_rows` rows; valid rows as arrays.

    The last value says whether rows were left unread because of `max_rows`.
    """
    values, codes, report = array("d"), array("B"), csvscan.CsvReport()
    code = {name: i for i, name in enumerate(iris.CLASSES)}
    pinned = blob.bucket.blob(blob.name, generation=blob.generation)
    row_capped = False
    chunk = min(_CHUNK, (budget // _QUANTUM + 1) * _QUANTUM)  # no download far past a small budget
    with gcs.errors(), pinned.open("rb", chunk_size=chunk, retry=retry, timeout=REQUEST_TIMEOUT) as stream:
        budgeted = _Budget(stream, budget)
        for row in csvscan.scan(cast(IO[bytes], budgeted), report, limits):
            if row.values is not None and row.label is not None:
                values.extend(row.values)
                codes.append(code[row.label])
            if report.rows_total >= max_rows:
                row_capped = True
                break
    features = np.frombuffer(values, dtype=np.float64).reshape(-1, len(iris.FEATURES))
    rows = FileRows(blob.name, features, np.frombuffer(codes, dtype=np.uint8), blob.generation or 0, blob)
    return rows, report, budgeted, row_capped


@dataclass
class Reading:
    """The rows of every readable file, its report, and how much of the run's byte budget was read."""

    files: list[FileRows]
    reports: dict[str, dict[str, Any]]
    bytes_read: int = 0
    byte_budget: int = 0
    cut_by_budget: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "bytes_read": self.bytes_read,
            "byte_budget": self.byte_budget,
            "byte_budget_reached": bool(self.cut_by_budget),
            "files_cut_by_byte_budget": self.cut_by_budget,
        }


def read_files(
    blobs: list[storage.Blob], limits: csvscan.Limits, retry: Any, byte_budget: int, max_rows: int
) -> Reading:
    """Validate and load every CSV, within `byte_budget` bytes and `max_rows` rows, both shared fairly across files.

    Each file may read the fair share of the byte budget (small files all of theirs, large ones an equal share);
    smallest first, each takes at most an equal share of the rows still unclaimed, so no file's size crowds another
    out and memory stays bounded however much is uploaded. Bad rows and bad files are skipped and reported.
    """
    readable = [b for b in blobs if (b.size or 0) <= limits.max_bytes]
    share = influence.fair_cap([b.size or 0 for b in readable], byte_budget)
    reading = Reading([], {}, byte_budget=byte_budget)
    for blob in blobs:
        if (blob.size or 0) > limits.max_bytes:
            too_large = csvscan.CsvReport(fatal=f"file exceeds {limits.max_bytes} bytes")
            reading.reports[blob.name] = _summarize(blob.name, too_large)
    left = max_rows
    for k, blob in enumerate(sorted(readable, key=lambda b: (b.size or 0, b.name))):
        limit = max(left // (len(readable) - k), 1)
        rows, report, budgeted, row_capped = _read_one(blob, limits, retry, share, limit)
        reading.bytes_read += budgeted.read_bytes
        summary = _summarize(blob.name, report)
        if report.fatal is None:
            reading.files.append(rows)
            left -= rows.rows
            if budgeted.cut:
                reading.cut_by_budget.append(blob.name)
                summary["cut"] = f"read {budgeted.read_bytes} of {blob.size} bytes (MAX_RUN_BYTES shared fairly)"
            elif row_capped:
                summary["cut"] = f"read its first {report.rows_total} rows (MAX_TRAINING_ROWS shared fairly)"
        reading.reports[blob.name] = summary
    return reading


def assemble(reading: Reading, selection: influence.Selection) -> Dataset:
    """The training rows the selection keeps, with each file's report saying how many it contributed."""
    kept = [(f, selection.used[f.name]) for f in reading.files if f.name in selection.used]
    features = np.concatenate([f.features[i] for f, i in kept] or [np.empty((0, len(iris.FEATURES)))])
    codes = np.concatenate([f.codes[i] for f, i in kept] or [np.empty(0, dtype=np.uint8)])
    for f in reading.files:
        used = len(selection.used.get(f.name, ()))
        reading.reports[f.name]["rows_used"] = used
        if f.name in selection.excluded:
            reading.reports[f.name]["excluded"] = selection.excluded[f.name].reasons
    used_blobs = [f.blob for f, i in kept if len(i) and f.blob is not None]
    used_blobs.sort(key=lambda b: b.generation or 0, reverse=True)
    labels = np.asarray(iris.CLASSES)[codes]
    feedback = sum(len(i) for f, i in kept if is_feedback(f.name))
    return Dataset(features, labels, reading.reports, used_blobs, feedback)


FEEDBACK_PREFIX = layout.DATA + "feedback-"
"""data/ files the feedback joiner's CSVs become (incoming/feedback-<stamp>.csv, validated by the ingest function)."""


def is_feedback(name: str) -> bool:
    """Whether a data/ object holds feedback rows (counted in the lineage's `feedback_rows`)."""
    return name.startswith(FEEDBACK_PREFIX)


def _summarize(name: str, report: csvscan.CsvReport) -> dict[str, Any]:
    summary = {"rows_valid": report.rows_valid, "rows_invalid": report.rows_invalid, "fatal": report.fatal}
    if report.fatal or report.errors_total:
        log.warning(
            "skipped bad data in %s",
            name,
            extra={"file": name, **summary, "first_errors": [e.as_dict() for e in report.errors[:5]]},
        )
    return summary
