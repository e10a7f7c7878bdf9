"""What the lifecycle rule may delete, and the trainer's own check of what it published (fake-gcs-server)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from google.cloud import storage

from core import layout
from core.errors import PublishUnverified
from core.lineage import Trigger
from core.states import RunOutcome
from core.store import ModelStore
from tests.keys import OTHER
from tests.trainer.conftest import csv_text, iris_rows, put
from trainer import data, evalset
from trainer.__main__ import run_and_report
from trainer.run import train_once
from trainer.settings import TrainerSettings

pytestmark = pytest.mark.integration


def custom_times(bucket: storage.Bucket) -> dict[str, object]:
    blobs = bucket.list_blobs(prefix=layout.MODEL_PREFIX)
    return {b.name: b.custom_time for b in blobs if layout.model_version(b.name)}


def test_the_pinned_version_is_never_marked_for_deletion(
    trainer_settings: TrainerSettings, bucket: storage.Bucket
) -> None:
    first = train_once(trainer_settings)["model_version"]
    pinned = trainer_settings.model_copy(update={"pinned_model_version": first})
    second = train_once(pinned, force=True)["model_version"]
    third = train_once(pinned, force=True)["model_version"]
    times = custom_times(bucket)
    assert times[layout.model_object(first)] is None  # pinned: the fleet may need it after any restart
    assert times[layout.model_object(second)] is not None
    assert times[layout.model_object(third)] is None


def trusted_by_both(bucket: storage.Bucket) -> None:
    """An evaluation set the misconfigured trainer (trusting only OTHER) verifies too; the test key's stays older."""
    evalset.publish(bucket, OTHER, None, evalset.iris_rows())


def test_a_model_the_predictors_cannot_verify_fails_the_run_and_retires_nothing(
    trainer_settings: TrainerSettings, bucket: storage.Bucket, tmp_path: Path
) -> None:
    good = train_once(trainer_settings)
    assert good["status"] == "published"
    (tmp_path / "other.pem").write_bytes(OTHER.signer.public_pem())  # type: ignore[union-attr]
    misconfigured = trainer_settings.model_copy(update={"model_public_keys_dir": tmp_path})
    trusted_by_both(bucket)
    put(bucket, "data/more.csv", csv_text(iris_rows(seed=3)))
    with pytest.raises(PublishUnverified, match="does not verify: unknown_key"):
        train_once(misconfigured)
    times = custom_times(bucket)
    assert len(times) == 2
    assert times[layout.model_object(good["model_version"])] is None  # still the only model the fleet accepts
    fingerprint = data.fingerprint(data.list_csvs(bucket, None))
    claim = json.loads(bucket.blob(f"{layout.CLAIMS}{fingerprint}.json").download_as_bytes())
    assert claim["state"] == "failed"


def test_an_unverified_publish_is_a_failed_run_for_the_job(
    trainer_settings: TrainerSettings, bucket: storage.Bucket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "other.pem").write_bytes(OTHER.signer.public_pem())  # type: ignore[union-attr]
    misconfigured = trainer_settings.model_copy(update={"model_public_keys_dir": tmp_path})
    trusted_by_both(bucket)
    assert run_and_report(misconfigured, Trigger.MANUAL) is RunOutcome.FAILED
    assert "does not verify" in capsys.readouterr().err


def test_a_retry_after_an_unverified_publish_does_not_skip(
    trainer_settings: TrainerSettings, store: ModelStore, tmp_path: Path
) -> None:
    (tmp_path / "other.pem").write_bytes(OTHER.signer.public_pem())  # type: ignore[union-attr]
    misconfigured = trainer_settings.model_copy(update={"model_public_keys_dir": tmp_path})
    trusted_by_both(store.bucket)
    with pytest.raises(PublishUnverified):
        train_once(misconfigured)
    with pytest.raises(PublishUnverified):  # the artifact the fleet cannot verify is no reason to skip
        train_once(misconfigured)
    assert train_once(trainer_settings)["status"] == "skipped"  # correctly configured, it is the current model
    assert len(store.list_versions()) == 2


def test_pinning_a_version_already_marked_warns_to_hold_it(
    trainer_settings: TrainerSettings, bucket: storage.Bucket, caplog: pytest.LogCaptureFixture
) -> None:
    first = train_once(trainer_settings)["model_version"]
    train_once(trainer_settings, force=True)  # marks the first
    pinned = trainer_settings.model_copy(update={"pinned_model_version": first})
    with caplog.at_level(logging.WARNING, logger="trainer.run"):
        train_once(pinned, force=True)
    [warning] = [r.getMessage() for r in caplog.records if "pinned" in r.getMessage()]
    assert f"{layout.model_object(first)} --temporary-hold" in warning
