"""Helpers of the feedback joiner tests: prediction log and feedback objects written as a predictor pod ships them."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from google.cloud import storage

from core.iris import CLASSES
from predictor.predlog import record
from predictor.predlog.shipper import object_name

PREDICTIONS, FEEDBACK = "predictions/", "feedback/"
_sequence = itertools.count()


def uuid7(seconds: float) -> str:
    """A generated request id (UUIDv7, 32 hex digits) issued at `seconds`, as predictor.predlog.ids makes them."""
    value = (int(seconds * 1000) & (1 << 48) - 1) << 80 | int.from_bytes(os.urandom(10))
    value = value & ~(0xF << 76) | 0x7 << 76
    return f"{value & ~(0x3 << 62) | 0x2 << 62:032x}"


def stem(first: float) -> str:
    """A spool file stem whose first record is at `first`."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(first))}-{os.urandom(6).hex()}-{next(_sequence):06d}"


def ship(bucket: storage.Bucket, prefix: str, lines: Sequence[bytes], first: float, pod: str = "iris-7d9f-x1") -> str:
    """Upload gzip JSON lines the way the agent's shipper names them; returns the object name."""
    name = object_name(prefix, pod, stem(first))
    bucket.blob(name).upload_from_string(gzip.compress(b"".join(lines), mtime=0), content_type="application/gzip")
    return name


def answer(request_id: str, at: float, rows: Sequence[Sequence[float]], classes: Sequence[str],
           version: str | None = "20261201T000000000000Z") -> bytes:  # fmt: skip
    probabilities = [[1.0 if c == k else 0.0 for k in CLASSES] for c in classes]
    return record.to_line(record.Answer(request_id, at, "v2", version, list(rows), list(classes), probabilities))


def refusal(request_id: str, at: float) -> bytes:
    return record.to_line(record.Refusal(request_id, at, "predict", "petal_length: expected a number", 400, None))


def feedback(request_id: str, row: int, label: str, at: float) -> bytes:
    """A feedback line as RULES' contract 1 gives it (the predictor's `iso_time` for the time)."""
    line = {"schema": 1, "kind": "feedback", "id": request_id, "row": row, "label": label,
            "time": record.iso_time(at)}  # fmt: skip
    return json.dumps(line, separators=(",", ":")).encode() + b"\n"


def read_json(bucket: storage.Bucket, name: str) -> Any:
    blob = bucket.get_blob(name)
    assert blob is not None, name
    return json.loads(blob.download_as_bytes())


def names(bucket: storage.Bucket, prefix: str) -> list[str]:
    return sorted(b.name for b in bucket.list_blobs(prefix=prefix))
