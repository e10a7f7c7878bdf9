"""One prediction log record and its JSON-lines form.

A record is one request, answered or refused, under the request's id (predictor.predlog.ids):

- an ``answer``: time, model version, route, the features of every instance (rows in core.iris.FEATURES order),
  the predicted class of each and its probabilities (in core.iris.CLASSES order, the model's class order);
- a ``refusal``: time, route, the reason and HTTP status, and the version serving then, WITHOUT the features (a
  refused body is not data we keep, and may be anything).

A batch request is one record, so feedback names a prediction by (id, row index). Feedback (predictor.predlog.feedback)
is a record of its own kind, spooled and shipped apart from the log (its own folder and prefix):

- a ``feedback``: the true class (``label``, a name of core.iris.CLASSES) of row ``row`` of the prediction ``id``,
  and when the predictor received it.

The request path builds the record from what it already holds (NumPy arrays are fine: serialising happens in the
writer thread, so the caller must not modify them afterwards). Records are plain slotted dataclasses (a frozen one
costs the request path five times as much to build); nothing changes one once it is queued. `to_line` and
`from_line` are the line format (core.shipped holds what the trainer's reader shares: schema, kinds, times, file
names), one JSON object per line::

    {"schema":1,"kind":"answer","id":"...","time":"2026-12-04T22:10:00.123456Z","version":"2026...Z",
     "route":"v2","features":[[5.1,3.5,1.4,0.2]],"classes":["setosa"],"probabilities":[[0.98,0.02,0.0]]}
    {"schema":1,"kind":"feedback","id":"...","row":0,"label":"virginica","time":"2026-12-05T01:30:00.123456Z"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.iris import CLASSES
from core.shipped import SCHEMA, Kind, iso_time, parse_time

REASON_MAX_CHARS = 1000
"""A refusal's reason is cut to this length (it may quote the request)."""


@dataclass(slots=True)
class Answer:
    """A prediction served: `features`, `classes` and `probabilities` have one entry per instance; `classes` are
    names or indices into CLASSES (written as names)."""

    id: str
    time: float
    """Seconds since the epoch (time.time())."""
    route: str
    version: str | None
    features: Any
    classes: Any
    probabilities: Any


@dataclass(slots=True)
class Refusal:
    """A request refused (bad input, no model, too large...): no features."""

    id: str
    time: float
    route: str
    reason: str
    status: int | None = None
    version: str | None = None


@dataclass(slots=True)
class Feedback:
    """The true class of one instance of a logged prediction: row `row` of the request `id`."""

    id: str
    row: int
    label: str
    """A class name of core.iris.CLASSES."""
    time: float
    """When the feedback was received (time.time())."""


Record = Answer | Refusal | Feedback


def _plain(value: Any) -> Any:
    """Lists for NumPy arrays (their tolist(), faster than json's fallback per element), anything else as it is."""
    tolist = getattr(value, "tolist", None)
    return value if tolist is None else tolist()


_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""One encoder for every line (json.dumps with separators builds a new one per call)."""


def _class_names(value: Any) -> list[Any]:
    """Class names for class ids (indices into CLASSES, as the data plane holds them); names stay names."""
    return [CLASSES[c] if type(c) is int else c for c in _plain(value)]


def to_line(record: Record) -> bytes:
    """The record as one line of JSON, newline included."""
    if isinstance(record, Answer):
        head: dict[str, Any] = {
            "schema": SCHEMA, "kind": Kind.ANSWER, "id": record.id, "time": iso_time(record.time),
            "version": record.version, "route": record.route, "features": _plain(record.features),
            "classes": _class_names(record.classes), "probabilities": _plain(record.probabilities),
        }  # fmt: skip
    elif isinstance(record, Feedback):
        head = {
            "schema": SCHEMA, "kind": Kind.FEEDBACK, "id": record.id, "row": record.row, "label": record.label,
            "time": iso_time(record.time),
        }  # fmt: skip
    else:
        head = {
            "schema": SCHEMA, "kind": Kind.REFUSAL, "id": record.id, "time": iso_time(record.time),
            "version": record.version, "route": record.route, "reason": record.reason[:REASON_MAX_CHARS],
            "status": record.status,
        }  # fmt: skip
    return _ENCODER.encode(head).encode() + b"\n"


def from_line(line: bytes | str) -> Record:
    """A record read back (lists instead of arrays); ValueError for a line that is not one."""
    try:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, this reader knows {SCHEMA}")
        moment = parse_time(data["time"])
        if data["kind"] == Kind.ANSWER:
            return Answer(
                data["id"], moment, data["route"], data["version"], data["features"], data["classes"],
                data["probabilities"],
            )  # fmt: skip
        if data["kind"] == Kind.REFUSAL:
            return Refusal(data["id"], moment, data["route"], data["reason"], data["status"], data["version"])
        if data["kind"] == Kind.FEEDBACK:
            if type(data["row"]) is not int or data["label"] not in CLASSES:
                raise ValueError(f"feedback row {data['row']!r} or label {data['label']!r} out of range")
            return Feedback(data["id"], data["row"], data["label"], moment)
        raise ValueError(f"unknown kind {data['kind']!r}")
    except (KeyError, TypeError) as e:
        raise ValueError(f"not a prediction log or feedback record: {e!r}") from e
