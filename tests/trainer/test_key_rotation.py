"""A signing key rotation, as the README describes it, run through the real trainer against fake-gcs-server: no
published model stops verifying, and a predictor that has not picked up the new public key keeps its model."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.cloud import storage

from core import signing
from core.settings import TrustSettings
from core.store import ModelStore
from tests.trainer.conftest import csv_text, iris_rows, put
from trainer import evalset
from trainer.run import train_once
from trainer.settings import TrainerSettings

pytestmark = pytest.mark.integration


def key_pair(folder: Path, name: str) -> tuple[Path, bytes]:
    private, public = signing.generate_ed25519()
    path = folder / f"{name}-private.pem"
    path.write_bytes(private)
    return path, public


def trusting(folder: Path, *public_keys: bytes) -> Path:
    folder.mkdir()
    for i, pem in enumerate(public_keys):
        (folder / f"key-{i}.pem").write_bytes(pem)
    return folder


def newest_for(store: ModelStore, public_dir: Path) -> str | None:
    """The version a predictor trusting `public_dir` would serve."""
    keyring = TrustSettings.model_validate({"model_public_keys_dir": public_dir}).keyring()
    loaded = ModelStore(store.bucket, keyring, store.retry).newest_valid()
    return loaded.version if loaded else None


def test_a_rotation_keeps_every_model_valid(
    trainer_settings: TrainerSettings, store: ModelStore, bucket: storage.Bucket, tmp_path: Path
) -> None:
    old_private, old_public = key_pair(tmp_path, "old")
    new_private, new_public = key_pair(tmp_path, "new")
    only_old = trusting(tmp_path / "old-only", old_public)
    both = trusting(tmp_path / "both", old_public, new_public)
    only_new = trusting(tmp_path / "new-only", new_public)

    before = trainer_settings.model_copy(
        update={"model_signing_private_key_file": old_private, "model_public_keys_dir": only_old}
    )
    evalset.publish(bucket, before.keyring(), None, evalset.iris_rows())  # the set the old key signed
    first = train_once(before)
    assert first["status"] == "published"

    # 1. predictors trust the new public key as well; 2. the trainer signs with the new private key.
    assert newest_for(store, both) == first["model_version"]
    after = trainer_settings.model_copy(
        update={"model_signing_private_key_file": new_private, "model_public_keys_dir": both}
    )
    assert train_once(after)["status"] == "skipped"  # the old key's model is still the current one
    put(bucket, "data/more.csv", csv_text(iris_rows(seed=5)))
    second = train_once(after)
    assert second["status"] == "published"

    assert newest_for(store, both) == second["model_version"]
    assert newest_for(store, only_old) == first["model_version"]  # a predictor not yet updated keeps serving
    # 3. once nothing needs the old key's models, the old public key goes.
    assert newest_for(store, only_new) == second["model_version"]
    # and the trusted evaluation set is signed again with the new key before the trainer stops trusting the old one
    newest = trainer_settings.model_copy(
        update={"model_signing_private_key_file": new_private, "model_public_keys_dir": only_new}
    )
    old_set = evalset.load_trusted(bucket, after.keyring(), None)
    evalset.publish(bucket, newest.keyring(), None, old_set.as_rows())
    resigned = evalset.load_trusted(bucket, newest.keyring(), None)
    assert resigned.version > old_set.version
    assert resigned.key_id != old_set.key_id
    assert (resigned.features == old_set.features).all()
    assert (resigned.labels == old_set.labels).all()
