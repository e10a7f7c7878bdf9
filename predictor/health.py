"""Liveness and readiness: the Open Inference Protocol V2 routes and the /healthz, /readyz aliases."""

from __future__ import annotations

from flask import Blueprint, current_app

from predictor.errors import ModelNotReady

bp = Blueprint("health", __name__)


@bp.get("/v2/health/live")
@bp.get("/healthz")
def live() -> dict[str, bool]:
    """200 while the process answers at all."""
    return {"live": True}


@bp.get("/v2/health/ready")
@bp.get("/readyz")
def ready() -> dict[str, bool]:
    """200 once a verified model is loaded, 503 before."""
    if not current_app.extensions["registry"].ready:
        raise ModelNotReady("no verified model is loaded yet")
    return {"ready": True}
