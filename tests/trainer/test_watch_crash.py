"""`python -m trainer --watch` killed in the middle of a training run: the next watcher trains the data, once."""

from __future__ import annotations

import json
import uuid

import pytest
from google.cloud import storage

from core import layout
from core.store import LoadedModel, ModelStore
from devstack.emulators import Service
from tests.conftest import TOPIC
from tests.polling import wait_for
from tests.trainer.conftest import csv_text, iris_rows, put, start_trainer, trainer_env


def training_claim(bucket: storage.Bucket) -> str | None:
    """The name of a claim whose run is still training, if any."""
    for blob in bucket.list_blobs(prefix=layout.CLAIMS):
        if json.loads(blob.download_as_bytes()).get("state") == "training":
            return str(blob.name)
    return None


def trained_on(store: ModelStore, objects: int) -> LoadedModel | None:
    model = store.newest_valid()
    return model if model and model.lineage.data_objects_total >= objects else None


def fingerprints(store: ModelStore) -> list[str]:
    return [ref.metadata.get("data_fingerprint", "") for ref in store.list_versions()]


@pytest.mark.faults
def test_a_watcher_killed_mid_run_loses_no_retrain_and_never_publishes_twice(
    common_env: dict[str, str], pubsub_emulator: Service, bucket: storage.Bucket, store: ModelStore
) -> None:
    env = trainer_env(
        common_env,
        PUBSUB_EMULATOR_HOST=pubsub_emulator.host,
        DATA_EVENTS_TOPIC=TOPIC,
        WATCH_SUBSCRIPTION=f"trainer-{uuid.uuid4().hex[:8]}",
        TRAIN_QUIET_PERIOD="0.5",
        TRAIN_RETRY_DELAY="1",
        CLAIM_STALE_AFTER="4",
    )
    first = start_trainer(env, "--watch")
    try:
        wait_for(lambda: store.newest_valid(), 60, "the seed model of the first watcher")
        big = put(bucket, "data/big.csv", csv_text(iris_rows(noise=0.01, copies=1000)))  # a run of a few seconds
        claim = wait_for(lambda: training_claim(bucket), 30, "the first watcher's claim on the new data")
    finally:
        first.kill()
        first.communicate(timeout=30)
    assert len(store.list_versions()) == 1, "killed before it could publish"
    second = start_trainer(env, "--watch")  # the replacement pod: same subscription, the messages still leased
    try:
        model = wait_for(lambda: trained_on(store, 2), 90, "a model trained on the killed run's data")
    finally:
        second.terminate()
        second.communicate(timeout=30)
    assert f"{big.name}#{big.generation}" in model.lineage.data_objects
    assert model.lineage.trigger in ("reconcile", "event")
    assert fingerprints(store).count(model.lineage.data_fingerprint) == 1
    taken_over = json.loads(bucket.blob(claim).download_as_bytes())
    assert (taken_over["state"], taken_over["version"]) == ("published", model.version)
