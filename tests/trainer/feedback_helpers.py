"""Helpers of the feedback joiner tests: prediction log and feedback objects written as a predictor pod ships them."""

from __future__ import annotations

import gzip
import itertools
import json
import os
from collections.abc import Sequence
from typing import Any

from google.cloud import storage

from core import shipped
from core.iris import CLASSES
from predictor.predlog import record

PREDICTIONS, FEEDBACK = "predictions/", "feedback/"
_sequence = itertools.count()


def stem(first: float) -> str:
    """A spool file stem whose first record is at `first`."""
    return shipped.stem(first, os.urandom(6).hex(), next(_sequence))


def ship(bucket: storage.Bucket, prefix: str, lines: Sequence[bytes], first: float, pod: str = "iris-7d9f-x1") -> str:
    """Upload gzip JSON lines the way the agent's shipper names them; returns the object name."""
    name = shipped.object_name(prefix, pod, stem(first))
    bucket.blob(name).upload_from_string(gzip.compress(b"".join(lines), mtime=0), content_type="application/gzip")
    return name


def answer(request_id: str, at: float, rows: Sequence[Sequence[float]], classes: Sequence[str],
           version: str | None = "20261201T000000000000Z") -> bytes:  # fmt: skip
    probabilities = [[1.0 if c == k else 0.0 for k in CLASSES] for c in classes]
    return record.to_line(record.Answer(request_id, at, "v2", version, list(rows), list(classes), probabilities))


def refusal(request_id: str, at: float) -> bytes:
    return record.to_line(record.Refusal(request_id, at, "predict", "petal_length: expected a number", 400, None))


def feedback(request_id: str, row: int, label: str, at: float) -> bytes:
    """A feedback line as the predictor writes it."""
    return record.to_line(record.Feedback(request_id, row, label, at))


def read_json(bucket: storage.Bucket, name: str) -> Any:
    blob = bucket.get_blob(name)
    assert blob is not None, name
    return json.loads(blob.download_as_bytes())


def names(bucket: storage.Bucket, prefix: str) -> list[str]:
    return sorted(b.name for b in bucket.list_blobs(prefix=prefix))
