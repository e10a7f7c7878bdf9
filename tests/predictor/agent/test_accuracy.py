"""predictor.agent.accuracy on fake-gcs-server: the live accuracy document read from the bucket, its gauges, its
handover copy; a missing, unchanged, malformed, unsigned, forged or replayed document."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
from google.api_core.retry import Retry
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY
from prometheus_client import CollectorRegistry
from sklearn.pipeline import Pipeline

from core import liveaccuracy, signing
from core.store import LoadedModel
from predictor.agent.accuracy import EXPORTED_VERSIONS, LiveAccuracy
from predictor.lifecycle import handover
from predictor.settings import PredictorSettings
from tests import keys
from tests.predictor.conftest import installed

pytestmark = pytest.mark.integration

RETRY: Retry = DEFAULT_RETRY.with_timeout(5.0).with_delay(initial=0.1, maximum=0.5)
OLD, NEW = "20261201T000000000000Z", "20261204T000000000000Z"
UPDATED = "2026-12-05T01:30:00.123456Z"


def document(**versions: dict[str, Any]) -> dict[str, Any]:
    return {"schema": 1, "updated": UPDATED, "versions": versions}


def figures(correct: int, total: int, **offline: float) -> dict[str, Any]:
    entry: dict[str, Any] = {"correct": correct, "total": total,
                             "series": [{"time": UPDATED, "correct": correct, "total": total}]}  # fmt: skip
    if offline:
        entry["offline"] = offline
    return entry


def upload(bucket: storage.Bucket, data: bytes | dict[str, Any]) -> None:
    body = json.dumps(data).encode() if isinstance(data, dict) else data
    liveaccuracy.write(bucket, "feedback/", body, keys.KEYRING)


def sample(registry: CollectorRegistry, name: str, version: str) -> float | None:
    return registry.get_sample_value(name, {"version": version})


def serving(fitted_model: Pipeline, version: str, floor: float | None = None) -> LoadedModel:
    loaded = installed(fitted_model, version)
    if floor is None:
        return loaded
    lineage = dataclasses.replace(loaded.lineage, metrics={**loaded.lineage.metrics, "accuracy_floor": floor})
    return dataclasses.replace(loaded, lineage=lineage)


@pytest.fixture
def bucket(storage_client: storage.Client, bucket_name: str) -> storage.Bucket:
    return storage_client.bucket(bucket_name)


@pytest.fixture
def settings() -> PredictorSettings:
    return PredictorSettings.model_validate({**keys.settings(), "live_accuracy_min_rows": 20})


def test_missing_then_appearing_document(
    tmp_path: Path, bucket: storage.Bucket, settings: PredictorSettings, fitted_model: Pipeline
) -> None:
    registry = CollectorRegistry()
    reader = LiveAccuracy(settings, bucket, registry, tmp_path, RETRY)
    reader.use(serving(fitted_model, NEW))
    assert reader.run_once() is False  # no feedback yet
    assert reader.document is None
    assert reader.downloads == 0
    assert handover.read_live_accuracy(tmp_path) is None
    assert sample(registry, "predictor_live_accuracy", NEW) is None

    upload(bucket, document(**{NEW: figures(41, 45, accuracy=0.97, accuracy_floor=0.9), OLD: figures(3, 4)}))
    assert reader.run_once() is True
    assert sample(registry, "predictor_live_accuracy", NEW) == pytest.approx(41 / 45)
    assert sample(registry, "predictor_live_accuracy_rows", NEW) == 45
    assert sample(registry, "predictor_model_accuracy_floor", NEW) == 0.9  # the document's: the lineage has none
    handed = handover.read_live_accuracy(tmp_path)
    assert handed is not None
    assert liveaccuracy.parse(handed)["versions"][NEW]["offline"] == {"accuracy": 0.97, "accuracy_floor": 0.9}


def test_an_unchanged_document_is_not_downloaded_again(
    tmp_path: Path, bucket: storage.Bucket, settings: PredictorSettings
) -> None:
    reader = LiveAccuracy(settings, bucket, CollectorRegistry(), tmp_path, RETRY)
    upload(bucket, document(**{NEW: figures(20, 25)}))
    assert reader.run_once() is True
    assert (reader.run_once(), reader.run_once()) == (False, False)
    assert reader.downloads == 1
    upload(bucket, document(**{NEW: figures(30, 35)}))  # a new generation
    assert reader.run_once() is True
    assert reader.downloads == 2
    assert reader.document is not None
    assert reader.document["versions"][NEW]["total"] == 35


@pytest.mark.parametrize(
    "bad",
    [
        b"{not json",
        json.dumps(document(**{NEW: figures(50, 45)})).encode(),  # more correct than answered
        json.dumps({**document(**{NEW: figures(1, 2)}), "schema": 2}).encode(),
        json.dumps(document(**{"v1": figures(1, 2)})).encode(),  # not a model version
        json.dumps(document(**{NEW: {**figures(1, 2), "series": [figures(1, 2)["series"][0]] * 201}})).encode(),
        b" " * (liveaccuracy.MAX_BYTES + 1),
    ],
    ids=["not-json", "correct-over-total", "unknown-schema", "bad-version", "long-series", "too-large"],
)
def test_a_malformed_document_keeps_the_last_good_one(
    tmp_path: Path, bucket: storage.Bucket, settings: PredictorSettings, bad: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    reader = LiveAccuracy(settings, bucket, registry, tmp_path, RETRY)
    upload(bucket, document(**{NEW: figures(40, 50)}))
    assert reader.run_once() is True
    good = handover.read_live_accuracy(tmp_path)
    upload(bucket, bad)
    with caplog.at_level(logging.WARNING, logger="predictor.agent.accuracy"):
        assert reader.run_once() is False
    assert "live accuracy document refused" in caplog.text
    assert registry.get_sample_value("predictor_live_accuracy_refused_total", {"reason": "invalid"}) == 1
    assert sample(registry, "predictor_live_accuracy", NEW) == pytest.approx(0.8)
    assert handover.read_live_accuracy(tmp_path) == good
    downloads = reader.downloads
    assert reader.run_once() is False  # the bad generation is not fetched again
    assert reader.downloads == downloads


def signed_otherwise(bucket: storage.Bucket, body: bytes, metadata: dict[str, str]) -> None:
    blob = bucket.blob(liveaccuracy.object_name("feedback/"))
    blob.metadata = metadata
    blob.upload_from_string(body, content_type="application/json")


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("unsigned", "unsigned"),
        ("other key", "unknown_key"),
        ("other key, our key id", "bad_signature"),
        ("signed as a model lineage", "bad_signature"),
        ("bytes changed after signing", "hash_mismatch"),
    ],
)
def test_a_document_no_trusted_key_signed_is_refused(
    tmp_path: Path, bucket: storage.Bucket, settings: PredictorSettings, how: str, reason: str
) -> None:
    registry = CollectorRegistry()
    reader = LiveAccuracy(settings, bucket, registry, tmp_path, RETRY)
    upload(bucket, document(**{NEW: figures(40, 50)}))
    assert reader.run_once() is True
    forged = json.dumps(document(**{NEW: figures(10, 50)})).encode()  # what someone with write access would claim
    ours = keys.KEYRING.signer.key_id if keys.KEYRING.signer else ""
    fields = {"sha256": signing.sha256_hex(forged), "key_id": ours}
    metadata = {
        "unsigned": {},
        "other key": liveaccuracy.signed_metadata(forged, keys.OTHER),
        "other key, our key id": liveaccuracy.signed_metadata(forged, keys.OTHER) | {"key_id": ours},
        "signed as a model lineage": fields | {"signature": keys.KEYRING.sign(fields)},
        "bytes changed after signing": liveaccuracy.signed_metadata(forged.replace(b"10", b"11"), keys.KEYRING),
    }[how]
    signed_otherwise(bucket, forged, metadata)
    assert reader.run_once() is False
    assert registry.get_sample_value("predictor_live_accuracy_refused_total", {"reason": reason}) == 1
    assert sample(registry, "predictor_live_accuracy", NEW) == pytest.approx(0.8)
    assert reader.document is not None
    assert reader.document["versions"][NEW]["correct"] == 40


def test_an_older_signed_document_is_a_replay_and_refused(
    tmp_path: Path, bucket: storage.Bucket, settings: PredictorSettings
) -> None:
    registry = CollectorRegistry()
    reader = LiveAccuracy(settings, bucket, registry, tmp_path, RETRY)
    old = json.dumps(document(**{NEW: figures(45, 50)})).encode()
    upload(bucket, {**document(**{NEW: figures(40, 60)}), "updated": "2026-12-05T02:30:00.000000Z"})
    assert reader.run_once() is True
    upload(bucket, old)  # genuinely signed, an hour older than the one held
    assert reader.run_once() is False
    assert registry.get_sample_value("predictor_live_accuracy_refused_total", {"reason": "replayed"}) == 1
    assert sample(registry, "predictor_live_accuracy_rows", NEW) == 60


def test_min_rows_gate_the_accuracy_not_the_row_count(
    tmp_path: Path, bucket: storage.Bucket, settings: PredictorSettings
) -> None:
    registry = CollectorRegistry()
    reader = LiveAccuracy(settings, bucket, registry, tmp_path, RETRY)
    upload(bucket, document(**{NEW: figures(1, 3)}))
    reader.run_once()
    assert sample(registry, "predictor_live_accuracy", NEW) is None  # 3 rows: no verdict for the alert
    assert sample(registry, "predictor_live_accuracy_rows", NEW) == 3
    upload(bucket, document(**{NEW: figures(15, 20)}))
    reader.run_once()
    assert sample(registry, "predictor_live_accuracy", NEW) == 0.75


def test_floor_of_the_serving_version_prefers_its_lineage(
    tmp_path: Path, bucket: storage.Bucket, settings: PredictorSettings, fitted_model: Pipeline
) -> None:
    registry = CollectorRegistry()
    reader = LiveAccuracy(settings, bucket, registry, tmp_path, RETRY)
    reader.use(serving(fitted_model, OLD, floor=0.93))
    assert sample(registry, "predictor_model_accuracy_floor", OLD) == 0.93  # known before any feedback
    upload(bucket, document(**{OLD: figures(30, 40, accuracy_floor=0.8), NEW: figures(30, 40, accuracy_floor=0.85)}))
    reader.run_once()
    assert sample(registry, "predictor_model_accuracy_floor", OLD) == 0.93
    assert sample(registry, "predictor_model_accuracy_floor", NEW) is None  # not serving
    reader.use(serving(fitted_model, NEW))  # no floor in its lineage: the document's
    assert sample(registry, "predictor_model_accuracy_floor", NEW) == 0.85
    floor = sample(registry, "predictor_model_accuracy_floor", OLD)
    assert floor is not None
    assert math.isnan(floor)
    reader.use(serving(fitted_model, "20261205T000000000000Z"))  # unknown anywhere
    floor = sample(registry, "predictor_model_accuracy_floor", NEW)
    assert floor is not None
    assert math.isnan(floor)
    assert sample(registry, "predictor_model_accuracy_floor", "20261205T000000000000Z") is None


def test_only_the_newest_versions_and_the_serving_one_are_exported(
    tmp_path: Path, bucket: storage.Bucket, settings: PredictorSettings, fitted_model: Pipeline
) -> None:
    registry = CollectorRegistry()
    reader = LiveAccuracy(settings, bucket, registry, tmp_path, RETRY)
    versions = [f"202612{day:02d}T000000000000Z" for day in range(1, EXPORTED_VERSIONS + 4)]
    reader.use(serving(fitted_model, versions[0]))  # pinned to the oldest
    upload(bucket, document(**{v: figures(20, 25) for v in versions}))
    reader.run_once()
    exported = {v for v in versions if sample(registry, "predictor_live_accuracy_rows", v) is not None}
    assert exported == {versions[0], *versions[-EXPORTED_VERSIONS:]}
    upload(bucket, document(**{v: figures(20, 25) for v in versions[-2:]}))
    reader.run_once()
    left = sample(registry, "predictor_live_accuracy", versions[-3])
    assert left is not None
    assert math.isnan(left)
    assert sample(registry, "predictor_live_accuracy", versions[-1]) == 0.8
