"""GET /v1/model shows the serving model's figures on the trusted evaluation set, as the trainer signed them."""

from __future__ import annotations

import pytest
from flask import Flask

from core import layout
from core.iris import CLASSES
from core.store import ModelStore
from predictor.lifecycle.registry import Registry
from tests import keys
from trainer import evalset
from trainer.run import train_once
from trainer.settings import TrainerSettings

pytestmark = pytest.mark.integration


def test_v1_model_shows_the_evaluation_set_version_and_per_class_recall(
    live_app: Flask, registry: Registry, store: ModelStore, trainer_settings: TrainerSettings
) -> None:
    published = train_once(trainer_settings)
    assert published["status"] == "published"
    swapped = registry.offer(layout.model_object(published["model_version"]), None, "notification")
    assert swapped.outcome == "swapped"
    body = live_app.test_client().get("/v1/model").get_json()
    evaluation = body["lineage"]["evaluation"]
    trusted = evalset.load_trusted(store.bucket, keys.READER, None)
    assert evaluation["set"] == trusted.version
    assert evaluation["rows"] == trusted.rows
    assert set(evaluation["recall"]) == set(CLASSES)
    assert evaluation == published["evaluation"]
