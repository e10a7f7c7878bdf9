"""GET /v1/model shows the serving model's figures on the trusted evaluation set, as the trainer signed them;
GET /v1/model/training-sample the rows of its training data it carries."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.pipeline import Pipeline

from core import layout, training_sample
from core.iris import CLASSES
from core.store import ModelStore
from predictor.lifecycle.registry import Registry
from tests import keys
from tests.predictor.conftest import install, publish
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


def test_a_trained_model_serves_its_training_sample_through_the_verified_load(
    live_app: Flask, registry: Registry, trainer_settings: TrainerSettings
) -> None:
    published = train_once(trainer_settings)
    assert published["status"] == "published"
    swapped = registry.offer(layout.model_object(published["model_version"]), None, "notification")
    assert swapped.outcome == "swapped"  # signature, hash and the allowlist unpickle of core.store
    response = live_app.test_client().get("/v1/model/training-sample")
    assert response.status_code == 200
    body = response.get_json()
    assert body["version"] == published["model_version"]
    assert (body["features"], body["classes"]) == (["petal_length", "petal_width"], list(CLASSES))
    points = body["points"]
    assert len(points) == min(training_sample.MAX_POINTS, int(published["metrics"]["train_rows"]))
    assert {p[2] for p in points} == {0, 1, 2}
    assert all(0 < p[0] < 8 and 0 < p[1] < 3 for p in points)


def test_a_model_from_before_samples_still_loads_and_answers_404(
    live_app: Flask, registry: Registry, store: ModelStore, fitted_model: Pipeline
) -> None:
    assert not hasattr(fitted_model, training_sample.ATTRIBUTE)
    lineage = publish(store, fitted_model)
    assert registry.offer(layout.model_object(lineage.version), None, "notification").outcome == "swapped"
    client = live_app.test_client()
    response = client.get("/v1/model/training-sample")
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "no_training_sample"
    assert lineage.version in error["message"]
    assert client.get("/v1/model").get_json()["model_version"] == lineage.version


def test_training_sample_without_a_model_and_with_a_malformed_one(client: FlaskClient, fitted_model: Pipeline) -> None:
    response = client.get("/v1/model/training-sample")
    assert (response.status_code, response.get_json()["error"]["code"]) == (503, "model_not_ready")
    model = copy.deepcopy(fitted_model)
    setattr(model, training_sample.ATTRIBUTE, np.full((4, 3), 7.0, np.float32))  # class index 7
    install(client.application, model)
    response = client.get("/v1/model/training-sample")
    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "no_training_sample")
    assert "class index 7.0" in response.get_json()["error"]["message"]
