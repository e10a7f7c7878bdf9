"""core.notifications: one reading of GCS notifications for the predictor, the watcher and the local bridge."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core import layout
from core.notifications import Finalized, Malformed, ModelEvent, data_object, finalized, model_event

BUCKET = "iris-models"
NAME = "models/model-20260101T000000000000Z.pkl"
PUBLISHED = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)


def attributes(**extra: str) -> dict[str, str]:
    base = {
        "bucketId": BUCKET,
        "objectId": NAME,
        "objectGeneration": "1767225600123456",
        "eventType": "OBJECT_FINALIZE",
        "payloadFormat": "JSON_API_V1",
    }
    return base | extra


def test_a_model_event_carries_the_artifact_and_its_creation_time() -> None:
    data = json.dumps({"timeCreated": "2026-01-01T00:00:01.250Z", "updated": "2026-01-01T00:00:02Z"}).encode()
    event = model_event(attributes(), data, PUBLISHED, BUCKET)
    assert event == ModelEvent(BUCKET, NAME, 1767225600123456, datetime(2026, 1, 1, 0, 0, 1, 250000, tzinfo=UTC))
    assert event.key == (BUCKET, NAME, 1767225600123456)


@pytest.mark.parametrize(
    ("data", "payload_format"),
    [(b"", "NONE"), (b"\xff not json", "JSON_API_V1"), (b"[1]", "JSON_API_V1"), (b'{"updated": 5}', "JSON_API_V1")],
)
def test_a_model_event_falls_back_to_the_publish_time(data: bytes, payload_format: str) -> None:
    event = model_event(attributes(payloadFormat=payload_format), data, PUBLISHED, BUCKET)
    assert event is not None
    assert event.finalized_at == PUBLISHED


def test_a_model_event_uses_updated_and_assumes_utc_for_naive_stamps() -> None:
    event = model_event(attributes(), b'{"updated": "2026-01-01T00:00:03"}', PUBLISHED, BUCKET)
    assert event is not None
    assert event.finalized_at == datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    "extra",
    [
        {"eventType": "OBJECT_DELETE"},
        {"eventType": "OBJECT_METADATA_UPDATE"},
        {"bucketId": "another-bucket"},
        {"objectId": "data/iris.csv"},
        {"objectId": "models/claims/20260101.json"},
        {"objectId": "models/model-latest.pkl"},
        {"objectId": "models/model-20260101T000000000000Z.pkl.tmp"},
    ],
)
def test_other_events_buckets_and_objects_are_no_model_event(extra: dict[str, str]) -> None:
    assert model_event(attributes(**extra), b"{}", PUBLISHED, BUCKET) is None


MALFORMED = [
    {},
    {k: v for k, v in attributes().items() if k != "objectGeneration"},
    {k: v for k, v in attributes().items() if k != "eventType"},
    attributes(objectGeneration=""),
    attributes(objectGeneration="12ab"),
    attributes(objectGeneration="-1"),
    attributes(objectGeneration="0"),
    attributes(objectGeneration="²"),
    attributes(objectGeneration="١٢"),  # Arabic-Indic digits: isdigit() and int() accept them, GCS does not
    attributes(objectGeneration=str(2**63)),
    attributes(objectId=""),
]


@pytest.mark.parametrize("attrs", MALFORMED)
@pytest.mark.parametrize("prefix", [layout.MODELS, layout.DATA, layout.INCOMING])
def test_malformed_attributes_are_refused_whatever_the_prefix(attrs: dict[str, str], prefix: str) -> None:
    with pytest.raises(Malformed):
        finalized(attrs, BUCKET, prefix)


@pytest.mark.parametrize("attrs", MALFORMED)
def test_malformed_attributes_are_refused_by_every_reader(attrs: dict[str, str]) -> None:
    with pytest.raises(Malformed):
        model_event(attrs, b"\x00", PUBLISHED, BUCKET)
    with pytest.raises(Malformed):
        data_object(attrs | ({"objectId": "data/a.csv"} if attrs.get("objectId") else {}), BUCKET)


def test_a_malformed_generation_is_refused_even_for_another_bucket() -> None:
    with pytest.raises(Malformed):
        finalized(attributes(bucketId="another-bucket", objectGeneration="x"), BUCKET, layout.MODELS)


def test_the_largest_generation_is_accepted() -> None:
    obj = finalized(attributes(objectGeneration=str(2**63 - 1)), BUCKET, layout.MODELS)
    assert obj == Finalized(BUCKET, NAME, 2**63 - 1)


def finalize(name: str, bucket: str = BUCKET, event: str = "OBJECT_FINALIZE") -> dict[str, str]:
    return {"bucketId": bucket, "objectId": name, "objectGeneration": "7", "eventType": event}


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (finalize("data/a.csv"), "data/a.csv#7"),
        (finalize("data/sub/B.CSV"), "data/sub/B.CSV#7"),
        (finalize("data/a.csv", bucket="other"), None),
        (finalize("data/a.csv", event="OBJECT_DELETE"), None),
        (finalize("incoming/a.csv"), None),
        (finalize(NAME), None),
        (finalize("data/notes.txt"), None),
    ],
)
def test_only_csvs_finalized_under_data_of_our_bucket_are_data_objects(
    attrs: dict[str, str], expected: str | None
) -> None:
    obj = data_object(attrs, BUCKET)
    assert (obj.ref if obj else None) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("incoming/a.csv", True), ("incoming/", True), ("data/a.csv", False), ("quarantine/incoming/a.csv", False)],
)
def test_finalized_filters_on_the_prefix(name: str, expected: bool) -> None:
    obj = finalized(finalize(name), BUCKET, layout.INCOMING)
    assert (obj == Finalized(BUCKET, name, 7)) if expected else obj is None
