"""The Flask application factory: blueprints, the model registry, metrics and the JSON error handler.

``create_app`` starts no threads and does no network I/O (the GCS client is built on first use), so gunicorn can
call it in each worker and tests can use ``app.test_client()``. Loading models and subscribing to events is
``predictor.background`` (started from gunicorn's ``post_worker_init`` hook).
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from flask import Flask, Response, g, request

from core import gcs
from core.settings import load
from core.store import ModelStore
from predictor import admin, admin_port, api, errors, health, model_info, openapi, v2, web
from predictor import metrics as metrics_module
from predictor.metrics import Metrics
from predictor.registry import Registry
from predictor.settings import PredictorSettings


class LazyStore:
    """A ModelStore built on first use, so that building the app never touches the network."""

    def __init__(self, settings: PredictorSettings) -> None:
        self._settings, self._store, self._lock = settings, cast(ModelStore | None, None), threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._store is None:
                client = gcs.client(self._settings)
                bucket = client.bucket(self._settings.gcs_bucket)
                self._store = ModelStore(bucket, self._settings.keyring(), gcs.retry(self._settings))
        return getattr(self._store, name)


def create_app(settings: PredictorSettings | None = None, store: ModelStore | None = None) -> Flask:
    """Build the predictor app; the registry is ``app.extensions["registry"]``."""
    settings = settings or load(PredictorSettings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    metrics = Metrics()
    registry = Registry(store or cast(ModelStore, LazyStore(settings)), settings, metrics)
    app.extensions.update(settings=settings, registry=registry, metrics=metrics)
    for blueprint in (api.bp, v2.bp, health.bp, model_info.bp, admin.bp, metrics_module.bp, openapi.bp, web.bp):
        app.register_blueprint(blueprint)
    errors.register(app)
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
