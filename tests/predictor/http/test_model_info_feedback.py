"""GET /v1/model shows how many rows the serving model learned from feedback and the gate's floor, as signed."""

from __future__ import annotations

import pytest
from flask import Flask
from google.cloud import storage

from core import layout
from predictor.lifecycle.registry import Registry
from tests.trainer.conftest import csv_text, iris_rows
from trainer.run import train_once
from trainer.settings import TrainerSettings

pytestmark = pytest.mark.integration


def test_v1_model_shows_the_feedback_rows_and_the_accuracy_floor(
    live_app: Flask, registry: Registry, trainer_settings: TrainerSettings, storage_client: storage.Client
) -> None:
    bucket = storage_client.bucket(trainer_settings.gcs_bucket)
    bucket.blob("data/iris.csv").upload_from_string(csv_text(iris_rows()), content_type="text/csv")
    feedback = csv_text(iris_rows(seed=5)[::6])  # 25 rows
    bucket.blob("data/feedback-20261205T013000000000Z.csv").upload_from_string(feedback, content_type="text/csv")
    published = train_once(trainer_settings)
    assert published["status"] == "published", published
    assert registry.offer(layout.model_object(published["model_version"]), None, "notification").outcome == "swapped"
    lineage = live_app.test_client().get("/v1/model").get_json()["lineage"]
    assert lineage["feedback_rows"] == published["feedback_rows"] == 25
    assert lineage["metrics"]["accuracy_floor"] == trainer_settings.accuracy_floor
