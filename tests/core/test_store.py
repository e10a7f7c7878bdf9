"""core.store against fake-gcs-server: publish, list, load, and every reason an artifact is rejected."""

from __future__ import annotations

import os
import pickle
import platform
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
from google.api_core import exceptions as gexc
from sklearn.datasets import load_iris
from sklearn.pipeline import Pipeline

from core import layout, signing, unpickle
from core.errors import ArtifactRejected
from core.lineage import Lineage
from core.signing import Keyring
from core.store import ArtifactRef, LoadedModel, ModelStore, model_type_of
from tests import keys
from tests.core.test_unpickle import Payload
from trainer.model import build

pytestmark = pytest.mark.integration

METRICS = {"accuracy": 0.97, "f1_macro": 0.96}


def publish(store: ModelStore, model: Any, fingerprint: str = "fp-1") -> Lineage:
    """Sign and upload any object's pickle, bypassing publish()'s own load-back check (to test the reader)."""
    data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    return store.publish_bytes(
        data, model_type=model_type_of(model), data_fingerprint=fingerprint, row_count=150, metrics=METRICS
    )


def other_store(store: ModelStore, keyring: Keyring) -> ModelStore:
    return ModelStore(store.bucket, keyring, store.retry)


def upload(store: ModelStore, name: str, data: bytes, metadata: dict[str, str] | None) -> None:
    blob = store.bucket.blob(name)
    blob.metadata = metadata
    blob.upload_from_string(data, content_type="application/octet-stream")


def upload_signed(store: ModelStore, data: bytes, version: str, like: Lineage) -> str:
    """`data` signed with the store's own key under `version` (a trusted signer publishing bad content)."""
    digest = signing.sha256_hex(data)
    lineage = replace(like, version=version, sha256=digest).signed_with(keys.KEYRING)
    name = layout.model_object(version)
    upload(store, name, data, lineage.to_metadata())
    return name


def later(version: str, microseconds: int = 1) -> str:
    return layout.format_version(layout.version_time(version) + timedelta(microseconds=microseconds))


def rejection(store: ModelStore, name: str) -> ArtifactRejected:
    with pytest.raises(ArtifactRejected) as info:
        store.load(store.ref(name))
    assert info.value.name == name
    return info.value


