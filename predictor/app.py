"""The Flask application factory: blueprints, the model registry, metrics and the JSON error handler.

``create_app`` starts no threads and does no network I/O (the GCS client is built on first use), so gunicorn can
call it in each worker and tests can use ``app.test_client()``. Loading models and subscribing to events is
``predictor.background`` (started from gunicorn's ``post_worker_init`` hook).
"""

from __future__ import annotations

import threading
import time

from flask import Flask, Response, g, request
from google.cloud import storage

from core import gcs, signing
from core.settings import load
from core.store import ModelStore
from predictor import admin, admin_port, api, errors, extensions, health, hosts, model_info, openapi, v2, web
from predictor import metrics as metrics_module
from predictor.metrics import Metrics
from predictor.registry import Registry
from predictor.settings import PredictorSettings


class LazyStore(ModelStore):
    """The bucket's ModelStore, with its GCS client and keyring built on first use: building the app touches neither
    the network nor the key files."""

    def __init__(self, settings: PredictorSettings) -> None:
        self._settings, self._lock = settings, threading.Lock()
        self._bucket: storage.Bucket | None = None
        self._keyring: signing.Keyring | None = None
        self.retry = gcs.retry(settings)  # ModelStore's other two attributes are the properties below
        self.limits = settings.artifact_limits()

    @property
    def bucket(self) -> storage.Bucket:
        with self._lock:
            if self._bucket is None:
                self._bucket = gcs.client(self._settings).bucket(self._settings.gcs_bucket)
            return self._bucket

    @bucket.setter
    def bucket(self, bucket: storage.Bucket) -> None:
        self._bucket = bucket

    @property
    def keyring(self) -> signing.Keyring:
        with self._lock:
            if self._keyring is None:
                self._keyring = self._settings.keyring()
            return self._keyring

    @keyring.setter
    def keyring(self, keyring: signing.Keyring) -> None:
        self._keyring = keyring


def create_app(settings: PredictorSettings | None = None, store: ModelStore | None = None) -> Flask:
    """Build the predictor app; its registry, settings and metrics are read with predictor.extensions."""
    settings = settings or load(PredictorSettings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    metrics = Metrics()
    registry = Registry(store or LazyStore(settings), settings, metrics)
    extensions.install(app, settings, registry, metrics)
    for blueprint in (api.bp, v2.bp, health.bp, model_info.bp, admin.bp, metrics_module.bp, openapi.bp, web.bp):
        app.register_blueprint(blueprint)
    errors.register(app)
    hosts.register(app)
    admin_port.register(app)
    _instrument(app, registry, metrics)
    return app


def _instrument(app: Flask, registry: Registry, metrics: Metrics) -> None:
    """Time every request, count it by route and status, and stamp X-Model-Version on every response."""

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        if "X-Model-Version" not in response.headers:
            response.headers["X-Model-Version"] = registry.version or "none"
        rule = request.url_rule
        started = g.get("started")
        elapsed = time.perf_counter() - started if started is not None else 0.0
        metrics.observe_request(rule.rule if rule else "unmatched", response.status_code, elapsed)
        return response
