"""Liveness and readiness: the Open Inference Protocol V2 routes and the /healthz, /readyz aliases.

Under gunicorn readiness is pod-wide (predictor.lifecycle.readiness): 200 only when this worker and every other
worker of the pod serve a model, so a probe never marks a pod Ready while one of its workers would still answer 503.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from predictor.errors import ModelNotReady
from predictor.http import extensions

bp = Blueprint("health", __name__)


@bp.get("/v2/health/live")
@bp.get("/healthz")
def live() -> dict[str, bool]:
    """200 while the process answers at all."""
    return {"live": extensions.dataplane().live()}


@bp.get("/v2/health/ready")
@bp.get("/readyz")
def ready() -> dict[str, Any]:
    """200 once a verified model is loaded (in every worker of the pod under gunicorn), 503 before."""
    pod = extensions.pod_readiness()
    this_worker = extensions.dataplane().ready()
    if pod is None:
        if not this_worker:
            raise ModelNotReady("no verified model is loaded yet")
        return {"ready": True}
    counts = {"ready_workers": pod.ready_workers(), "workers": pod.workers}
    if not this_worker or counts["ready_workers"] < counts["workers"]:
        detail = "this worker has none" if not this_worker else "some workers have none"
        raise ModelNotReady(f"{counts['ready_workers']} of {counts['workers']} workers serve a model; {detail}", counts)
    return {"ready": True, **counts}