@pytest.fixture
def unpickled(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every byte string the store hands to the unpickler."""
    calls: list[bytes] = []
    real = unpickle.loads

    def spy(data: bytes, limits: unpickle.Limits | None = None) -> Any:
        calls.append(data)
        return real(data, limits)

    monkeypatch.setattr(unpickle, "loads", spy)
    return calls


def test_publish_list_and_load_with_complete_lineage(store: ModelStore, fitted_model: Pipeline) -> None:
    lineage = publish(store, fitted_model)
    refs = store.list_versions()
    assert [r.name for r in refs] == [layout.model_object(lineage.version)]
    ref = refs[0]
    assert ref.generation > 0
    assert ref.metadata == lineage.to_metadata()
    loaded = other_store(store, keys.READER).load(ref)  # what a predictor does, holding the public key only
    assert isinstance(loaded, LoadedModel)
    assert loaded.version == lineage.version
    assert loaded.lineage == lineage
    assert lineage.key_id == keys.SIGNER.key_id
    assert (lineage.sklearn_version, lineage.python_version) == (sklearn.__version__, platform.python_version())
    assert lineage.model_type == "StandardScaler+LogisticRegression"
    assert (lineage.data_fingerprint, lineage.row_count, lineage.metrics) == ("fp-1", 150, METRICS)
    assert lineage.classes == ["setosa", "versicolor", "virginica"]
    assert len(lineage.feature_names) == 4
    x = load_iris().data
    assert list(loaded.model.predict(x)) == list(fitted_model.predict(x))


def test_list_is_sorted_by_version_and_ignores_other_objects(store: ModelStore, fitted_model: Pipeline) -> None:
    versions = [publish(store, fitted_model, f"fp-{i}").version for i in range(3)]
    upload(store, layout.CLAIMS + "fp.json", b"{}", None)
    upload(store, "models/model-latest.pkl", b"x", None)
    assert [r.version for r in store.list_versions()] == sorted(versions)
    assert store.newest_valid().version == max(versions)  # type: ignore[union-attr]


def test_fetch_by_generation(store: ModelStore, fitted_model: Pipeline) -> None:
    bucket = store.bucket.client.get_bucket(store.bucket.name)
    bucket.versioning_enabled = True
    bucket.patch()
    lineage = publish(store, fitted_model)
    name = layout.model_object(lineage.version)
    original = store.ref(name)
    upload(store, name, b"overwritten", {"note": "tampered"})  # an overwrite outside the store
    assert store.ref(name).generation != original.generation
    pinned = store.ref(name, generation=original.generation)
    assert pinned.metadata == lineage.to_metadata()
    assert store.load(pinned).version == lineage.version
    assert rejection(store, name).reason == "unsigned"


def test_missing_object_is_not_found(store: ModelStore) -> None:
    with pytest.raises(ArtifactRejected) as info:
        store.ref(layout.model_object("20260101T000000000000Z"))
    assert info.value.reason == "not_found"


def test_never_overwrites_an_existing_version(
    store: ModelStore, fitted_model: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layout, "format_version", lambda moment: "20260101T000000000000Z")
    first = publish(store, fitted_model, "fp-first")
    with pytest.raises(gexc.PreconditionFailed):
        publish(store, fitted_model, "fp-second")
    [ref] = store.list_versions()
    assert ref.metadata["data_fingerprint"] == "fp-first"
    assert store.load(ref).lineage == first


def test_unsigned(store: ModelStore, fitted_model: Pipeline, unpickled: list[bytes]) -> None:
    name = layout.model_object("20260101T000000000000Z")
    upload(store, name, pickle.dumps(fitted_model), {"sha256": signing.sha256_hex(pickle.dumps(fitted_model))})
    assert rejection(store, name).reason == "unsigned"
    assert unpickled == []


def test_bad_metadata(store: ModelStore, fitted_model: Pipeline) -> None:
    lineage = publish(store, fitted_model)
    name = layout.model_object(lineage.version)
    blob = store.bucket.get_blob(name)
    blob.metadata = {"metrics": "{broken"}
    blob.patch()
    assert rejection(store, name).reason == "bad_metadata"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("signature", "é" * 64, "bad_signature"), ("metrics", "[" * 100_000 + "]" * 100_000, "bad_metadata")],
    ids=["non-ascii-signature", "deeply-nested-json"],
)
def test_malformed_metadata_is_a_rejection_never_a_crash(
    store: ModelStore, fitted_model: Pipeline, field: str, value: str, reason: str
) -> None:
    lineage = publish(store, fitted_model)
    name = layout.model_object(lineage.version)
    upload(store, name, pickle.dumps(fitted_model), lineage.to_metadata() | {field: value})
    assert rejection(store, name).reason == reason


@pytest.mark.parametrize(
    ("field", "respell", "reason"),
    [
        ("row_count", lambda v: "\u0661\u0665\u0660", "bad_metadata"),
        ("row_count", lambda v: " 000150 ", "bad_metadata"),
        ("metrics", lambda v: v.replace("{", '{"accuracy": 0.0, ', 1), "bad_metadata"),
        ("signature", lambda v: " ".join(v[i : i + 2] for i in range(0, len(v), 2)), "bad_signature"),
    ],
    ids=["arabic-indic-digits", "spaced-zeros", "duplicate-key", "spaced-hex"],
)
def test_a_signed_lineage_respelt_in_storage_is_refused_before_unpickling(
    store: ModelStore, fitted_model: Pipeline, unpickled: list[bytes], field: str, respell: Any, reason: str
) -> None:
    """The signature covers the strings as stored; another spelling of the same values does not verify."""
    lineage = publish(store, fitted_model)
    name = layout.model_object(lineage.version)
    metadata = lineage.to_metadata()
    upload(store, name, pickle.dumps(fitted_model), metadata | {field: respell(metadata[field])})
    assert rejection(store, name).reason == reason
    assert unpickled == []


def test_an_artifact_over_the_size_cap_is_too_large_and_never_unpickled(
    store: ModelStore, fitted_model: Pipeline, unpickled: list[bytes]
) -> None:
    lineage = publish(store, fitted_model)
    name = layout.model_object(lineage.version)
    size = len(pickle.dumps(fitted_model, protocol=pickle.HIGHEST_PROTOCOL))
    capped = ModelStore(store.bucket, store.keyring, store.retry, unpickle.Limits(max_bytes=size - 1))
    assert rejection(capped, name).reason == "too_large"
    lying = replace(capped.ref(name), size=1)  # a listing that understates the size: the download is capped anyway
    with pytest.raises(ArtifactRejected) as info:
        capped.load(lying)
    assert info.value.reason == "too_large"
    assert unpickled == []
    assert store.load(store.ref(name)).version == lineage.version


def test_publish_refuses_a_model_no_predictor_would_load(store: ModelStore) -> None:
    from sklearn.ensemble import RandomForestClassifier

    iris = load_iris()
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(iris.data, iris.target_names[iris.target])
    with pytest.raises(ArtifactRejected) as info:
        store.publish(forest, data_fingerprint="fp", row_count=150, metrics=METRICS)
    assert info.value.reason == "unpickle_failed"
    assert "RandomForestClassifier is not allowed" in info.value.message
    assert store.list_versions() == []


@pytest.mark.parametrize(("claims_our_key", "reason"), [(False, "unknown_key"), (True, "bad_signature")])
def test_another_keys_signature_is_never_unpickled(
    store: ModelStore, tmp_path: Path, unpickled: list[bytes], claims_our_key: bool, reason: str
) -> None:
    marker = tmp_path / "marker"
    lineage = publish(other_store(store, keys.OTHER), Payload(os.system, f"touch {marker}"))
    name = layout.model_object(lineage.version)
    if claims_our_key:
        upload(
            store,
            name,
            store.bucket.blob(name).download_as_bytes(),
            lineage.to_metadata() | {"key_id": keys.SIGNER.key_id},
        )
    assert rejection(store, name).reason == reason
    assert unpickled == []
    assert not marker.exists()


def test_hash_mismatch_for_tampered_and_truncated_content(
    store: ModelStore, fitted_model: Pipeline, unpickled: list[bytes]
) -> None:
    lineage = publish(store, fitted_model)
    name = layout.model_object(lineage.version)
    data = store.bucket.blob(name).download_as_bytes()
    tampered = bytearray(data)
    tampered[len(data) // 2] ^= 0xFF
    for content in (bytes(tampered), data[: len(data) // 2]):
        upload(store, name, content, lineage.to_metadata())
        assert rejection(store, name).reason == "hash_mismatch"
    assert unpickled == []


def test_version_mismatch_for_a_replayed_artifact(
    store: ModelStore, fitted_model: Pipeline, unpickled: list[bytes]
) -> None:
    lineage = publish(store, fitted_model)
    data = store.bucket.blob(layout.model_object(lineage.version)).download_as_bytes()
    replayed = layout.model_object(later(lineage.version, 10**6))
    upload(store, replayed, data, lineage.to_metadata())
    assert rejection(store, replayed).reason == "version_mismatch"
    assert unpickled == []
    assert store.newest_valid().version == lineage.version  # type: ignore[union-attr]


def test_a_signed_far_future_version_is_rejected(store: ModelStore, fitted_model: Pipeline) -> None:
    like = publish(store, fitted_model)
    soon = layout.format_version(datetime.now(UTC) + timedelta(minutes=4))
    assert store.load(store.ref(upload_signed(store, pickle.dumps(fitted_model), soon, like))).version == soon
    future = layout.format_version(datetime.now(UTC) + timedelta(days=365))
    name = upload_signed(store, pickle.dumps(fitted_model), future, like)
    assert rejection(store, name).reason == "future_version"
    assert store.newest_valid().version == soon


def test_bad_name(store: ModelStore) -> None:
    with pytest.raises(ArtifactRejected) as info:
        store.verify_metadata(ArtifactRef("models/other.pkl", 1, "", {}))
    assert info.value.reason == "bad_name"


@pytest.mark.parametrize("content", [b"not a pickle", pickle.dumps(Payload(eval, "1 + 1"))], ids=["garbage", "eval"])
def test_signed_content_that_does_not_unpickle(store: ModelStore, fitted_model: Pipeline, content: bytes) -> None:
    like = publish(store, fitted_model)
    name = upload_signed(store, content, later(like.version), like)
    error = rejection(store, name)
    assert error.reason == "unpickle_failed"


def _with_classes(classes: list[str]) -> Pipeline:
    iris = load_iris()
    return build().fit(iris.data, np.asarray(classes)[iris.target])


@pytest.mark.parametrize(
    "model",
    [
        lambda: _with_classes(["a", "b", "c"]),
        lambda: build().fit(
            load_iris().data[:, :3], np.asarray(["setosa", "versicolor", "virginica"])[load_iris().target]
        ),
        lambda: build().fit(load_iris().data[:100], np.asarray(["setosa", "versicolor"])[load_iris().target[:100]]),
    ],
    ids=["other-classes", "three-features", "two-classes"],
)
def test_schema_mismatch(store: ModelStore, model: Any) -> None:
    lineage = publish(store, model())
    assert rejection(store, layout.model_object(lineage.version)).reason == "schema_mismatch"


def test_warmup_failed_for_a_model_that_mislabels_known_flowers(store: ModelStore) -> None:
    lineage = publish(store, _with_classes(["virginica", "versicolor", "setosa"]))
    error = rejection(store, layout.model_object(lineage.version))
    assert error.reason == "warmup_failed"
    assert "known flowers predicted as" in error.message


def test_newest_valid_skips_rejected_newer_artifacts(store: ModelStore, fitted_model: Pipeline) -> None:
    good = publish(store, fitted_model)
    publish(other_store(store, keys.OTHER), fitted_model)
    upload(store, layout.model_object(later(good.version, 10**7)), pickle.dumps(fitted_model), None)
    rejected: list[tuple[str, str]] = []
    newest = store.newest_valid(on_reject=lambda ref, e: rejected.append((ref.name, e.reason)))
    assert newest is not None
    assert newest.version == good.version
    assert sorted(reason for _, reason in rejected) == ["unknown_key", "unsigned"]
    assert store.newest_valid(newer_than=good.version) is None


def test_newest_valid_of_an_empty_store(store: ModelStore) -> None:
    assert store.list_versions() == []
    assert store.newest_valid() is None
