"""Fixtures of the predictor tests.

Route tests run offline: the app's registry gets a model installed directly (no bucket behind it). Registry and
admin tests go through fake-gcs-server: tmp -> fitted model -> store -> settings -> app -> client.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.pipeline import Pipeline

from core.lineage import Lineage
from core.store import ArtifactRef, LoadedModel, ModelStore
from predictor.app import create_app
from predictor.registry import Registry
from predictor.settings import PredictorSettings
from tests import keys

ADMIN_TOKEN = "admin-test-token-0123"
VERSION = "20260101T000000000000Z"
MAX_BATCH = 20
METRICS = {"accuracy": 0.97, "f1_macro": 0.96}


def installed(fitted_model: Pipeline, version: str = VERSION) -> LoadedModel:
    """A LoadedModel as the store would return it, without a bucket."""
    lineage = Lineage(
        version=version, created_at="2026-01-01T00:00:00+00:00", sha256="0" * 64, signature="0" * 64,
        sklearn_version="test", python_version="test", model_type="StandardScaler+LogisticRegression",
        data_fingerprint="test", row_count=150, metrics=METRICS, feature_names=[], classes=[],
    )  # fmt: skip
    return LoadedModel(ArtifactRef(f"models/model-{version}.pkl", 1, version, {}), lineage, fitted_model)


def publish(store: ModelStore, model: Pipeline) -> Lineage:
    return store.publish(model, data_fingerprint="sha256:test", row_count=150, metrics=METRICS)


@pytest.fixture
def offline_settings() -> PredictorSettings:
    """Settings whose bucket is unreachable (port 9 on loopback): nothing may need it."""
    return PredictorSettings.model_validate({
        **keys.settings(), "storage_emulator_host": "127.0.0.1:9", "gcs_retry_deadline": 0.5,
        "max_batch_size": MAX_BATCH, "max_body_bytes": 4096, "admin_token": ADMIN_TOKEN,
    })  # fmt: skip


@pytest.fixture
def app(offline_settings: PredictorSettings) -> Flask:
    """An app with no model loaded."""
    return create_app(offline_settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ready_client(app: Flask, fitted_model: Pipeline) -> FlaskClient:
    """A client of an app serving the fitted model as version VERSION."""
    app.extensions["registry"].current = installed(fitted_model)
    return app.test_client()


@pytest.fixture
def predictor_settings(common_env: dict[str, str]) -> PredictorSettings:
    values: dict[str, Any] = {k.lower(): v for k, v in common_env.items()}
    values.update(admin_token=ADMIN_TOKEN, model_events_enabled=False, swap_history_size=5)
    return PredictorSettings.model_validate(values)


@pytest.fixture
def live_app(predictor_settings: PredictorSettings, store: ModelStore) -> Flask:
    """An app on this test's bucket (fake-gcs-server), no model loaded yet."""
    return create_app(predictor_settings, store)


@pytest.fixture
def registry(live_app: Flask) -> Registry:
    registry: Registry = live_app.extensions["registry"]
    return registry


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
