"""core.store: what the lifecycle rule may delete, and reading a published artifact back (fake-gcs-server)."""

from __future__ import annotations

import pickle

import pytest
from sklearn.pipeline import Pipeline

from core import layout
from core.errors import ArtifactRejected
from core.signing import Keyring
from core.store import ModelStore
from tests.keys import OTHER

pytestmark = pytest.mark.integration

METRICS = {"accuracy": 0.97}


def publish(store: ModelStore, model: Pipeline) -> str:
    return store.publish(model, data_fingerprint="fp", row_count=150, metrics=METRICS).version


def stamped(store: ModelStore) -> set[str]:
    return {r.version for r in store.list_versions() if store.bucket.get_blob(r.name).custom_time is not None}


def test_retire_stamps_only_older_versions_and_never_a_kept_one(store: ModelStore, fitted_model: Pipeline) -> None:
    first, second, third, newest = (publish(store, fitted_model) for _ in range(4))
    assert store.retire_older(third, keep=[first]) == [layout.model_object(second)]
    assert stamped(store) == {second}
    assert store.retire_older(newest, keep=[first]) == [layout.model_object(third)]  # a stamp is never redone
    assert stamped(store) == {second, third}


def test_verify_published_reads_back_what_was_published(store: ModelStore, fitted_model: Pipeline) -> None:
    lineage = store.publish(fitted_model, data_fingerprint="fp", row_count=150, metrics=METRICS)
    loaded = store.verify_published(lineage)
    assert loaded.lineage == lineage
    assert loaded.ref.generation > 0


def test_verify_published_refuses_an_artifact_changed_after_upload(store: ModelStore, fitted_model: Pipeline) -> None:
    lineage = store.publish(fitted_model, data_fingerprint="fp", row_count=150, metrics=METRICS)
    blob = store.bucket.blob(layout.model_object(lineage.version))
    blob.metadata = lineage.to_metadata()
    blob.upload_from_string(pickle.dumps(fitted_model)[:-1] + b".")  # same metadata, other bytes
    with pytest.raises(ArtifactRejected) as info:
        store.verify_published(lineage)
    assert info.value.reason == "hash_mismatch"


def test_verify_published_uses_the_trusted_keys_not_the_signing_key(store: ModelStore, fitted_model: Pipeline) -> None:
    untrusted = ModelStore(store.bucket, Keyring(trusted={}, signer=OTHER.signer), store.retry)
    lineage = untrusted.publish(fitted_model, data_fingerprint="fp", row_count=150, metrics=METRICS)
    with pytest.raises(ArtifactRejected) as info:
        untrusted.verify_published(lineage)
    assert info.value.reason == "unknown_key"
