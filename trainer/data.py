"""Training data: list and fingerprint data/, stream every CSV into arrays, seed the bundled iris set."""

from __future__ import annotations

import hashlib
import logging
from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.api_core import exceptions as gexc
from google.cloud import storage

from core import gcs, layout, schema
from core.gcs import REQUEST_TIMEOUT
from core.lineage import Provenance, Trigger

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """Features, labels and per-file validation reports of everything under data/."""

    features: np.ndarray
    labels: np.ndarray
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    used: list[storage.Blob] = field(default_factory=list)
    """The objects that contributed rows, newest first."""

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

    iris = load_iris()
    rows = [
        schema.Row(i + 2, [], tuple(float(v) for v in x), schema.CLASSES[t])
        for i, (x, t) in enumerate(zip(iris.data, iris.target, strict=True))
    ]
    blob = bucket.blob(layout.DATA + "iris.csv")
    try:
        gcs.call(retry, blob.upload_from_string, schema.to_csv(rows), "text/csv", if_generation_match=0)
    except gexc.PreconditionFailed:
        return False
    return True


def _read_one(blob: storage.Blob, limits: schema.Limits, retry: Any) -> tuple[array, array, schema.CsvReport]:
    """Stream one CSV; valid rows as flat float and class-index arrays."""
    values, codes, report = array("d"), array("B"), schema.CsvReport()
    code = {name: i for i, name in enumerate(schema.CLASSES)}
    pinned = blob.bucket.blob(blob.name, generation=blob.generation)
    with gcs.errors(), pinned.open("rb", chunk_size=8 * 1024 * 1024, retry=retry, timeout=REQUEST_TIMEOUT) as stream:
        for row in schema.scan(stream, report, limits):
            if row.values is not None and row.label is not None:
                values.extend(row.values)
                codes.append(code[row.label])
    return values, codes, report


def read_dataset(blobs: list[storage.Blob], limits: schema.Limits, retry: Any, max_total_rows: int) -> Dataset:
    """Validate and load every CSV; bad rows and bad files are skipped and reported, never fatal.

    Files are read newest first (by generation), and a file that would take the data set past `max_total_rows` is
    skipped with a report: the oldest data gives way, and memory stays bounded however much is uploaded.
    """
    values, codes, reports, used = array("d"), array("B"), {}, []
    for blob in sorted(blobs, key=lambda b: b.generation or 0, reverse=True):
        if (blob.size or 0) > limits.max_bytes:
            report = schema.CsvReport(fatal=f"file exceeds {limits.max_bytes} bytes")
        else:
            file_values, file_codes, report = _read_one(blob, limits, retry)
            if report.fatal is None and len(codes) + len(file_codes) > max_total_rows:
                report.fatal = f"skipped: the newer files already hold {len(codes)} of MAX_TRAINING_ROWS rows"
            if report.fatal is None:
                values.extend(file_values)
                codes.extend(file_codes)
                used += [blob] if file_codes else []
        reports[blob.name] = _summarize(blob.name, report)
    features = np.frombuffer(values, dtype=np.float64).reshape(-1, len(schema.FEATURES))
    labels = np.asarray(schema.CLASSES)[np.frombuffer(codes, dtype=np.uint8)]
    return Dataset(features, labels, reports, used)


def _summarize(name: str, report: schema.CsvReport) -> dict[str, Any]:
    summary = {"rows_valid": report.rows_valid, "rows_invalid": report.rows_invalid, "fatal": report.fatal}
    if report.fatal or report.errors_total:
        log.warning(
            "skipped bad data in %s",
            name,
            extra={"file": name, **summary, "first_errors": [e.as_dict() for e in report.errors[:5]]},
        )
    return summary
