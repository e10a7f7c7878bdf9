"""The live accuracy document: how each model version did on real traffic, from the labels people sent back.

The trainer's feedback joiner writes it to ``<FEEDBACK_LOG_PREFIX>accuracy.json`` (``object_name``), signed; every
predictor pod's model agent reads it (predictor.agent.accuracy), verifies it, hands it to the pod's serving processes
and exports its figures to Prometheus. One JSON object::

    {"schema": 1, "updated": "<iso>",
     "versions": {"<model version>": {"correct": 41, "total": 45,
                                      "series": [{"time": "<iso>", "correct": 41, "total": 45}],
                                      "offline": {"accuracy": 0.97, "evaluation": 0.96, "accuracy_floor": 0.9}}}}

``series`` holds the cumulative counts after each joiner pass that changed them, oldest first (at most
``SERIES_MAX`` points, thinned evenly); ``offline`` the version's figures from its signed lineage (held-out
``metrics.accuracy``, the trusted evaluation set's ``evaluation.accuracy``, the gate's ``metrics.accuracy_floor``), a
key absent when unknown.

The signature is the object's metadata, as a model artifact's is: ``sha256`` of the bytes and ``key_id`` signed under
``PURPOSE`` (so no other signature of the trainer's verifies as one), ``signature`` beside them. Readers refuse an
unsigned document or one no trusted key signed (``verify``); the agent also refuses one older than the one it holds.

The models here validate a document straight from its JSON bytes (bounded: ``MAX_BYTES``, ``MAX_VERSIONS``,
``SERIES_MAX``) and are the OpenAPI document's schemas of it (predictor.http.responses). Pydantic only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, ConfigDict, Field, StrictInt, StringConstraints, TypeAdapter, with_config
from typing_extensions import TypedDict

from core import signing
from core.errors import ArtifactRejected
from core.states import RejectReason

if TYPE_CHECKING:
    from google.cloud import storage

NAME = "accuracy.json"
"""The document's name under FEEDBACK_LOG_PREFIX."""
PURPOSE = "iris-live-accuracy/v1"
"""Bound into every document's signature."""
SIGNED_FIELDS = ("sha256", "key_id")
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
    """``<FEEDBACK_LOG_PREFIX>accuracy.json``: live accuracy per model version."""

    schema: Literal[1]
    updated: Annotated[Time, Field(description="When the trainer's feedback joiner last wrote it.")]
    versions: Annotated[
        dict[Version, VersionAccuracy],
        Field(max_length=MAX_VERSIONS, description="By model version (`YYYYMMDDTHHMMSSffffffZ`)."),
    ]


def object_name(prefix: str) -> str:
    """Where the document lives in the bucket, under FEEDBACK_LOG_PREFIX `prefix`."""
    return f"{prefix}{NAME}"


def signed_metadata(data: bytes, keyring: signing.Keyring) -> dict[str, str]:
    """The object metadata that signs `data` as a live accuracy document with the keyring's signing key."""
    if keyring.signer is None:
        raise RuntimeError("signing the live accuracy document needs the signing key")
    fields = {"sha256": signing.sha256_hex(data), "key_id": keyring.signer.key_id}
    return fields | {"signature": keyring.sign(fields, PURPOSE)}


def write(
    bucket: storage.Bucket,
    prefix: str,
    body: bytes,
    keyring: signing.Keyring,
    retry: Any = None,
    if_generation_match: int | None = None,
) -> None:
    """Upload `body` as the document under `prefix`, signed (create-only with `if_generation_match` 0)."""
    from core import gcs

    blob = bucket.blob(object_name(prefix))
    blob.metadata = signed_metadata(body, keyring)
    gcs.call(retry, blob.upload_from_string, body, "application/json", if_generation_match=if_generation_match)


def verify(data: bytes, metadata: Mapping[str, str] | None, keyring: signing.Keyring, name: str = NAME) -> None:
    """Nothing if a trusted key signed exactly `data` as a live accuracy document; ArtifactRejected saying why not."""
    metadata = metadata or {}
    signature = metadata.get("signature", "")
    if not signature:
        raise ArtifactRejected(RejectReason.UNSIGNED, "no signature in its metadata", name)
    fields = {field: metadata.get(field, "") for field in SIGNED_FIELDS}
    if fields["key_id"] not in keyring.trusted:
        raise ArtifactRejected(RejectReason.UNKNOWN_KEY, f"signed by {fields['key_id']!r}, not a trusted key", name)
    if not keyring.verify(fields["key_id"], fields, signature, PURPOSE):
        raise ArtifactRejected(RejectReason.BAD_SIGNATURE, "signature does not cover this document's metadata", name)
    if signing.sha256_hex(data) != fields["sha256"]:
        raise ArtifactRejected(RejectReason.HASH_MISMATCH, "content does not match its signed SHA-256", name)


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
