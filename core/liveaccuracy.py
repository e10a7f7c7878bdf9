"""The live accuracy document: how each model version did on real traffic, from the labels people sent back.

The trainer's feedback joiner writes it to ``feedback/accuracy.json`` (``OBJECT``); every predictor pod's model agent
reads it (predictor.agent.accuracy), hands it to the pod's serving processes and exports its figures to Prometheus.
One JSON object::

    {"schema": 1, "updated": "<iso>",
     "versions": {"<model version>": {"correct": 41, "total": 45,
                                      "series": [{"time": "<iso>", "correct": 41, "total": 45}],
                                      "offline": {"accuracy": 0.97, "evaluation": 0.96, "accuracy_floor": 0.9}}}}

``series`` holds the cumulative counts after each joiner pass that changed them, oldest first (at most
``SERIES_MAX`` points, thinned evenly); ``offline`` the version's figures from its signed lineage (held-out
``metrics.accuracy``, the trusted evaluation set's ``evaluation.accuracy``, the gate's ``metrics.accuracy_floor``), a
key absent when unknown.

The models here validate a document straight from its JSON bytes (bounded: ``MAX_BYTES``, ``MAX_VERSIONS``,
``SERIES_MAX``) and are the OpenAPI document's schemas of it (predictor.http.responses). Pydantic only.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, ConfigDict, Field, StrictInt, StringConstraints, TypeAdapter, with_config
from typing_extensions import TypedDict

OBJECT = "feedback/accuracy.json"
"""Where the document lives in the bucket."""
MAX_BYTES = 1024 * 1024
"""Largest document read: ~80 versions with full series fit."""
MAX_VERSIONS = 1000
"""Most versions one document may hold."""
SERIES_MAX = 200
"""Most points of one version's series."""


def _aware_time(value: str) -> str:
    """An ISO 8601 date and time with its offset (`Z` for UTC), as written."""
    if not value[:1].isdigit() or datetime.fromisoformat(value).tzinfo is None:
        raise ValueError("an ISO 8601 time with an offset (e.g. 2026-12-05T01:30:00.123456Z) expected")
    return value


Version = Annotated[str, StringConstraints(pattern=r"^\d{8}T\d{12}Z$")]
Time = Annotated[
    str, StringConstraints(max_length=40), AfterValidator(_aware_time), Field(json_schema_extra={"format": "date-time"})
]
Count = Annotated[StrictInt, Field(ge=0)]
Share = Annotated[float, Field(ge=0, le=1)]


@with_config(ConfigDict(extra="ignore"))
class AccuracyPoint(TypedDict):
    """Cumulative counts after one joiner pass."""

    time: Time
    correct: Count
    total: Count


@with_config(ConfigDict(extra="ignore"))
class OfflineAccuracy(TypedDict):
    """The version's figures from its signed lineage, each absent when unknown."""

    accuracy: NotRequired[Annotated[Share, Field(description="On the held-out rows (lineage `metrics.accuracy`).")]]
    evaluation: NotRequired[
        Annotated[Share, Field(description="On the trusted evaluation set (lineage `evaluation.accuracy`).")]
    ]
    accuracy_floor: NotRequired[
        Annotated[Share, Field(description="The floor its quality gate held it to (`metrics.accuracy_floor`).")]
    ]


@with_config(ConfigDict(extra="ignore"))
class VersionAccuracy(TypedDict):
    """One model version: answers confirmed correct by feedback out of all answers that got feedback."""

    correct: Annotated[Count, Field(description="Answers confirmed correct by feedback.")]
    total: Annotated[Count, Field(description="Answers that got feedback.")]
    series: Annotated[
        list[AccuracyPoint],
        Field(max_length=SERIES_MAX, description="The counts after each joiner pass that changed them, oldest first."),
    ]
    offline: NotRequired[OfflineAccuracy]


@with_config(ConfigDict(extra="ignore"))
class AccuracyDocument(TypedDict):
    """``feedback/accuracy.json``: live accuracy per model version."""

    schema: Literal[1]
    updated: Annotated[Time, Field(description="When the trainer's feedback joiner last wrote it.")]
    versions: Annotated[
        dict[Version, VersionAccuracy],
        Field(max_length=MAX_VERSIONS, description="By model version (`YYYYMMDDTHHMMSSffffffZ`)."),
    ]


@functools.cache
def adapter() -> TypeAdapter[AccuracyDocument]:
    return TypeAdapter(AccuracyDocument)


def parse(data: bytes) -> AccuracyDocument:
    """The document in `data`, checked; ValueError (pydantic's ValidationError is one) naming what is wrong."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"live accuracy document of {len(data)} bytes, over {MAX_BYTES}")
    document = adapter().validate_json(data)
    for version, figures in document["versions"].items():
        for counts in (figures, *figures["series"]):
            if counts["correct"] > counts["total"]:
                raise ValueError(f"versions.{version}: correct {counts['correct']} > total {counts['total']}")
    return document


def dump(document: AccuracyDocument) -> bytes:
    """The checked document as JSON (what parse reads back)."""
    return adapter().dump_json(document)


def accuracy(figures: VersionAccuracy) -> float | None:
    """correct / total, None without any feedback."""
    return figures["correct"] / figures["total"] if figures["total"] else None


def newest(document: AccuracyDocument, count: int) -> list[str]:
    """The `count` newest versions of the document, newest first (versions sort by their time)."""
    return sorted(document["versions"], reverse=True)[:count]


def as_json(document: AccuracyDocument) -> dict[str, Any]:
    """The document as plain JSON values."""
    return adapter().dump_python(document, mode="json")
