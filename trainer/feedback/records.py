"""What the joiner reads: the predictors' feedback records and prediction log records.

Both are gzip JSON lines shipped by a predictor pod's agent (core.shipped: the file names, schema, kinds and times
both sides share). A feedback line names a prediction by its request id and the row within that request's batch::

    {"schema":1,"kind":"feedback","id":"...","row":0,"label":"virginica","time":"2026-12-05T01:30:00.123456Z"}

A prediction line is an ``answer`` (version, features, classes, ...) or a ``refusal`` (no features). This module
reads only the fields the joiner needs and refuses anything else line by line (the trainer's image holds core/ and
trainer/ only: nothing of predictor/).
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from core.iris import CLASSES, FEATURES, check_measurement
from core.shipped import SCHEMA, Kind, iso_time, parse_time

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Most bytes a shipped file may inflate to (a spool file rotates at 4 MiB by default); a larger one is skipped."""


class Outcome(StrEnum):
    """What the joiner decided for one feedback item (the `outcome` label of trainer_feedback_items_total)."""

    JOINED = "joined"
    """Features from the prediction log, label from the feedback: a training row."""
    UNKNOWN = "unknown"
    """No prediction with this id was found FEEDBACK_JOIN_WAIT seconds after the feedback was received."""
    DUPLICATE = "duplicate"
    """This (id, row) was joined before, in an earlier pass or earlier in this one: the first label wins."""
    LATE = "late"
    """The prediction was older than FEEDBACK_MAX_AGE when the feedback was received."""
    BAD_ROW = "bad_row"
    """The row index is beyond the prediction's batch."""
    REFUSED = "refused"
    """The id's record is a refusal: there are no features to learn from."""
    INVALID = "invalid"
    """A line that is not a feedback record, or features a training CSV would not accept."""


def inflate(data: bytes, limit: int = MAX_FILE_BYTES) -> bytes:
    """A shipped file's JSON lines; ValueError when it is not gzip or inflates beyond `limit` bytes."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            lines = stream.read(limit + 1)
    except (OSError, EOFError) as e:
        raise ValueError(f"not a gzip file: {e}") from e
    if len(lines) > limit:
        raise ValueError(f"inflates beyond {limit} bytes")
    return lines


@dataclass(frozen=True)
class Feedback:
    """One labelled prediction row, as the predictor accepted it, and the object it came in."""

    id: str
    row: int
    label: str
    time: float
    source: str
    arrived: float = 0.0
    """When its object reached the bucket (its spool file may have waited out an outage); 0 when unknown."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.row)

    def waited(self, now: float) -> float:
        """Seconds its prediction had to arrive: since the feedback was received, or since it reached the bucket if
        that was later (the prediction's own file may still be waiting in a spool too)."""
        return now - max(self.time, self.arrived)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "row": self.row, "label": self.label, "time": iso_time(self.time), "source": self.source,
                "arrived": iso_time(self.arrived)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> Feedback:
        """A feedback record (a line's object, or a ledger's pending item); ValueError when it is not one."""
        request_id, row, label = data.get("id"), data.get("row"), data.get("label")
        if not isinstance(request_id, str) or not request_id:
            raise ValueError("id is not a non-empty string")
        if type(row) is not int or row < 0:
            raise ValueError("row is not a non-negative integer")
        if label not in CLASSES:
            raise ValueError(f"label {label!r} is not one of {', '.join(CLASSES)}")
        arrived = parse_time(data["arrived"]) if "arrived" in data else 0.0
        return cls(request_id, row, label, parse_time(data.get("time")), source or str(data.get("source", "")), arrived)


def feedback_lines(lines: bytes, source: str, arrived: float = 0.0) -> tuple[list[Feedback], int]:
    """The feedback records of one shipped file's JSON lines (inflated), and how many lines were not one."""
    items, invalid = [], 0
    for line in lines.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or record.get("schema") != SCHEMA or record.get("kind") != Kind.FEEDBACK:
                raise ValueError("not a feedback record of schema 1")
            items.append(replace(Feedback.from_dict(record, source), arrived=arrived))
        except ValueError:
            invalid += 1
    return items, invalid


@dataclass(frozen=True)
class Prediction:
    """The fields of one prediction log record the joiner needs (a refusal has no features or classes)."""

    id: str
    time: float
    refused: bool
    version: str | None
    features: list[Any]
    classes: list[Any]

    def row(self, index: int) -> tuple[list[float], str] | None:
        """Row `index`'s measurements and predicted class, if they make a valid training row."""
        values, predicted = self.features[index], self.classes[index] if index < len(self.classes) else None
        if not isinstance(values, list) or len(values) != len(FEATURES) or predicted not in CLASSES:
            return None
        if not all(type(v) in (int, float) and check_measurement(float(v)) is None for v in values):
            return None
        return [float(v) for v in values], str(predicted)


def prediction_index(lines: bytes) -> dict[str, list[Prediction]]:
    """The records of one shipped prediction log file's JSON lines (inflated) by request id (a client may reuse an
    id), unreadable lines skipped."""
    index: dict[str, list[Prediction]] = {}
    for line in lines.splitlines():
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or record.get("schema") != SCHEMA:
                continue
            kind, request_id = record.get("kind"), record.get("id")
            if kind not in (Kind.ANSWER, Kind.REFUSAL) or not isinstance(request_id, str):
                continue
            features = record.get("features") if kind == Kind.ANSWER else []
            classes = record.get("classes") if kind == Kind.ANSWER else []
            if not isinstance(features, list) or not isinstance(classes, list):
                continue
            version = record.get("version")
            prediction = Prediction(
                request_id, parse_time(record.get("time")), kind == Kind.REFUSAL,
                version if isinstance(version, str) else None, features, classes,
            )  # fmt: skip
        except ValueError:
            continue
        index.setdefault(request_id, []).append(prediction)
    return index
