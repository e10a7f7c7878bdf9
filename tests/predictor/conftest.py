"""Fixtures of the predictor tests: one family for apps and registries, and the helpers they share.

Route tests run offline: the app's registry gets a model installed directly (``install``, no bucket behind it).
Registry and admin tests go through fake-gcs-server: tmp -> fitted model -> store -> settings -> app -> client.
``Admin`` makes the token calls on the admin routes (as flaskr's ``AuthActions`` logs in).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.pipeline import Pipeline
from werkzeug.test import TestResponse

from core.lineage import Lineage
from core.store import ArtifactRef, LoadedModel, ModelStore
from predictor.dataplane import DataPlane
from predictor.http import extensions
from predictor.http.app import create_app
from predictor.lifecycle.bucket import DeferredModelStore
from predictor.lifecycle.registry import Registry, Serving
from predictor.metrics import Metrics
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


def install(app: Flask | DataPlane | Registry, model: Any, version: str = VERSION) -> LoadedModel:
    """Make the registry of `app` (a Flask app, a data plane or a registry) serve `model` as `version`, unverified:
    route tests need no bucket."""
    if isinstance(app, Flask):
        app = extensions.dataplane(app)
    registry = app.registry if isinstance(app, DataPlane) else app
    loaded = installed(model, version)
    registry.serving = Serving.of(loaded)
    return loaded


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
def dataplane(offline_settings: PredictorSettings) -> DataPlane:
    """A data plane with no model loaded and no transport (what the gRPC server builds, without Flask)."""
    metrics = Metrics()
    return DataPlane(
        Registry(DeferredModelStore(offline_settings), offline_settings, metrics), offline_settings, metrics
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ready_client(app: Flask, fitted_model: Pipeline) -> FlaskClient:
    """A client of an app serving the fitted model as version VERSION."""
    install(app, fitted_model)
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
    return extensions.registry(live_app)


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Admin:
    """The admin routes of one client, called with the bearer token."""

    HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def reload(self) -> TestResponse:
        return self.client.post("/admin/reload", headers=self.HEADERS)

    def pin(self, version: Any) -> TestResponse:
        """PUT /admin/pin with ``{"version": version}`` (any JSON body if `version` is not a string)."""
        body = {"version": version} if isinstance(version, str) else version
        return self.client.put("/admin/pin", json=body, headers=self.HEADERS)

    def unpin(self) -> TestResponse:
        return self.client.delete("/admin/pin", headers=self.HEADERS)


@pytest.fixture
def admin(client: FlaskClient) -> Admin:
    """Admin calls on the offline app's client."""
    return Admin(client)
