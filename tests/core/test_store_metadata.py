"""Artifact metadata within GCS's limits as sent, and publishing and listing that one bad object cannot break.

On fake-gcs-server's filesystem backend (the local stack's), which stores custom metadata in extended attributes:
metadata over their limit fails the upload with 500 after the content was written, and that object then fails every
listing that includes it with 404 and cannot be deleted through the API, the failure this module reproduces.
"""

from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import Iterator

import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY
from sklearn.pipeline import Pipeline

from core import layout
from core.errors import StoreUnavailable
from core.lineage import METADATA_TOTAL_BYTES, METADATA_VALUE_BYTES, Lineage, Provenance, metadata_bytes, sent_bytes
from core.states import Trigger
from core.store import ModelStore
from devstack import emulators
from tests import keys

pytestmark = pytest.mark.integration

EMOJI = "\U0001f600"
EMOJI_NAMES = tuple(f"data/{EMOJI * 240}-{i}.csv#{i}" for i in (2, 1))
"""Two uploads named with 240 emoji each: 5,853 bytes of data_objects once JSON-escaped."""


@pytest.fixture(scope="module")
def fs_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[storage.Client]:
    """fake-gcs-server with a filesystem root, as the local stack runs it."""
    root = tmp_path_factory.mktemp("fake-gcs-fs")
    service = emulators.start_fake_gcs(emulators.free_port(), root / "data", root / "fake-gcs.log")
    try:
        yield emulators.storage_client(service.host, "test-project")
    finally:
        service.stop()


@pytest.fixture
def fs_store(fs_client: storage.Client) -> ModelStore:
    bucket = fs_client.create_bucket(f"test-{uuid.uuid4().hex[:16]}")
    return ModelStore(bucket, keys.KEYRING, DEFAULT_RETRY.with_timeout(2.0).with_delay(initial=0.1, maximum=0.5))


def within_limits(metadata: dict[str, str]) -> bool:
    return metadata_bytes(metadata) <= METADATA_TOTAL_BYTES and all(
        sent_bytes(v) <= METADATA_VALUE_BYTES for v in metadata.values()
    )


def test_the_emoji_names_are_over_the_limits_as_sent() -> None:
    """What the old budget missed: 2 KiB of raw UTF-8 is far more once escaped."""
    raw = json.dumps(list(EMOJI_NAMES))
    assert sent_bytes(raw) > METADATA_VALUE_BYTES
    assert len("".join(EMOJI_NAMES).encode()) < 2048


def test_a_publish_with_240_emoji_file_names_fits_and_verifies(fs_store: ModelStore, fitted_model: Pipeline) -> None:
    provenance = Provenance(Trigger.EVENT, EMOJI_NAMES)
    lineage = fs_store.publish(
        fitted_model, data_fingerprint="f" * 64, row_count=150, metrics={}, provenance=provenance
    )
    stored = fs_store.ref(layout.model_object(lineage.version)).metadata
    assert within_limits(stored)
    assert lineage.data_objects_total == 2
    assert lineage.data_objects == list(EMOJI_NAMES[: len(lineage.data_objects)])
    assert [r.version for r in fs_store.list_versions()] == [lineage.version]
    assert fs_store.verify_published(lineage).version == lineage.version


def test_many_long_names_are_cut_newest_first_to_fit_every_value_and_the_total() -> None:
    odd = "\u00e9" * 60 + '\\"' * 20
    names = tuple(f"data/{odd}-{i}.csv#{i}" for i in range(400, 0, -1))
    base = Lineage.from_metadata(
        Lineage(
            version="20260101T000000000000Z", created_at="x", sha256="0" * 64, signature="s", sklearn_version="x",
            python_version="x", model_type="x" * 4000, data_fingerprint="f" * 2200, row_count=1, metrics={"a": 1.0},
            feature_names=[], classes=[], data_objects_total=400,
        ).to_metadata(),
        "n",
    )  # fmt: skip
    for objects in (list(names), list(Provenance(Trigger.EVENT, names).listed())):
        signed = Lineage(**{**base.as_dict(), "data_objects": objects}).signed_with(keys.KEYRING)
        assert within_limits(signed.to_metadata())
        assert 0 < len(signed.data_objects) < len(objects)
        assert signed.data_objects == objects[: len(signed.data_objects)]
        assert signed.verifies(keys.READER)


def test_a_failed_upload_leaves_no_object_behind(
    store: ModelStore, fitted_model: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stored the object, then the response was lost: the publish fails and deletes what it stored."""
    real = storage.Blob.upload_from_string

    def lost_response(blob: storage.Blob, *args: object, **kwargs: object) -> None:
        real(blob, *args, **kwargs)  # type: ignore[arg-type]
        raise gexc.ServiceUnavailable("response lost after the object was stored")

    monkeypatch.setattr(storage.Blob, "upload_from_string", lost_response)
    with pytest.raises(StoreUnavailable):
        store.publish_bytes(pickle.dumps(fitted_model), model_type="x", data_fingerprint="f", row_count=1, metrics={})
    assert list(store.bucket.list_blobs(prefix=layout.MODELS)) == []


def test_a_listing_skips_an_object_that_breaks_it(
    fs_store: ModelStore, fitted_model: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object the emulator half-stored (metadata over the limits, as before the budget counted escaped bytes)
    makes every listing including it 404; the store lists around it and the newest valid model still loads."""
    good = fs_store.publish(fitted_model, data_fingerprint="f" * 64, row_count=150, metrics={})
    monkeypatch.setattr(Lineage, "fitted", lambda self: self)  # the old budget
    too_big = Provenance(Trigger.EVENT, EMOJI_NAMES * 3)
    monkeypatch.setattr(Provenance, "listed", lambda self: list(self.objects))
    with pytest.raises(StoreUnavailable):
        fs_store.publish(fitted_model, data_fingerprint="f" * 64, row_count=150, metrics={}, provenance=too_big)
    with pytest.raises(gexc.NotFound):
        list(fs_store.bucket.client.list_blobs(fs_store.bucket, prefix=layout.MODELS, retry=None))
    monkeypatch.undo()
    newer = fs_store.publish(fitted_model, data_fingerprint="f" * 64, row_count=150, metrics={})
    assert [r.version for r in fs_store.list_versions()] == [good.version, newer.version]
    loaded = fs_store.newest_valid()
    assert loaded is not None
    assert loaded.version == newer.version


def test_a_missing_bucket_is_still_not_found(fs_client: storage.Client) -> None:
    store = ModelStore(fs_client.bucket(f"missing-{uuid.uuid4().hex[:8]}"), keys.KEYRING, DEFAULT_RETRY)
    with pytest.raises(gexc.NotFound):
        store.list_versions()
