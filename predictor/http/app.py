"""The Flask application factory: the composition root of a serving worker.

``create_app`` wires the worker: the bucket (built on first use), its registry with the hooks it needs, the data
plane the routes answer with, the blueprints, metrics and the JSON error handler. It starts no threads and does no
network I/O, so gunicorn can call it in each worker and tests can use ``app.test_client()``.

- With HANDOVER_DIR (every gunicorn worker: ``python -m predictor`` sets it) the registry reads the pod's handover,
  verifying every artifact again, and a follower (predictor.lifecycle.follower) swaps to what the pod's agent points
  at once gunicorn's post_worker_init starts it; admin pin, unpin and reload are handed to the agent, which decides
  once for the pod. With `pod_workers` (gunicorn's worker count) readiness is pod-wide (predictor.lifecycle.readiness).
- With HANDOVER_DIR the worker also records its predictions in its own prediction log (predictor.predlog), spooled
  beside the handover for the pod's agent to ship (closed by gunicorn's worker_exit), and spools accepted feedback
  in a folder of its own (predictor.predlog.feedback); without it both are disabled.
- Without it (a test client) the registry reads the bucket itself, nothing follows anything, and the admin routes act
  on this one registry: the process is its own pod.
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask, Response, g, request

from core.settings import load
from core.store import ModelStore
from predictor.dataplane import DataPlane
from predictor.http import (
    admin,
    admin_port,
    errors,
    extensions,
    feedback,
    health,
    hosts,
    model_info,
    openapi,
    page,
    predict,
    request_ids,
    v2,
)
from predictor.http import metrics as metrics_route
from predictor.lifecycle.bucket import DeferredModelStore
from predictor.lifecycle.follower import Follower
from predictor.lifecycle.readiness import PodReadiness
from predictor.lifecycle.registry import Registry
from predictor.metrics import Metrics
from predictor.predlog.feedback import FeedbackLog
from predictor.predlog.log import PredictionLog
from predictor.settings import PredictorSettings


def create_app(
    settings: PredictorSettings | None = None, store: ModelStore | None = None, *, pod_workers: int | None = None
) -> Flask:
    """A serving worker on `store` (else the settings' bucket); its parts are read with predictor.http.extensions."""
    settings = settings or load(PredictorSettings)
    metrics = Metrics()
    bucket = store or DeferredModelStore(settings)
    follower = pod = None
    log = PredictionLog(None)
    feedback_log = None
    if settings.handover_dir:
        directory = Path(settings.handover_dir)
        log = PredictionLog.from_settings(settings, directory, metrics.registry)
        feedback_log = FeedbackLog.from_settings(settings, directory, metrics.registry)
        pod = PodReadiness(directory, pod_workers) if pod_workers else None
        follower = Follower.build(settings, directory, bucket, metrics, on_swap=[pod.record] if pod else [])
        registry = follower.registry
    else:
        registry = Registry(bucket, settings, metrics)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    extensions.install(app, DataPlane(registry, settings, metrics, log, feedback_log), follower, pod)
    request_ids.register(app)
    blueprints = (
        predict.bp,
        v2.bp,
        feedback.bp,
        health.bp,
        model_info.bp,
        admin.bp,
        metrics_route.bp,
        openapi.bp,
        page.bp,
    )
    for blueprint in blueprints:
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
