"""GCS Pub/Sub notifications: the one reading of their attributes every consumer shares.

A notification names the bucket, object, generation and event type in its attributes (`bucketId`, `objectId`,
`objectGeneration`, `eventType`); with `payloadFormat=JSON_API_V1` its data is the object resource. The predictor
(model artifacts under models/), the trainer's watcher (CSVs under data/) and the local bridge (uploads under
incoming/) all read it here, with one strictness: every required attribute present, the generation an ASCII positive
int64, and only an OBJECT_FINALIZE of our bucket under the wanted prefix is an event; anything else is None.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from core import layout

log = logging.getLogger(__name__)

FINALIZE = "OBJECT_FINALIZE"
MAX_GENERATION = 2**63 - 1
"""GCS object generations are positive 64-bit integers."""
REQUIRED_ATTRIBUTES = ("bucketId", "objectId", "objectGeneration", "eventType")


class Malformed(ValueError):
    """A message whose attributes cannot be a GCS notification."""


@dataclass(frozen=True)
class Finalized:
    """One object generation written to the bucket, from an OBJECT_FINALIZE notification."""

    bucket: str
    name: str
    generation: int

    @property
    def key(self) -> tuple[str, str, int]:
        return self.bucket, self.name, self.generation

    @property
    def ref(self) -> str:
        """`name#generation`, how lineage records a data object."""
        return f"{self.name}#{self.generation}"


@dataclass(frozen=True)
class ModelEvent(Finalized):
    """A new model artifact object, and when it was finalized (else when the notification was published)."""

    finalized_at: datetime | None


def finalized(attributes: Mapping[str, str], bucket: str, prefix: str) -> Finalized | None:
    """The object finalized in `bucket` under `prefix`; None for any other event, bucket or name; Malformed if
    the attributes cannot be a GCS notification (checked before anything else, so no garbage passes as 'other')."""
    # .get, never [...]: a protobuf map (Message.attributes) answers "" for a missing key
    bucket_id, name, generation, event_type = (attributes.get(key) or "" for key in REQUIRED_ATTRIBUTES)
    missing = [key for key in REQUIRED_ATTRIBUTES if not attributes.get(key)]
    if missing:
        raise Malformed(f"missing attributes {missing}")
    # isdigit() alone accepts "²" (int() fails) and numbers GCS refuses: a generation is a positive int64
    if not (generation.isascii() and generation.isdigit()) or not 0 < int(generation) <= MAX_GENERATION:
        raise Malformed(f"objectGeneration {generation[:40]!r} is not a GCS generation")
    if event_type != FINALIZE or bucket_id != bucket or not name.startswith(prefix):
        return None
    return Finalized(bucket_id, name, int(generation))


def model_event(
    attributes: Mapping[str, str], data: bytes, publish_time: datetime | None, bucket: str
) -> ModelEvent | None:
    """The new artifact `models/model-<version>.pkl` of `bucket` in a notification, None for anything else."""
    obj = finalized(attributes, bucket, layout.MODELS)
    if obj is None or layout.model_version(obj.name) is None:
        return None
    stamp = finalized_at(data) if attributes.get("payloadFormat") == "JSON_API_V1" else None
    return ModelEvent(obj.bucket, obj.name, obj.generation, stamp or publish_time)


def data_object(attributes: Mapping[str, str], bucket: str) -> Finalized | None:
    """A training CSV finalized under data/ of `bucket`, None for anything else."""
    obj = finalized(attributes, bucket, layout.DATA)
    return obj if obj is not None and obj.name.lower().endswith(".csv") else None


def finalized_at(data: bytes) -> datetime | None:
    """timeCreated (else updated) of the object resource in a notification's JSON payload, if readable."""
    try:
        resource = json.loads(data)
        stamp = resource.get("timeCreated") or resource.get("updated")
        moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except (ValueError, AttributeError, UnicodeDecodeError):
        log.warning("notification payload is not an object resource; using the publish time")
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC) if moment else None
