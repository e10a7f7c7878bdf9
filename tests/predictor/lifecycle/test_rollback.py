"""Anti-rollback: an old artifact uploaded again (older version name, new generation) neither rolls the fleet back
nor freezes it, for a running worker and for one starting cold (fake-gcs-server)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sklearn.pipeline import Pipeline

from core import layout
from core.lineage import Lineage
from core.store import ModelStore
from predictor.lifecycle.registry import Registry
from predictor.settings import PredictorSettings
from tests.keys import KEYRING
from tests.predictor.conftest import publish

pytestmark = pytest.mark.integration


def upload_again(store: ModelStore, lineage: Lineage) -> int:
    """Delete an artifact and upload its exact bytes and metadata again; returns the new generation."""
    name = layout.model_object(lineage.version)
    old = store.bucket.get_blob(name)
    data = old.download_as_bytes()
    store.bucket.delete_blob(name)
    blob = store.bucket.blob(name)
    blob.metadata = lineage.to_metadata()
    blob.upload_from_string(data, content_type="application/octet-stream", if_generation_match=0)
    assert blob.generation != old.generation
    return int(blob.generation or 0)


def test_a_reuploaded_old_artifact_does_not_roll_back_a_running_worker(
    registry: Registry, store: ModelStore, fitted_model: Pipeline
) -> None:
    old, new = publish(store, fitted_model), publish(store, fitted_model)
    assert registry.reconcile("startup").version == new.version  # type: ignore[union-attr]
    generation = upload_again(store, old)
    record = registry.offer(layout.model_object(old.version), generation, "notification")
    assert (record.outcome, record.reason) == ("ignored", "older")
    assert registry.reconcile() is None
    assert registry.version == new.version


def test_a_reuploaded_old_artifact_does_not_roll_back_a_cold_worker(
    predictor_settings: PredictorSettings, store: ModelStore, fitted_model: Pipeline
) -> None:
    old, new = publish(store, fitted_model), publish(store, fitted_model)
    upload_again(store, old)
    cold = Registry(store, predictor_settings)
    assert cold.reconcile("startup").version == new.version  # type: ignore[union-attr]


def test_a_reuploaded_serving_artifact_is_not_loaded_again(
    registry: Registry, store: ModelStore, fitted_model: Pipeline
) -> None:
    serving = publish(store, fitted_model)
    registry.reconcile("startup")
    generation = upload_again(store, serving)
    record = registry.offer(layout.model_object(serving.version), generation, "notification")
    assert (record.outcome, record.reason) == ("ignored", "already_serving")


def test_after_a_reupload_the_next_retrain_still_swaps_in(
    registry: Registry, store: ModelStore, fitted_model: Pipeline
) -> None:
    old, new = publish(store, fitted_model), publish(store, fitted_model)
    registry.reconcile("startup")
    generation = upload_again(store, old)
    registry.offer(layout.model_object(old.version), generation, "notification")
    newer = publish(store, fitted_model)
    ref = store.ref(layout.model_object(newer.version))
    assert registry.offer(ref.name, ref.generation, "notification").outcome == "swapped"
    assert registry.version == newer.version
    assert store.newest_valid().version == newer.version  # type: ignore[union-attr]  (what the trainer compares with)
    assert new.version < newer.version


def test_a_reuploaded_old_artifact_does_not_change_the_trainers_current_model(
    store: ModelStore, fitted_model: Pipeline
) -> None:
    old, new = publish(store, fitted_model), publish(store, fitted_model)
    upload_again(store, old)
    assert store.newest_valid().version == new.version  # type: ignore[union-attr]
    assert store.retire_older(new.version) == [layout.model_object(old.version)]


def test_a_signed_far_future_artifact_does_not_freeze_a_worker(
    registry: Registry, store: ModelStore, fitted_model: Pipeline
) -> None:
    current = publish(store, fitted_model)
    registry.reconcile("startup")
    future = layout.format_version(datetime.now(UTC) + timedelta(days=3650))
    name = layout.model_object(future)
    blob = store.bucket.blob(name)
    blob.metadata = replace(current, version=future).signed_with(KEYRING).to_metadata()
    blob.upload_from_string(store.bucket.blob(layout.model_object(current.version)).download_as_bytes())
    record = registry.offer(name, blob.generation, "notification")
    assert (record.outcome, record.reason) == ("rejected", "future_version")
    newer = publish(store, fitted_model)
    assert registry.reconcile().version == newer.version  # type: ignore[union-attr]
