"""GET /metrics: the pod's Prometheus samples (predictor.metrics), with the pod gauges refreshed first."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from predictor.http import extensions
from predictor.lifecycle import podhealth

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    follower, metrics = extensions.follower(), extensions.metrics()
    if follower is not None:
        podhealth.view(follower.directory, follower.registry, metrics)  # refreshes the pod gauges
    return current_app.response_class(metrics.render(), content_type=CONTENT_TYPE_LATEST)
