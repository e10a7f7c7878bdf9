"""One prediction log record and its JSON-lines form.

A record is one request, answered or refused, under the request's id (predictor.predlog.ids):

- an ``answer``: time, model version, route, the features of every instance (rows in core.schema.FEATURES order),
  the predicted class of each and its probabilities (in core.schema.CLASSES order, the model's class order);
- a ``refusal``: time, route, the reason and HTTP status, and the version serving then, WITHOUT the features (a
  refused body is not data we keep, and may be anything).

A batch request is one record, so feedback names a prediction by (id, row index). The request path builds the
record from what it already holds (NumPy arrays are fine: serialising happens in the writer thread, so the caller
must not modify them afterwards); `to_line` and `from_line` are the file format, one JSON object per line::

    {"schema":1,"kind":"answer","id":"...","time":"2026-12-04T22:10:00.123456Z","version":"2026...Z",
     "route":"v2","features":[[5.1,3.5,1.4,0.2]],"classes":["setosa"],"probabilities":[[0.98,0.02,0.0]]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SCHEMA = 1
"""Format version written in every line; a reader refuses lines of a newer one."""
REASON_MAX_CHARS = 1000
"""A refusal's reason is cut to this length (it may quote the request)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A prediction served: `features`, `classes` and `probabilities` have one entry per instance."""

    id: str
    time: float
    """Seconds since the epoch (time.time())."""
    route: str
    version: str | None
    features: Any
    classes: Any
    probabilities: Any


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused (bad input, no model, too large...): no features."""

    id: str
    time: float
    route: str
    reason: str
    status: int | None = None
    version: str | None = None


Record = Answer | Refusal


def _plain(value: Any) -> Any:
    """JSON for NumPy arrays and scalars (their tolist())."""
    tolist = getattr(value, "tolist", None)
    if tolist is None:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return tolist()


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day(seconds: float) -> str:
    """The UTC date of a moment, YYYY-MM-DD: the partition a record ships under."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


def to_line(record: Record) -> bytes:
    """The record as one line of JSON, newline included."""
    head: dict[str, Any] = {"schema": SCHEMA}
    if isinstance(record, Answer):
        head.update(
            kind="answer", id=record.id, time=iso_time(record.time), version=record.version, route=record.route,
            features=record.features, classes=record.classes, probabilities=record.probabilities,
        )  # fmt: skip
    else:
        head.update(
            kind="refusal", id=record.id, time=iso_time(record.time), version=record.version, route=record.route,
            reason=record.reason[:REASON_MAX_CHARS], status=record.status,
        )  # fmt: skip
    return json.dumps(head, default=_plain, separators=(",", ":")).encode() + b"\n"


def from_line(line: bytes | str) -> Record:
    """A record read back (lists instead of arrays); ValueError for a line that is not one."""
    try:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, this reader knows {SCHEMA}")
        moment = datetime.strptime(data["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
        if data["kind"] == "answer":
            return Answer(
                data["id"], moment, data["route"], data["version"], data["features"], data["classes"],
                data["probabilities"],
            )  # fmt: skip
        if data["kind"] == "refusal":
            return Refusal(data["id"], moment, data["route"], data["reason"], data["status"], data["version"])
        raise ValueError(f"unknown kind {data['kind']!r}")
    except (KeyError, TypeError) as e:
        raise ValueError(f"not a prediction log record: {e!r}") from e
